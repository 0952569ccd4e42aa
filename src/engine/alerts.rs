//! Alerts (`[alerts]` in sluice.toml): after each real run, a message to a Slack, webhook or
//! command destination when the sync failed, recovered, had rows rejected, or was skipped
//! because a sync it runs after did not get through.
//!
//! [`decide`] is pure: from what the store remembers of the sync and the run's report, it picks
//! the alerts to send and the memory to keep. A sync that keeps failing alerts once per
//! `alert_interval`, not once per run. An alert that could not be sent is not remembered as
//! sent, so the next run tries again. Alerts go out through the ordinary [`Destination`]
//! trait as one row, so no destination knows about them.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::SyncReport;
use crate::destinations::{Destination, Op, RowOp, RowOutcome, Target};
use crate::project::config::{AlertEvent, AlertsConfig};
use crate::project::Mode;
use crate::state::{AlertState, RunStatus};
use crate::value::{Value, ValueType};

/// An alert row's key: one row per run and event.
const KEY: [&str; 2] = ["run_id", "event"];

/// The fields of an alert row, in order. `text` is the whole message, ready for people.
pub const FIELDS: [&str; 11] =
    ["event", "sync", "run_id", "status", "error", "hint", "rows_read", "written", "rejected", "pending", "text"];

/// One alert to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub event: AlertEvent,
    pub text: String,
    pub hint: String,
}

/// The alerts this run calls for, and what to remember once they are sent. Alerts whose event
/// is not in `on` are never picked, but `failing` is tracked regardless.
pub fn decide(config: &AlertsConfig, before: &AlertState, report: &SyncReport, destination: &str, now: DateTime<Utc>) -> Vec<Alert> {
    let due = |last: &Option<String>| {
        last.as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_none_or(|t| elapsed(t.with_timezone(&Utc), now) >= config.alert_interval)
    };
    let wanted = |e: AlertEvent| config.on.contains(&e);
    let sync = &report.sync;
    let mut alerts = Vec::new();
    if report.status == RunStatus::Failed {
        if wanted(AlertEvent::Failure) && due(&before.failure_alerted_at) {
            let error = report.error.as_deref().unwrap_or("unknown error");
            let hint = format!(
                "`sluice status {sync}` shows the run history; fix the cause and the next scheduled run retries. \
                 While it keeps failing, this alert repeats at most every {}.",
                humantime::format_duration(config.alert_interval)
            );
            let counts = format!(
                "run {}: {} row(s) read, {} written, {} rejected, {} pending",
                report.run_id, report.rows_read, report.written, report.rejected, report.retryable
            );
            let text = format!(":rotating_light: sluice sync `{sync}` failed: {error}\n{counts}\n{hint}");
            alerts.push(Alert { event: AlertEvent::Failure, text, hint });
        }
        return alerts;
    }
    if report.status == RunStatus::Skipped {
        if wanted(AlertEvent::Skipped) && due(&before.skipped_alerted_at) {
            let why = report.error.as_deref().unwrap_or("a sync it runs after did not get through");
            let hint = format!(
                "it runs when the syncs in its `after` get through again; `sluice status` shows their runs. While they keep failing, \
                 this alert repeats at most every {}.",
                humantime::format_duration(config.alert_interval)
            );
            let text = format!(":fast_forward: sluice sync `{sync}` did not run: {why}\n{hint}");
            alerts.push(Alert { event: AlertEvent::Skipped, text, hint });
        }
        return alerts;
    }
    if before.failing && wanted(AlertEvent::Recovery) {
        let hint = String::new();
        let text = format!(":white_check_mark: sluice sync `{sync}` recovered: the run finished, {} row(s) written", report.written);
        alerts.push(Alert { event: AlertEvent::Recovery, text, hint });
    }
    if report.rejected > 0 && wanted(AlertEvent::RejectedRows) && due(&before.rejected_alerted_at) {
        let hint = format!(
            "`sluice failures {sync}` lists every rejected row and the reason; a row is sent again when it changes, or now with `sluice retry {sync}`"
        );
        let first = report.warnings.iter().find(|w| w.contains(" rejected: ")).map(|w| format!("\nFirst: {w}")).unwrap_or_default();
        let text =
            format!(":warning: sluice sync `{sync}`: destination `{destination}` rejected {} row(s).{first}\n{hint}", report.rejected);
        alerts.push(Alert { event: AlertEvent::RejectedRows, text, hint });
    }
    alerts
}

/// What to remember after the run, given the alerts that were actually sent.
///
/// `failing` means "people were told this sync is failing" (or would have been: failure alerts
/// off): a recovery alert is due only then, and stays due until it is sent. The time of the last
/// failure alert survives a recovery, so a sync that flaps between failing and working alerts
/// at most once per `alert_interval`, not on every flip.
pub fn remember(config: &AlertsConfig, before: &AlertState, report: &SyncReport, sent: &[AlertEvent], now: DateTime<Utc>) -> AlertState {
    let stamp = || Some(now.to_rfc3339());
    let failing = if report.status == RunStatus::Failed {
        before.failing || sent.contains(&AlertEvent::Failure) || !config.on.contains(&AlertEvent::Failure)
    } else if report.status == RunStatus::Skipped {
        // It did not run: it neither failed nor recovered.
        before.failing
    } else {
        before.failing && config.on.contains(&AlertEvent::Recovery) && !sent.contains(&AlertEvent::Recovery)
    };
    AlertState {
        failing,
        failure_alerted_at: if sent.contains(&AlertEvent::Failure) { stamp() } else { before.failure_alerted_at.clone() },
        rejected_alerted_at: if sent.contains(&AlertEvent::RejectedRows) { stamp() } else { before.rejected_alerted_at.clone() },
        skipped_alerted_at: if sent.contains(&AlertEvent::Skipped) { stamp() } else { before.skipped_alerted_at.clone() },
    }
}

fn elapsed(then: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - then).to_std().unwrap_or(Duration::ZERO)
}

/// The alert as one row for `destination`: a Slack destination renders `text`; a webhook or a
/// command program gets every field.
pub async fn send(destination: &dyn Destination, kind: &str, report: &SyncReport, alert: &Alert) -> Result<(), String> {
    let mut settings = toml::Table::new();
    if kind == "slack" {
        settings.insert("text".into(), toml::Value::String("{{ text }}".into()));
    }
    let target = Target {
        sync: report.sync.clone(),
        run_id: report.run_id.clone(),
        mode: Mode::Insert,
        settings,
        key_columns: KEY.iter().map(|k| k.to_string()).collect(),
        fields: FIELDS.iter().map(|f| f.to_string()).collect(),
        // Each key column is carried by the field of its name.
        key_fields: KEY.iter().map(|k| FIELDS.iter().position(|f| f == k)).collect(),
        key_types: vec![ValueType::Text; KEY.len()],
        field_types: FIELDS
            .iter()
            .map(|f| match *f {
                "rows_read" | "written" | "rejected" | "pending" => ValueType::Int,
                _ => ValueType::Text,
            })
            .collect(),
        skip_nulls: false,
        if_empty: vec![false; FIELDS.len()],
    };
    let text = |s: &str| Value::Text(s.to_string());
    let count = |n: u64| Value::Int(n as i64);
    let fields = vec![
        text(alert.event.as_str()),
        text(&report.sync),
        text(&report.run_id),
        text(report.status.as_str()),
        report.error.as_deref().map(text).unwrap_or(Value::Null),
        text(&alert.hint),
        count(report.rows_read),
        count(report.written),
        count(report.rejected),
        count(report.retryable),
        text(&alert.text),
    ];
    let op = RowOp { op: Op::Insert, key: vec![text(&report.run_id), text(alert.event.as_str())], fields, destination_id: None };
    let mut writer = destination.open(&target).await.map_err(|e| e.message)?;
    let outcome = writer.write(std::slice::from_ref(&op)).await.map_err(|e| e.message)?;
    writer.close().await.map_err(|e| e.message)?;
    match outcome.into_iter().next() {
        Some(RowOutcome::Written { .. }) => Ok(()),
        Some(RowOutcome::Rejected(m) | RowOutcome::Retryable(m) | RowOutcome::RefusedInGroup(m)) => Err(m),
        None => Err("the destination gave no answer for the alert".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RunOptions;

    fn config(on: Vec<AlertEvent>) -> AlertsConfig {
        AlertsConfig { destination: "ops".into(), on, alert_interval: Duration::from_secs(3600) }
    }

    fn report(status: RunStatus, rejected: u64) -> SyncReport {
        let mut r = SyncReport::new("churn", "run-1", &RunOptions::default());
        r.status = status;
        r.rejected = rejected;
        if status == RunStatus::Failed {
            r.error = Some("the model query failed: no such table".into());
        }
        r
    }

    #[test]
    fn a_failing_sync_alerts_once_per_interval_then_recovers() {
        let cfg = config(vec![AlertEvent::Failure, AlertEvent::Recovery]);
        let t0: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        let failed = report(RunStatus::Failed, 0);
        let first = decide(&cfg, &AlertState::default(), &failed, "ops", t0);
        assert_eq!(first.len(), 1);
        assert!(first[0].text.contains("`churn` failed: the model query failed"), "{}", first[0].text);
        let state = remember(&cfg, &AlertState::default(), &failed, &[AlertEvent::Failure], t0);
        assert!(decide(&cfg, &state, &failed, "ops", t0 + chrono::Duration::minutes(59)).is_empty());
        assert_eq!(decide(&cfg, &state, &failed, "ops", t0 + chrono::Duration::minutes(61)).len(), 1);
        let ok = report(RunStatus::Success, 0);
        let back = decide(&cfg, &state, &ok, "ops", t0);
        assert_eq!(back.iter().map(|a| a.event).collect::<Vec<_>>(), [AlertEvent::Recovery]);
        let after = remember(&cfg, &state, &ok, &[AlertEvent::Recovery], t0);
        assert!(!after.failing);

        // Flapping: failing again ten minutes later is not alerted (the interval holds), and
        // so its recovery is not either.
        let t1 = t0 + chrono::Duration::minutes(10);
        assert!(decide(&cfg, &after, &failed, "ops", t1).is_empty());
        let flapped = remember(&cfg, &after, &failed, &[], t1);
        assert!(!flapped.failing);
        assert!(decide(&cfg, &flapped, &ok, "ops", t1).is_empty());
    }

    #[test]
    fn a_skipped_run_alerts_once_per_interval_and_neither_fails_nor_recovers() {
        let cfg = config(vec![AlertEvent::Failure, AlertEvent::Recovery, AlertEvent::Skipped]);
        let t0: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        let mut skipped = report(RunStatus::Skipped, 0);
        skipped.error = Some("it runs after `accounts`, whose latest run failed".into());
        let told = AlertState { failing: true, ..Default::default() };
        let first = decide(&cfg, &told, &skipped, "ops", t0);
        assert_eq!(first.iter().map(|a| a.event).collect::<Vec<_>>(), [AlertEvent::Skipped], "no recovery: it did not run");
        assert!(first[0].text.contains("`churn` did not run: it runs after `accounts`"), "{}", first[0].text);
        let state = remember(&cfg, &told, &skipped, &[AlertEvent::Skipped], t0);
        assert!(state.failing, "still failing as far as people know");
        assert!(decide(&cfg, &state, &skipped, "ops", t0 + chrono::Duration::minutes(30)).is_empty());
        assert_eq!(decide(&cfg, &state, &skipped, "ops", t0 + chrono::Duration::minutes(61)).len(), 1);
        assert!(decide(&config(vec![AlertEvent::Failure]), &AlertState::default(), &skipped, "ops", t0).is_empty(), "not asked for");
    }

    #[test]
    fn an_unsent_alert_is_not_remembered() {
        let cfg = config(vec![AlertEvent::Failure, AlertEvent::Recovery]);
        let failed = report(RunStatus::Failed, 0);
        let state = remember(&cfg, &AlertState::default(), &failed, &[], Utc::now());
        assert!(!state.failing && state.failure_alerted_at.is_none(), "the failure alert is tried again next run");
        let told = AlertState { failing: true, ..Default::default() };
        let ok = report(RunStatus::Success, 0);
        assert!(remember(&cfg, &told, &ok, &[], Utc::now()).failing, "an unsent recovery alert stays due");
    }
}
