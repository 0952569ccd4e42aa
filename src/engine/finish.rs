//! A run's last phases: recording what the next run compares with (the definition and the
//! destination it ran against, a cursor's new mark), then the alerts the run calls for
//! (`alerts` decides, this sends and remembers) and trimming the change log. Alerts and the
//! trim cannot fail the run: trouble is a warning on it.

use super::alerts;
use super::prepare::Prepared;
use super::{Engine, RunError, SyncReport};
use crate::project::config::{AlertEvent, AlertsConfig};
use crate::project::SyncSpec;

impl Engine {
    /// After the last batch: the definition and destination the run sent under, so the next run
    /// compares with them, and a cursor sync's new mark.
    pub(super) async fn record(&self, sync: &SyncSpec, prepared: &Prepared<'_>, report: &mut SyncReport) -> Result<(), RunError> {
        let (config_fp, identity) = (&prepared.config_fp, &prepared.identity);
        let recorded = prepared
            .meta
            .as_ref()
            .is_some_and(|m| m.config_fingerprint == *config_fp && m.identity.as_ref() == Some(identity) && m.first_identity.is_some());
        if !recorded {
            self.store.set_sync_meta(sync.name(), config_fp, identity).await?;
        }
        if let Some(next) = prepared.cursor.as_ref().and_then(|c| c.next()) {
            self.advance_cursor(sync.name(), next, report).await?;
        }
        Ok(())
    }

    /// Stores a cursor sync's new mark, unless rows of this run wait for a retry: a read past
    /// the new mark would never return them, so the mark stays and the next run reads them again
    /// (the diff keeps the rows already written from being sent twice).
    async fn advance_cursor(&self, name: &str, next: crate::state::StoredCursor, report: &mut SyncReport) -> Result<(), RunError> {
        // Rows this run leaves for the next one: a read past the new mark would never return them.
        let left = match (report.retryable, report.limited) {
            (0, 0) => None,
            (0, limited) => Some(format!("{limited} change(s) were left for the next run by --limit")),
            (retryable, _) => Some(format!("{retryable} row(s) wait for a retry")),
        };
        if let Some(left) = left {
            report.warn(format!("{left}, so the cursor stays where it was and the next run reads them again"));
            return Ok(());
        }
        let text = next.value.to_text();
        self.store.set_cursor(name, &next).await?;
        if let Some(c) = report.cursor.as_mut() {
            c.next = Some(text);
        }
        Ok(())
    }

    pub(super) async fn alert(&self, sync: &SyncSpec, report: &mut SyncReport) {
        let Some(project) = &self.alerts else { return };
        // Stopped on request: the run says nothing of the sync's health, so no alert (a
        // shutdown is not a failure) and nothing to remember.
        if !report.outcome().alerts() {
            return;
        }
        let config = project.for_sync(&sync.file);
        let before = match self.store.alert_state(sync.name()).await {
            Ok(state) => state,
            Err(e) => return report.warn(format!("alerts: {e}")),
        };
        let history = if config.on.contains(&AlertEvent::RowCounts) {
            match self.store.runs_through(sync.name(), config.deviation_runs.into(), &report.run_id).await {
                Ok(runs) => runs,
                Err(e) => return report.warn(format!("alerts: {e}")),
            }
        } else {
            Vec::new()
        };
        let now = chrono::Utc::now();
        let due = alerts::decide(&config, &before, report, &history, &sync.destination, now);
        let subject = alerts::Subject::of(report);
        let mut sent = Vec::new();
        for alert in &due {
            match self.send_alert(&config, &subject, alert).await {
                Ok(()) => {
                    sent.push(alert.event);
                    report.alerts.push(super::report::SentAlert {
                        event: alert.event.as_str().to_string(),
                        destination: config.destination.clone(),
                    });
                }
                Err(e) => report.warn(format!(
                    "could not send the {} alert to destination `{}`: {e} (the next run tries again)",
                    alert.event.as_str(),
                    config.destination
                )),
            }
        }
        let after = alerts::remember(&config, &before, report.status, &sent, now);
        let failing = (after.failing != before.failing).then_some(after.failing);
        let times: Vec<(&str, String)> =
            sent.iter().filter_map(|e| after.last(e.as_str()).map(|at| (e.as_str(), at.to_string()))).collect();
        if failing.is_some() || !times.is_empty() {
            if let Err(e) = self.store.record_alerts(sync.name(), failing, &times).await {
                report.warn(format!("alerts: {e}"));
            }
        }
    }

    /// The `late` alert for `sync`, whose run due at `due` has not started (the daemon's
    /// check): sent unless told within `alert_interval`. Whether it went out.
    pub async fn alert_late(&self, sync: &SyncSpec, due: chrono::DateTime<chrono::Utc>) -> Result<bool, String> {
        let Some(project) = &self.alerts else { return Ok(false) };
        let config = project.for_sync(&sync.file);
        let before = self.store.alert_state(sync.name()).await.map_err(|e| e.to_string())?;
        let now = chrono::Utc::now();
        let Some(alert) = alerts::late(&config, &before, sync.name(), due, now) else { return Ok(false) };
        // Claimed in the store first: a replica checking at the same moment does not send it too.
        let cutoff = chrono::Duration::from_std(config.alert_interval)
            .ok()
            .and_then(|interval| now.checked_sub_signed(interval))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let (at, cutoff) = (crate::state::stamp(now), crate::state::stamp(cutoff));
        if !self.store.claim_alert(sync.name(), alert.event.as_str(), &at, &cutoff).await.map_err(|e| e.to_string())? {
            return Ok(false);
        }
        let subject = alerts::Subject {
            sync: sync.name().to_string(),
            // One alert row per due time: a destination keyed by (run_id, event) keeps each.
            run_id: format!("due-{}", due.to_rfc3339()),
            status: "late".into(),
            error: Some(format!("the run due at {} has not started", due.to_rfc3339())),
            rows_read: 0,
            written: 0,
            rejected: 0,
            pending: 0,
        };
        if let Err(e) = self.send_alert(&config, &subject, &alert).await {
            // Not sent, so not remembered: the next check tries again.
            let _ = self.store.unclaim_alert(sync.name(), alert.event.as_str(), before.last(alert.event.as_str())).await;
            return Err(e);
        }
        Ok(true)
    }

    async fn send_alert(&self, config: &AlertsConfig, subject: &alerts::Subject, alert: &alerts::Alert) -> Result<(), String> {
        let result = match self.destination(&config.destination) {
            Ok(destination) => {
                let kind = self.kinds.get(&config.destination).map(String::as_str).unwrap_or("");
                alerts::send(destination.as_ref(), kind, subject, alert).await
            }
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = &result {
            tracing::warn!(sync = %subject.sync, event = alert.event.as_str(), error = %e, "could not send an alert");
        }
        result
    }
}

impl Engine {
    /// Drops change-log entries past `[state] keep_changes`. After every run, so a project run
    /// from cron keeps its log trimmed as the daemon does. With `[writeback]`, never an entry
    /// the writeback has not copied yet: a writeback failing for longer than `keep_changes`
    /// keeps the log growing rather than losing what it has not written.
    pub(super) async fn prune_changes(&self, sync: &SyncSpec, report: &mut SyncReport) {
        let kept = chrono::Duration::from_std(self.keep_changes).unwrap_or(chrono::Duration::MAX);
        let Some(cutoff) = chrono::Utc::now().checked_sub_signed(kept) else { return };
        let through = match self.writeback.is_some() {
            false => None,
            true => match self.store.writeback_mark(sync.name()).await {
                Ok(mark) => Some(mark.changes_through),
                Err(e) => return report.warn(format!("could not prune the change log (reading the writeback's mark): {e}")),
            },
        };
        if let Err(e) = self.store.prune_changes(sync.name(), &crate::state::stamp(cutoff), through).await {
            report.warn(format!("could not prune the change log: {e}"));
        }
    }
}
