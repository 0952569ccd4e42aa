//! Syncs that run after others (`after` in the header; the order itself is
//! `project::after`'s): whether a run may go, read from what the syncs it waits for did last,
//! and the record of a run that may not.
//!
//! A sync goes when the latest run that ended of each sync in its `after` got through (success
//! or partial: rows rejected one by one do not hold up the next sync). Anything else (failed,
//! interrupted, itself skipped, or no run yet) skips it: a run recorded with status `skipped`
//! and the reason, alerted like a run (`skipped`). Whoever starts the run decides whether to
//! ask: the daemon's schedule, events and chains do; a person naming the sync does not. A run of
//! the sync waited for that is going on in another process is not waited for: the latest run
//! that *ended* decides (the daemon waits only for runs in its own process).

use super::{Engine, RunOptions, SyncReport};
use crate::project::SyncSpec;
use crate::state::{RunRecord, RunStatus};

/// Whether a sync with `after` may run now.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    Go,
    /// Why not, for the run history and the alert.
    Skip(String),
}

impl Engine {
    /// Reads the latest ended run of each sync `sync` runs after.
    pub async fn gate(&self, sync: &SyncSpec) -> Gate {
        for before in &sync.file.after.value {
            let latest = match self.store.latest_ended_run(before).await {
                Ok(latest) => latest,
                Err(e) => return Gate::Skip(format!("it runs after `{before}`, whose runs could not be read: {e}")),
            };
            if let Some(why) = not_through(before, latest.as_ref()) {
                return Gate::Skip(why);
            }
        }
        Gate::Go
    }

    /// Records that `sync` did not run, and why; alerts as a run's end does.
    pub async fn skip(&self, sync: &SyncSpec, reason: String, started_by: &str) -> SyncReport {
        let opts = RunOptions { started_by: started_by.to_string(), ..Default::default() };
        let mut report = SyncReport::new(sync.name(), &uuid::Uuid::new_v4().to_string(), &opts);
        report.status = RunStatus::Skipped;
        report.error = Some(reason);
        if let Err(e) = self.store.record_skipped(&RunRecord::from(&report)).await {
            report.warn(format!("could not record the skipped run: {e}"));
            return report;
        }
        self.alert(sync, &mut report).await;
        self.write_back(sync.name(), &mut report).await;
        self.keep_report(&report).await;
        report
    }
}

/// Why `before`'s latest ended run holds up the syncs after it; `None` when it got through.
pub fn not_through(before: &str, latest: Option<&RunRecord>) -> Option<String> {
    let Some(run) = latest else {
        return Some(format!("it runs after `{before}`, which has not run yet"));
    };
    let what = match run.status {
        Some(RunStatus::Success | RunStatus::Partial) => return None,
        Some(RunStatus::Failed) => "failed",
        Some(RunStatus::Interrupted) => "was interrupted",
        Some(RunStatus::Skipped) => "was skipped",
        Some(RunStatus::Running) | None => "has not ended",
    };
    let error = run.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
    Some(format!("it runs after `{before}`, whose latest run ({}, started {}) {what}{error}", run.id, run.started_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(status: RunStatus, error: Option<&str>) -> RunRecord {
        RunRecord {
            id: "r1".into(),
            sync: "accounts".into(),
            started_at: "2026-12-07T10:00:00Z".into(),
            status: Some(status),
            error: error.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn only_a_run_that_got_through_lets_the_next_sync_go() {
        assert_eq!(not_through("accounts", Some(&run(RunStatus::Success, None))), None);
        assert_eq!(not_through("accounts", Some(&run(RunStatus::Partial, Some("3 rows rejected")))), None);
        let failed = not_through("accounts", Some(&run(RunStatus::Failed, Some("no such table")))).unwrap();
        assert_eq!(failed, "it runs after `accounts`, whose latest run (r1, started 2026-12-07T10:00:00Z) failed: no such table");
        assert!(not_through("accounts", Some(&run(RunStatus::Skipped, Some("it runs after `owners`..."))))
            .unwrap()
            .contains("was skipped"));
        assert!(not_through("accounts", Some(&run(RunStatus::Interrupted, None))).unwrap().ends_with("was interrupted"));
        assert_eq!(not_through("accounts", None).unwrap(), "it runs after `accounts`, which has not run yet");
    }
}
