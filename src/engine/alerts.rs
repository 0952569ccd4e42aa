//! Alerts (`[alerts]` in sluice.toml, a sync's own `[alerts]` over it): after each real run, a
//! message to a Slack, webhook or command destination when the sync failed, recovered, had rows
//! rejected (any, or more than a share), ran longer than `max_duration`, read or changed far
//! more or fewer rows than its recent runs, or was skipped because a sync it runs after did not
//! get through; and, from the daemon, when a scheduled run is late (`late`).
//!
//! [`decide`] is pure: from what the store remembers of the sync, the run's report and the runs
//! before it, it picks the alerts to send and the memory to keep. A kind of alert goes out at
//! most once per `alert_interval` while its cause lasts. An alert that could not be sent is not
//! remembered as sent, so the next run tries again. Alerts go out through the ordinary
//! [`Destination`] trait as one row, so no destination knows about them.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::SyncReport;
use crate::destinations::{Destination, Op, RowOp, RowOutcome, Target};
use crate::project::config::{AlertEvent, AlertsConfig};
use crate::project::Mode;
use crate::state::{AlertState, RunRecord, RunStatus};
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

/// What an alert is about: a run, or (`late`) a run that did not happen.
#[derive(Clone, Debug)]
pub struct Subject {
    pub sync: String,
    pub run_id: String,
    pub status: String,
    pub error: Option<String>,
    pub rows_read: u64,
    pub written: u64,
    pub rejected: u64,
    pub pending: u64,
}

impl Subject {
    pub fn of(report: &SyncReport) -> Subject {
        Subject {
            sync: report.sync.clone(),
            run_id: report.run_id.clone(),
            status: report.status.as_str().to_string(),
            error: report.error.clone(),
            rows_read: report.rows_read,
            written: report.written,
            rejected: report.rejected,
            pending: report.retryable,
        }
    }
}

/// Whether an alert of `event` may go out now: never sent, or not within `alert_interval`.
fn due(config: &AlertsConfig, before: &AlertState, event: AlertEvent, now: DateTime<Utc>) -> bool {
    before
        .last(event.as_str())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_none_or(|t| elapsed(t.with_timezone(&Utc), now) >= config.alert_interval)
}

/// The alerts this run calls for. Alerts whose event is not in `on` are never picked, but
/// `failing` is tracked regardless (`remember`). `history`: the sync's earlier runs that got
/// through, newest first (read only when `row_counts` is on).
pub fn decide(
    config: &AlertsConfig,
    before: &AlertState,
    report: &SyncReport,
    history: &[RunRecord],
    destination: &str,
    now: DateTime<Utc>,
) -> Vec<Alert> {
    let wanted = |e: AlertEvent| config.on.contains(&e) && due(config, before, e, now);
    let sync = &report.sync;
    let every = humantime::format_duration(config.alert_interval);
    let mut alerts = Vec::new();
    if report.status == RunStatus::Failed {
        if wanted(AlertEvent::Failure) {
            let error = report.error.as_deref().unwrap_or("unknown error");
            let hint = format!(
                "`sluice status {sync}` shows the run history; fix the cause and the next scheduled run retries. \
                 While it keeps failing, this alert repeats at most every {every}."
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
        if wanted(AlertEvent::Skipped) {
            let why = report.error.as_deref().unwrap_or("a sync it runs after did not get through");
            let hint = format!(
                "it runs when the syncs in its `after` get through again; `sluice status` shows their runs. While they keep failing, \
                 this alert repeats at most every {every}."
            );
            let text = format!(":fast_forward: sluice sync `{sync}` did not run: {why}\n{hint}");
            alerts.push(Alert { event: AlertEvent::Skipped, text, hint });
        }
        return alerts;
    }
    if before.failing && config.on.contains(&AlertEvent::Recovery) {
        let hint = String::new();
        let text = format!(":white_check_mark: sluice sync `{sync}` recovered: the run finished, {} row(s) written", report.written);
        alerts.push(Alert { event: AlertEvent::Recovery, text, hint });
    }
    if report.rejected > 0 && wanted(AlertEvent::RejectedRows) {
        let hint = format!(
            "`sluice failures {sync}` lists every rejected row and the reason; a row is sent again when it changes, or now with `sluice retry {sync}`"
        );
        let first = report.warnings.iter().find(|w| w.contains(" rejected: ")).map(|w| format!("\nFirst: {w}")).unwrap_or_default();
        let text =
            format!(":warning: sluice sync `{sync}`: destination `{destination}` rejected {} row(s).{first}\n{hint}", report.rejected);
        alerts.push(Alert { event: AlertEvent::RejectedRows, text, hint });
    }
    let sent = report.written + report.rejected + report.retryable;
    let share = if sent == 0 { 0.0 } else { report.rejected as f64 * 100.0 / sent as f64 };
    if share > config.rejected_share_pct && wanted(AlertEvent::RejectedShare) {
        let hint = format!(
            "`sluice failures {sync}` lists the rows and the reasons: a share this large is usually the mapping or the data, not one row"
        );
        let text = format!(
            ":warning: sluice sync `{sync}`: {share:.1}% of the rows sent were rejected ({} of {sent}), over its {}% threshold\n{hint}",
            report.rejected, config.rejected_share_pct
        );
        alerts.push(Alert { event: AlertEvent::RejectedShare, text, hint });
    }
    if let Some(off) = deviations(config, report, history).filter(|d| !d.is_empty()) {
        if wanted(AlertEvent::RowCounts) {
            let hint = format!(
                "compared with the median of its last {} runs that got through; `sluice status {sync} --runs {}` shows them. \
                 If the model changed on purpose, nothing to do.",
                history.len(),
                history.len() + 1
            );
            let text = format!(":bar_chart: sluice sync `{sync}`: {} in run {}\n{hint}", off.join("; "), report.run_id);
            alerts.push(Alert { event: AlertEvent::RowCounts, text, hint });
        }
    }
    let took = Duration::from_millis(report.duration_ms);
    if let Some(max) = config.max_duration.filter(|max| took > *max) {
        if wanted(AlertEvent::SlowRun) {
            let hint = "`sluice status` shows each run's time; the run's report says how long sending took and how close it came to the \
                        destination's rate limit"
                .to_string();
            let text = format!(
                ":hourglass: sluice sync `{sync}`: run {} took {}, over its {}\n{hint}",
                report.run_id,
                humantime::format_duration(Duration::from_secs(took.as_secs())),
                humantime::format_duration(max)
            );
            alerts.push(Alert { event: AlertEvent::SlowRun, text, hint });
        }
    }
    alerts
}

/// The counts of this run that left their usual range, in words; `None` before `deviation_runs`
/// earlier runs got through.
fn deviations(config: &AlertsConfig, report: &SyncReport, history: &[RunRecord]) -> Option<Vec<String>> {
    if !config.on.contains(&AlertEvent::RowCounts) || history.len() < config.deviation_runs as usize || history.is_empty() {
        return None;
    }
    let c = &report.counts;
    let measures: [(&str, u64, fn(&RunRecord) -> i64); 3] = [
        ("model rows", report.rows_read, |r| r.rows_read),
        ("changes", c.added + c.changed, |r| r.added + r.changed),
        ("removals", c.removed, |r| r.removed),
    ];
    let mut off = Vec::new();
    for (name, now, past) in measures {
        let mut values: Vec<i64> = history.iter().map(past).collect();
        values.sort_unstable();
        let median = values[values.len() / 2].max(0) as u64;
        let gap = now.abs_diff(median);
        let big = median == 0 || gap as f64 * 100.0 > config.deviation_pct * median as f64;
        if gap >= config.deviation_min_rows && big {
            let pct = if median == 0 { String::new() } else { format!(" ({:+.0}%)", (now as f64 - median as f64) * 100.0 / median as f64) };
            off.push(format!("{name} {now} against a usual {median}{pct}"));
        }
    }
    Some(off)
}

/// The alert for a scheduled run that has not started a whole interval after `due`.
pub fn late(config: &AlertsConfig, before: &AlertState, sync: &str, due_at: DateTime<Utc>, now: DateTime<Utc>) -> Option<Alert> {
    if !config.on.contains(&AlertEvent::Late) || !self::due(config, before, AlertEvent::Late, now) {
        return None;
    }
    let hint = format!(
        "the daemon is up, but the run has not started: the previous run may still be going (`sluice status {sync}`), another \
         process may hold the sync, or `max_concurrent_runs` is taken by others. This alert repeats at most every {}.",
        humantime::format_duration(config.alert_interval)
    );
    let text = format!(":alarm_clock: sluice sync `{sync}`: its run due at {} has not started\n{hint}", due_at.to_rfc3339());
    Some(Alert { event: AlertEvent::Late, text, hint })
}

/// What to remember after the run, given the alerts that were actually sent.
///
/// `failing` means "people were told this sync is failing" (or would have been: failure alerts
/// off): a recovery alert is due only then, and stays due until it is sent. The time of the last
/// failure alert survives a recovery, so a sync that flaps between failing and working alerts
/// at most once per `alert_interval`, not on every flip.
pub fn remember(config: &AlertsConfig, before: &AlertState, status: RunStatus, sent: &[AlertEvent], now: DateTime<Utc>) -> AlertState {
    let failing = match status {
        RunStatus::Failed => before.failing || sent.contains(&AlertEvent::Failure) || !config.on.contains(&AlertEvent::Failure),
        // It did not run: it neither failed nor recovered.
        RunStatus::Skipped => before.failing,
        _ => before.failing && config.on.contains(&AlertEvent::Recovery) && !sent.contains(&AlertEvent::Recovery),
    };
    let mut alerted_at = before.alerted_at.clone();
    for event in sent.iter().filter(|e| **e != AlertEvent::Recovery) {
        alerted_at.insert(event.as_str().to_string(), crate::state::stamp(now));
    }
    AlertState { failing, alerted_at }
}

fn elapsed(then: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - then).to_std().unwrap_or(Duration::ZERO)
}

/// The alert as one row for `destination`: a Slack destination renders `text`; a webhook or a
/// command program gets every field.
pub async fn send(destination: &dyn Destination, kind: &str, subject: &Subject, alert: &Alert) -> Result<(), String> {
    let mut settings = toml::Table::new();
    if kind == "slack" {
        settings.insert("text".into(), toml::Value::String("{{ text }}".into()));
    }
    let target = Target {
        sync: subject.sync.clone(),
        run_id: subject.run_id.clone(),
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
        text(&subject.sync),
        text(&subject.run_id),
        text(&subject.status),
        subject.error.as_deref().map(text).unwrap_or(Value::Null),
        text(&alert.hint),
        count(subject.rows_read),
        count(subject.written),
        count(subject.rejected),
        count(subject.pending),
        text(&alert.text),
    ];
    let op = RowOp { op: Op::Insert, key: vec![text(&subject.run_id), text(alert.event.as_str())], fields, destination_id: None };
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
        AlertsConfig {
            destination: "ops".into(),
            on,
            alert_interval: Duration::from_secs(3600),
            rejected_share_pct: 10.0,
            deviation_pct: 50.0,
            deviation_runs: 3,
            deviation_min_rows: 100,
            max_duration: Some(Duration::from_secs(600)),
        }
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
        let first = decide(&cfg, &AlertState::default(), &failed, &[], "ops", t0);
        assert_eq!(first.len(), 1);
        assert!(first[0].text.contains("`churn` failed: the model query failed"), "{}", first[0].text);
        let state = remember(&cfg, &AlertState::default(), failed.status, &[AlertEvent::Failure], t0);
        assert!(decide(&cfg, &state, &failed, &[], "ops", t0 + chrono::Duration::minutes(59)).is_empty());
        assert_eq!(decide(&cfg, &state, &failed, &[], "ops", t0 + chrono::Duration::minutes(61)).len(), 1);
        let ok = report(RunStatus::Success, 0);
        let back = decide(&cfg, &state, &ok, &[], "ops", t0);
        assert_eq!(back.iter().map(|a| a.event).collect::<Vec<_>>(), [AlertEvent::Recovery]);
        let after = remember(&cfg, &state, ok.status, &[AlertEvent::Recovery], t0);
        assert!(!after.failing);

        // Flapping: failing again ten minutes later is not alerted (the interval holds), and
        // so its recovery is not either.
        let t1 = t0 + chrono::Duration::minutes(10);
        assert!(decide(&cfg, &after, &failed, &[], "ops", t1).is_empty());
        let flapped = remember(&cfg, &after, failed.status, &[], t1);
        assert!(!flapped.failing);
        assert!(decide(&cfg, &flapped, &ok, &[], "ops", t1).is_empty());
    }

    #[test]
    fn a_skipped_run_alerts_once_per_interval_and_neither_fails_nor_recovers() {
        let cfg = config(vec![AlertEvent::Failure, AlertEvent::Recovery, AlertEvent::Skipped]);
        let t0: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        let mut skipped = report(RunStatus::Skipped, 0);
        skipped.error = Some("it runs after `accounts`, whose latest run failed".into());
        let told = AlertState { failing: true, ..Default::default() };
        let first = decide(&cfg, &told, &skipped, &[], "ops", t0);
        assert_eq!(first.iter().map(|a| a.event).collect::<Vec<_>>(), [AlertEvent::Skipped], "no recovery: it did not run");
        assert!(first[0].text.contains("`churn` did not run: it runs after `accounts`"), "{}", first[0].text);
        let state = remember(&cfg, &told, skipped.status, &[AlertEvent::Skipped], t0);
        assert!(state.failing, "still failing as far as people know");
        assert!(decide(&cfg, &state, &skipped, &[], "ops", t0 + chrono::Duration::minutes(30)).is_empty());
        assert_eq!(decide(&cfg, &state, &skipped, &[], "ops", t0 + chrono::Duration::minutes(61)).len(), 1);
        assert!(decide(&config(vec![AlertEvent::Failure]), &AlertState::default(), &skipped, &[], "ops", t0).is_empty(), "not asked for");
    }

    fn past(rows_read: i64, changed: i64, removed: i64) -> RunRecord {
        RunRecord { rows_read, changed, removed, status: Some(RunStatus::Success), ..Default::default() }
    }

    fn events(alerts: &[Alert]) -> Vec<AlertEvent> {
        alerts.iter().map(|a| a.event).collect()
    }

    #[test]
    fn a_large_rejected_share_alerts_over_its_threshold_only() {
        let cfg = config(vec![AlertEvent::RejectedShare]);
        let t0: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        let mut r = report(RunStatus::Partial, 11);
        r.written = 89;
        let alerts = decide(&cfg, &AlertState::default(), &r, &[], "ops", t0);
        assert_eq!(events(&alerts), [AlertEvent::RejectedShare]);
        assert!(alerts[0].text.contains("11.0% of the rows sent were rejected (11 of 100), over its 10% threshold"), "{}", alerts[0].text);
        r.rejected = 10;
        r.written = 90;
        assert!(decide(&cfg, &AlertState::default(), &r, &[], "ops", t0).is_empty(), "10% is not over 10%");
    }

    #[test]
    fn row_counts_alert_when_a_run_leaves_the_median_of_its_recent_runs() {
        let cfg = config(vec![AlertEvent::RowCounts]);
        let t0: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        let history = [past(10_000, 50, 0), past(10_200, 40, 3), past(9_900, 60, 0)];
        let mut r = report(RunStatus::Success, 0);
        r.rows_read = 4_000;
        r.counts.changed = 6_050;
        let alerts = decide(&cfg, &AlertState::default(), &r, &history, "ops", t0);
        assert_eq!(events(&alerts), [AlertEvent::RowCounts]);
        let text = &alerts[0].text;
        assert!(text.contains("model rows 4000 against a usual 10000 (-60%)"), "{text}");
        assert!(text.contains("changes 6050 against a usual 50 (+12000%)"), "{text}");
        assert!(!text.contains("removals"), "3 removals against 0 is under deviation_min_rows: {text}");
        // Within 50%, or too few earlier runs: nothing.
        r.rows_read = 12_000;
        r.counts.changed = 60;
        assert!(decide(&cfg, &AlertState::default(), &r, &history, "ops", t0).is_empty());
        r.rows_read = 1;
        assert!(decide(&cfg, &AlertState::default(), &r, &history[..2], "ops", t0).is_empty(), "deviation_runs = 3");
    }

    #[test]
    fn a_slow_run_alerts_and_a_late_one_is_told_once_per_interval() {
        let cfg = config(vec![AlertEvent::SlowRun, AlertEvent::Late]);
        let t0: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        let mut r = report(RunStatus::Success, 0);
        r.duration_ms = 601_000;
        let alerts = decide(&cfg, &AlertState::default(), &r, &[], "ops", t0);
        assert_eq!(events(&alerts), [AlertEvent::SlowRun]);
        assert!(alerts[0].text.contains("run run-1 took 10m 1s, over its 10m"), "{}", alerts[0].text);
        r.duration_ms = 599_000;
        assert!(decide(&cfg, &AlertState::default(), &r, &[], "ops", t0).is_empty());

        let due: DateTime<Utc> = "2026-11-25T09:00:00Z".parse().unwrap();
        let alert = late(&cfg, &AlertState::default(), "churn", due, t0).expect("late");
        assert!(alert.text.contains("its run due at 2026-11-25T09:00:00+00:00 has not started"), "{}", alert.text);
        let told = remember(&cfg, &AlertState::default(), RunStatus::Running, &[AlertEvent::Late], t0);
        assert!(late(&cfg, &told, "churn", due, t0 + chrono::Duration::minutes(59)).is_none());
        assert!(late(&cfg, &told, "churn", due, t0 + chrono::Duration::minutes(60)).is_some());
        assert!(late(&config(vec![AlertEvent::Failure]), &AlertState::default(), "churn", due, t0).is_none());
    }

    #[test]
    fn an_unsent_alert_is_not_remembered() {
        let cfg = config(vec![AlertEvent::Failure, AlertEvent::Recovery]);
        let failed = report(RunStatus::Failed, 0);
        let state = remember(&cfg, &AlertState::default(), failed.status, &[], Utc::now());
        assert!(!state.failing && state.last("failure").is_none(), "the failure alert is tried again next run");
        let told = AlertState { failing: true, ..Default::default() };
        let ok = report(RunStatus::Success, 0);
        assert!(remember(&cfg, &told, ok.status, &[], Utc::now()).failing, "an unsent recovery alert stays due");
    }
}
