//! `[alerts]` in sluice.toml, and a sync header's own `[alerts]`: which events send an alert,
//! and the thresholds of those that have one. What each event means and when it fires is the
//! engine's (`engine::alerts`); the late check is the daemon's.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

/// `[alerts]`: a message when a sync fails, recovers, rejects rows, runs late or long, or its
/// row counts jump (`engine::alerts`).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// The destination alerts go to: a `slack`, `webhook` or `command` destination.
    pub destination: String,
    /// The events that send an alert (a sync's header may replace the list: `[alerts] on`).
    #[serde(default = "default_alert_on")]
    pub on: Vec<AlertEvent>,
    /// While a sync keeps failing (or rejecting rows, running late...), at most one alert of a
    /// kind per this long.
    #[serde(default = "default_alert_interval", with = "crate::project::duration_setting")]
    #[schemars(with = "super::schema::DurationText")]
    pub alert_interval: Duration,
    /// `rejected_share`: alert when more than this percent of the rows a run sent were rejected.
    #[serde(default = "default_rejected_share_pct")]
    pub rejected_share_pct: f64,
    /// `row_counts`: alert when a run's model rows, changes (added + changed) or removals
    /// differ from their median over recent runs by more than this percent (and by at least
    /// `deviation_min_rows`).
    #[serde(default = "default_deviation_pct")]
    pub deviation_pct: f64,
    /// `row_counts`: how many earlier runs that got through make the median; no alert before
    /// there are this many.
    #[serde(default = "default_deviation_runs")]
    pub deviation_runs: u32,
    /// `row_counts`: a count must also differ from the median by at least this many rows (a
    /// sync of 20 rows that sends 12 changes is not news).
    #[serde(default = "default_deviation_min_rows")]
    pub deviation_min_rows: u64,
    /// `slow_run`: alert when a run takes longer than this; `slow_run` needs it.
    #[serde(default, with = "crate::project::duration_setting::option")]
    #[schemars(with = "Option<super::schema::DurationText>")]
    pub max_duration: Option<Duration>,
}

/// A sync header's `[alerts]`: its own events and thresholds, each replacing sluice.toml's.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncAlerts {
    /// This sync's events, instead of `[alerts] on` (`[]`: none).
    pub on: Option<Vec<AlertEvent>>,
    /// This sync's `rejected_share_pct`.
    pub rejected_share_pct: Option<f64>,
    /// This sync's `deviation_pct`.
    pub deviation_pct: Option<f64>,
    /// This sync's `deviation_runs`.
    pub deviation_runs: Option<u32>,
    /// This sync's `deviation_min_rows`.
    pub deviation_min_rows: Option<u64>,
    /// This sync's `max_duration`.
    #[serde(default, with = "crate::project::duration_setting::option")]
    #[schemars(with = "Option<super::schema::DurationText>")]
    pub max_duration: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    /// A run failed.
    Failure,
    /// A run finished after one or more failed runs.
    Recovery,
    /// A run finished with rows the destination rejected.
    RejectedRows,
    /// A run did not happen: a sync it runs after (`after`) did not get through.
    Skipped,
    /// More than `rejected_share_pct` of the rows a run sent were rejected.
    RejectedShare,
    /// A run's model rows, changes or removals left their usual range (`deviation_pct`).
    RowCounts,
    /// A run took longer than `max_duration`.
    SlowRun,
    /// Daemon: a scheduled run has not started a whole interval after it was due (the daemon
    /// is up, but the run is stuck behind another, a lock or a limit).
    Late,
}

impl AlertEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Failure => "failure",
            AlertEvent::Recovery => "recovery",
            AlertEvent::RejectedRows => "rejected_rows",
            AlertEvent::Skipped => "skipped",
            AlertEvent::RejectedShare => "rejected_share",
            AlertEvent::RowCounts => "row_counts",
            AlertEvent::SlowRun => "slow_run",
            AlertEvent::Late => "late",
        }
    }
}

/// The destination kinds that can carry alerts: they take any fields.
pub const ALERT_KINDS: [&str; 3] = ["slack", "webhook", "command"];

fn default_alert_on() -> Vec<AlertEvent> {
    vec![AlertEvent::Failure, AlertEvent::Recovery, AlertEvent::Skipped]
}

fn default_alert_interval() -> Duration {
    Duration::from_secs(3600)
}
fn default_rejected_share_pct() -> f64 {
    10.0
}
fn default_deviation_pct() -> f64 {
    50.0
}
fn default_deviation_runs() -> u32 {
    5
}
fn default_deviation_min_rows() -> u64 {
    100
}

impl AlertsConfig {
    /// The rules for one sync: its header's `[alerts]` over these.
    pub fn for_sync(&self, sync: &super::SyncFile) -> AlertsConfig {
        let Some(own) = sync.alerts.as_ref().map(|a| &a.value) else { return self.clone() };
        AlertsConfig {
            destination: self.destination.clone(),
            on: own.on.clone().unwrap_or_else(|| self.on.clone()),
            alert_interval: self.alert_interval,
            rejected_share_pct: own.rejected_share_pct.unwrap_or(self.rejected_share_pct),
            deviation_pct: own.deviation_pct.unwrap_or(self.deviation_pct),
            deviation_runs: own.deviation_runs.unwrap_or(self.deviation_runs),
            deviation_min_rows: own.deviation_min_rows.unwrap_or(self.deviation_min_rows),
            max_duration: own.max_duration.or(self.max_duration),
        }
    }

    /// Thresholds in range, and what the events in `on` need: the offending key and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        check_thresholds(Some(self.rejected_share_pct), Some(self.deviation_pct), Some(self.deviation_runs))?;
        if self.on.contains(&AlertEvent::SlowRun) && self.max_duration.is_none() {
            return Err(("on", "`slow_run` needs `max_duration`: how long a run may take before it is slow (e.g. \"30m\")".into()));
        }
        Ok(())
    }
}

impl SyncAlerts {
    /// The thresholds this header sets, in range.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        check_thresholds(self.rejected_share_pct, self.deviation_pct, self.deviation_runs)
    }
}

fn check_thresholds(share: Option<f64>, deviation: Option<f64>, runs: Option<u32>) -> Result<(), (&'static str, String)> {
    if let Some(p) = share.filter(|p| !(0.0..=100.0).contains(p)) {
        return Err(("rejected_share_pct", format!("`rejected_share_pct` = {p} is a percentage of the rows sent: 0 to 100")));
    }
    if let Some(p) = deviation.filter(|p| !p.is_finite() || *p <= 0.0) {
        return Err(("deviation_pct", format!("`deviation_pct` = {p} must be above 0 (50: half as many or half again as usual)")));
    }
    if let Some(n) = runs.filter(|n| !(1..=1000).contains(n)) {
        return Err(("deviation_runs", format!("`deviation_runs` = {n} must be 1 to 1000 earlier runs")));
    }
    Ok(())
}
