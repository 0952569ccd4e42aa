//! What a run (or plan) of one sync did, for people (`run`/`plan` output), machines (`--json`)
//! and the run history.

use serde::Serialize;

use super::{RunOptions, Shape};
use crate::destinations::{Op, RowOutcome};
use crate::diff::{Change, Counts};
use crate::state::{RunRecord, RunStatus};
use crate::value::Value;

/// Warnings kept per run; the rest are counted.
const WARNINGS_KEPT: usize = 20;

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct OpCounts {
    pub upsert: u64,
    pub update: u64,
    pub insert: u64,
    pub delete: u64,
    pub clear: u64,
}

impl OpCounts {
    pub fn add(&mut self, op: Op) {
        match op {
            Op::Upsert => self.upsert += 1,
            Op::Update => self.update += 1,
            Op::Insert => self.insert += 1,
            Op::Delete => self.delete += 1,
            Op::Clear => self.clear += 1,
        }
    }
    pub fn total(&self) -> u64 {
        self.upsert + self.update + self.insert + self.delete + self.clear
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub change: &'static str,
    pub key: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<serde_json::Value>,
    /// A changed row's fields as last written, where the change log has them (`log_values`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    /// The key as the change log stores it, to look `before` up.
    #[serde(skip)]
    pub key_text: String,
}

/// How a run ended, as everything after it reads it: the command's exit code, the run history,
/// alerts and metrics are all decided here, from the report (`SyncReport::outcome`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every row that needed sending was written (for a plan: the plan was made).
    Success,
    /// The run finished, with rows rejected, pending or skipped.
    Partial,
    Failed,
    /// Stopped on request (Ctrl-C, SIGTERM): what was answered is committed.
    Interrupted,
    /// Never started: another run of the sync holds it. Not in the run history.
    Busy,
    /// Never ran: a sync it runs after (`after`) did not get through. In the run history, with
    /// the reason; alerts (`skipped`).
    Skipped,
}

/// Exit codes of a command: 0 success, 1 a sync failed (or another run of it held it), 2 an
/// invalid project, config or sync file, 130 stopped on request with nothing failed.
pub mod exit {
    pub const OK: u8 = 0;
    pub const SYNC_FAILED: u8 = 1;
    pub const INVALID: u8 = 2;
    pub const INTERRUPTED: u8 = 130;
}

impl Outcome {
    /// The exit code of a command that ran this one sync.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Success | Outcome::Partial => exit::OK,
            Outcome::Failed | Outcome::Busy | Outcome::Skipped => exit::SYNC_FAILED,
            Outcome::Interrupted => exit::INTERRUPTED,
        }
    }

    /// The exit code of a command that ran several: a failure over an interruption over success.
    pub fn exit_code_of(outcomes: impl IntoIterator<Item = Outcome>) -> u8 {
        let rank = |code: u8| match code {
            exit::SYNC_FAILED => 2,
            exit::INTERRUPTED => 1,
            _ => 0,
        };
        outcomes.into_iter().map(Outcome::exit_code).max_by_key(|&c| rank(c)).unwrap_or(exit::OK)
    }

    /// Whether the run says something of the sync's health, so alerts (failure, recovery,
    /// rejected rows, skipped) may follow: not when it was stopped on request or another run
    /// held the sync.
    pub fn alerts(self) -> bool {
        matches!(self, Outcome::Success | Outcome::Partial | Outcome::Failed | Outcome::Skipped)
    }

    /// The `result` label of `sluice_runs_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
            Outcome::Busy => "busy",
            Outcome::Skipped => "skipped",
        }
    }

    /// Whether the run got through (it moves `sluice_last_success_timestamp_seconds`).
    pub fn got_through(self) -> bool {
        matches!(self, Outcome::Success | Outcome::Partial)
    }
}

/// How a run's work ended (see `SyncReport::settle`).
pub enum Ending {
    Done,
    /// Stopped on request: what was answered is committed, the rest waits for the next run.
    Interrupted(String),
    Failed(String),
}

/// The send phase's pace: what it achieved against what the destination allows.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Sending {
    pub seconds: f64,
    pub rows_per_second: f64,
    /// Requests made (retries included).
    pub requests: u64,
    /// The most batches that were on the wire at once, and the destination's ceiling.
    pub most_in_flight: usize,
    pub max_in_flight: usize,
    /// The destination's published rate limit (`100/10s`), if it has one...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<String>,
    /// ...and the share of it the run used: its requests over what the windows it spanned allow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_used: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SyncReport {
    pub sync: String,
    pub run_id: String,
    pub status: RunStatus,
    pub dry_run: bool,
    pub full_resync: bool,
    /// The sync's definition changed since the last run, so every row is re-sent.
    pub config_changed: bool,
    pub rows_read: u64,
    #[serde(flatten)]
    pub counts: Counts,
    pub null_keys: u64,
    /// Rows skipped because a key is NaN or infinite.
    pub invalid_keys: u64,
    /// Unchanged rows re-sent because the destination no longer holds them.
    pub restored: u64,
    /// Rows rejected before and unchanged since: not sent this run.
    pub held: u64,
    /// Changes not sent because of `--limit`: the next run sends them.
    pub limited: u64,
    pub to_send: OpCounts,
    pub written: u64,
    pub rejected: u64,
    pub retryable: u64,
    pub batches: u64,
    /// A cursor sync's read: past which mark, or why the whole model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<super::cursor::CursorReport>,
    /// `diff = "warehouse"`: the rows that left the source database (added, changed, duplicate
    /// and removed); the rest of `rows_read` stayed there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warehouse_rows: Option<u64>,
    pub error: Option<String>,
    /// The run did not start: another run of the sync holds its lock (`error` names it).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub busy: bool,
    /// The run went past its `max_run_time` and was stopped (`error` says so).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deadline_exceeded: bool,
    pub warnings: Vec<String>,
    pub samples: Vec<Sample>,
    pub duration_ms: u64,
    /// How the send phase went, when it sent anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sending: Option<Sending>,
    /// The alerts this run sent (`[alerts]`): which, and through which destination.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<SentAlert>,
    #[serde(skip)]
    sample_limit: usize,
    #[serde(skip)]
    warnings_dropped: u64,
}

/// An alert a run sent.
#[derive(Clone, Debug, Serialize)]
pub struct SentAlert {
    /// failure, recovery or rejected_rows.
    pub event: String,
    pub destination: String,
}

impl SyncReport {
    pub fn new(sync: &str, run_id: &str, opts: &RunOptions) -> Self {
        SyncReport {
            sync: sync.to_string(),
            run_id: run_id.to_string(),
            status: RunStatus::Running,
            dry_run: opts.dry_run,
            full_resync: opts.full_resync,
            config_changed: false,
            rows_read: 0,
            counts: Counts::default(),
            null_keys: 0,
            invalid_keys: 0,
            restored: 0,
            held: 0,
            limited: 0,
            to_send: OpCounts::default(),
            written: 0,
            rejected: 0,
            retryable: 0,
            batches: 0,
            cursor: None,
            warehouse_rows: None,
            error: None,
            busy: false,
            deadline_exceeded: false,
            warnings: Vec::new(),
            samples: Vec::new(),
            duration_ms: 0,
            sending: None,
            alerts: Vec::new(),
            sample_limit: opts.samples,
            warnings_dropped: 0,
        }
    }

    pub fn fail(&mut self, error: String) {
        self.status = RunStatus::Failed;
        self.error = Some(error);
    }

    /// The status a run ends with: failed or interrupted with the reason, partial when rows
    /// were left behind, else success.
    pub fn settle(&mut self, ending: Ending) {
        match ending {
            Ending::Failed(e) => self.fail(e),
            Ending::Interrupted(why) => {
                self.status = RunStatus::Interrupted;
                self.error = Some(why);
            }
            Ending::Done if self.rejected + self.retryable + self.null_keys + self.invalid_keys + self.held + self.limited > 0 => {
                self.status = RunStatus::Partial
            }
            Ending::Done => self.status = RunStatus::Success,
        }
    }

    /// How the run ended (see [`Outcome`]).
    pub fn outcome(&self) -> Outcome {
        match self.status {
            _ if self.busy => Outcome::Busy,
            RunStatus::Skipped => Outcome::Skipped,
            RunStatus::Success | RunStatus::Running => Outcome::Success,
            RunStatus::Partial => Outcome::Partial,
            RunStatus::Failed => Outcome::Failed,
            RunStatus::Interrupted => Outcome::Interrupted,
        }
    }

    pub fn failed(&self) -> bool {
        self.status == RunStatus::Failed
    }

    pub fn warn(&mut self, message: String) {
        if self.warnings.len() < WARNINGS_KEPT {
            self.warnings.push(message);
        } else {
            self.warnings_dropped += 1;
        }
    }

    pub fn sample(&mut self, change: Change, shape: &Shape, key: &[Value], fields: &[Value]) {
        let name = match change {
            Change::Added => "added",
            Change::Changed => "changed",
            Change::Unchanged => return,
        };
        if self.samples.iter().filter(|s| s.change == name).count() >= self.sample_limit {
            return;
        }
        let key_text = crate::state::keys::plain_key_json(&shape.key_columns, key);
        let key = shape.key_columns.iter().cloned().zip(key.iter().map(Value::to_json)).collect();
        let fields = shape.fields.iter().cloned().zip(fields.iter().map(Value::to_json)).collect();
        let fields = Some(serde_json::Value::Object(fields));
        self.samples.push(Sample { change: name, key: serde_json::Value::Object(key), fields, before: None, key_text });
    }

    pub fn sample_removed(&mut self, keys: impl Iterator<Item = serde_json::Value>) {
        for key in keys.take(self.sample_limit) {
            self.samples.push(Sample { change: "removed", key, fields: None, before: None, key_text: String::new() });
        }
    }

    /// Counts one row's outcome; rejections and pending rows are also named in the warnings.
    /// `key` labels a failed row (built only then: most rows land).
    pub fn tally(&mut self, key: impl FnOnce() -> String, outcome: &RowOutcome) {
        match outcome {
            RowOutcome::Written { .. } => self.written += 1,
            RowOutcome::Rejected(reason) | RowOutcome::RefusedInGroup(reason) => {
                self.rejected += 1;
                self.warn(format!("row ({}) rejected: {reason}", key()));
            }
            RowOutcome::Retryable(reason) => {
                self.retryable += 1;
                self.warn(format!("row ({}) not written, will retry next run: {reason}", key()));
            }
        }
    }

    pub fn warnings_dropped(&self) -> u64 {
        self.warnings_dropped
    }
}

impl From<&SyncReport> for RunRecord {
    fn from(r: &SyncReport) -> RunRecord {
        let mut error = r.error.clone();
        if error.is_none() && r.null_keys > 0 {
            error = Some(format!("{} row(s) with a NULL primary key were skipped", r.null_keys));
        }
        if error.is_none() && r.invalid_keys > 0 {
            error = Some(format!("{} row(s) with a NaN or infinite primary key were skipped", r.invalid_keys));
        }
        RunRecord {
            id: r.run_id.clone(),
            sync: r.sync.clone(),
            status: Some(r.status),
            full_resync: r.full_resync,
            rows_read: r.rows_read as i64,
            added: r.counts.added as i64,
            changed: r.counts.changed as i64,
            unchanged: r.counts.unchanged as i64,
            removed: r.counts.removed as i64,
            written: r.written as i64,
            rejected: (r.rejected + r.null_keys + r.invalid_keys) as i64,
            retryable: r.retryable as i64,
            batches: r.batches as i64,
            error,
            ..Default::default()
        }
    }
}
