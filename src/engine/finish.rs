//! After a run: the alerts it calls for (`alerts` decides, this sends and remembers),
//! and trimming the change log. Neither can fail the run: trouble is a warning on it.

use super::alerts;
use super::{Engine, SyncReport};
use crate::project::SyncSpec;

impl Engine {
    pub(super) async fn alert(&self, sync: &SyncSpec, report: &mut SyncReport) {
        let Some(config) = &self.alerts else { return };
        // Stopped on request: the run says nothing of the sync's health, so no alert (a
        // shutdown is not a failure) and nothing to remember.
        if report.status == crate::state::RunStatus::Interrupted {
            return;
        }
        let before = match self.store.alert_state(sync.name()).await {
            Ok(state) => state,
            Err(e) => return report.warn(format!("alerts: {e}")),
        };
        let now = chrono::Utc::now();
        let due = alerts::decide(config, &before, report, &sync.destination, now);
        let mut sent = Vec::new();
        for alert in &due {
            let result = match self.destination(&config.destination) {
                Ok(destination) => {
                    let kind = self.kinds.get(&config.destination).map(String::as_str).unwrap_or("");
                    alerts::send(destination.as_ref(), kind, report, alert).await
                }
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(()) => sent.push(alert.event),
                Err(e) => {
                    tracing::warn!(sync = %sync.name(), event = alert.event.as_str(), error = %e, "could not send an alert");
                    report.warn(format!(
                        "could not send the {} alert to destination `{}`: {e} (the next run tries again)",
                        alert.event.as_str(),
                        config.destination
                    ));
                }
            }
        }
        let after = alerts::remember(config, &before, report, &sent, now);
        if after != before {
            if let Err(e) = self.store.set_alert_state(sync.name(), &after).await {
                report.warn(format!("alerts: {e}"));
            }
        }
    }
}

impl Engine {
    /// Drops change-log entries past `[state] keep_changes`. After every run, so a project run
    /// from cron keeps its log trimmed as the daemon does.
    pub(super) async fn prune_changes(&self, sync: &SyncSpec, report: &mut SyncReport) {
        let kept = chrono::Duration::from_std(self.keep_changes).unwrap_or(chrono::Duration::MAX);
        let Some(cutoff) = chrono::Utc::now().checked_sub_signed(kept) else { return };
        if let Err(e) = self.store.prune_changes(sync.name(), &crate::state::stamp(cutoff)).await {
            report.warn(format!("could not prune the change log: {e}"));
        }
    }
}
