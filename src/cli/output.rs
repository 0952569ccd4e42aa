//! Rendering command results as text or JSON, to stdout through [`say!`].

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::engine::{Progress, ProgressFn, SyncReport};
use crate::state::{ChangeRecord, RowError, RunRecord, RunStatus};

/// Prints a line on stdout, like `println!`, except that a stdout nobody reads any more (`sluice
/// log X | head`) is no error: the rest of the output goes nowhere, and the command goes on (a
/// `run` still runs every sync) and exits as it would have. `println!` panics there.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}
pub(crate) use say;

/// `say!` for stderr (errors, invalid syncs): `sluice status 2>&1 | head -1` closes both.
macro_rules! tell {
    ($($arg:tt)*) => {
        $crate::cli::output::err_line(format_args!($($arg)*))
    };
}
pub(crate) use tell;

pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|_| out.write_all(b"\n"));
}

pub fn err_line(args: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|_| err.write_all(b"\n"));
}

#[derive(Serialize)]
pub struct CheckResult {
    pub sync: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Serialize)]
pub struct StatusRow {
    pub sync: String,
    pub runs: Vec<RunRecord>,
    pub pending_rejected: i64,
    pub pending_retryable: i64,
    pub errors: Vec<RowError>,
}

#[derive(Serialize)]
pub struct FailureRows {
    pub sync: String,
    pub rejected: i64,
    pub retryable: i64,
    pub rows: Vec<RowError>,
}

/// `sluice failures`: per sync, the rows that did not land and why.
pub fn failures(syncs: &[FailureRows], as_json: bool) {
    if as_json {
        return json(&serde_json::json!({ "syncs": syncs }));
    }
    for s in syncs {
        if s.rows.is_empty() {
            say!("{}: no failed rows", s.sync);
            continue;
        }
        say!(
            "{}: {} rejected (held until they change or `sluice retry {}`), {} to retry on the next run",
            s.sync,
            s.rejected,
            s.sync,
            s.retryable
        );
        for e in &s.rows {
            say!("  {} {:<9} {} attempt(s), first {} last {}: {}", e.key, e.kind, e.attempts, e.first_seen, e.last_seen, e.message);
        }
        let shown = s.rows.len() as i64;
        if s.rejected + s.retryable > shown {
            say!("  ... and {} more (--limit)", s.rejected + s.retryable - shown);
        }
    }
}

/// `sluice log`: one line per row operation, newest first.
pub fn changes(sync: &str, changes: &[ChangeRecord], as_json: bool) {
    if as_json {
        return json(&serde_json::json!({ "sync": sync, "changes": changes }));
    }
    if changes.is_empty() {
        say!("{sync}: no changes logged (for this filter)");
        return;
    }
    for c in changes {
        let run: String = c.run_id.chars().take(8).collect();
        let mut line = format!("{}  run {run}  {:<6} {:<9} {}", c.changed_at, c.op, c.outcome, c.key);
        if let Some(id) = &c.destination_id {
            line.push_str(&format!("  id={id}"));
        }
        if let Some(fields) = &c.fields {
            line.push_str(&format!("  {fields}"));
        }
        if let Some(e) = &c.error {
            line.push_str(&format!("  error: {e}"));
        }
        say!("{line}");
    }
}

pub fn json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => say!("{text}"),
        Err(e) => tell!("error: cannot render JSON: {e}"),
    }
}

pub fn check(results: &[CheckResult], as_json: bool) {
    if as_json {
        let ok = results.iter().all(|r| r.ok);
        return json(&serde_json::json!({ "ok": ok, "syncs": results }));
    }
    if results.is_empty() {
        say!("no syncs: add a .sql file under syncs/");
    }
    for r in results {
        say!("{:<6} {}: {}", if r.ok { "ok" } else { "ERROR" }, r.sync, r.detail);
    }
}

fn status_word(s: RunStatus, dry_run: bool) -> &'static str {
    match s {
        _ if dry_run && s != RunStatus::Failed => "plan",
        RunStatus::Success => "ok",
        RunStatus::Partial => "partial",
        RunStatus::Failed => "FAILED",
        RunStatus::Interrupted => "interrupted",
        RunStatus::Running => "running",
        RunStatus::Skipped => "SKIPPED",
    }
}

pub fn report(r: &SyncReport) {
    if r.status == RunStatus::Skipped {
        // It never ran: no counts to show, only why.
        say!("{:<7} {}: {}", status_word(r.status, r.dry_run), r.sync, r.error.as_deref().unwrap_or("not run"));
        return;
    }
    let c = &r.counts;
    let mut line = format!(
        "{:<7} {}: {} row(s): {} added, {} changed, {} unchanged, {} removed",
        status_word(r.status, r.dry_run),
        r.sync,
        r.rows_read,
        c.added,
        c.changed,
        c.unchanged,
        c.removed
    );
    let s = &r.to_send;
    let ops: Vec<String> = [("upsert", s.upsert), ("update", s.update), ("insert", s.insert), ("delete", s.delete), ("clear", s.clear)]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(op, n)| format!("{op} {n}"))
        .collect();
    let ops = if ops.is_empty() { "nothing".to_string() } else { ops.join(", ") };
    if r.dry_run {
        line.push_str(&format!("; would send {ops}"));
    } else {
        line.push_str(&format!(
            "; sent {ops} in {} batch(es): {} written, {} rejected, {} pending ({:.1}s)",
            r.batches,
            r.written,
            r.rejected,
            r.retryable,
            r.duration_ms as f64 / 1000.0
        ));
        if let Some(p) = &r.sending {
            line.push_str(&format!(
                "; {:.0} rows/s, {} request(s), up to {} of {} in flight",
                p.rows_per_second, p.requests, p.most_in_flight, p.max_in_flight
            ));
            if let (Some(limit), Some(used)) = (&p.rate_limit, p.rate_limit_used) {
                line.push_str(&format!(", {:.0}% of {limit}", used * 100.0));
            }
        }
    }
    say!("{line}");
    if let Some(c) = &r.cursor {
        let read = match (&c.after, c.full_read) {
            (Some(after), _) => format!("read rows with {} >= {after}", c.column),
            (None, Some(why)) => format!("read the whole model ({why})"),
            (None, None) => "read the whole model".to_string(),
        };
        let next = c.next.as_ref().map(|n| format!("; the next run reads from {n}")).unwrap_or_default();
        say!("        cursor: {read}{next}");
    }
    if let Some(e) = &r.error {
        say!("        error: {e}");
    }
    for w in &r.warnings {
        say!("        warning: {w}");
    }
    if r.warnings_dropped() > 0 {
        say!("        ... and {} more warning(s)", r.warnings_dropped());
    }
    for sample in &r.samples {
        let fields = sample.fields.as_ref().map(|f| format!(" {f}")).unwrap_or_default();
        say!("        {:<8} {}{fields}", sample.change, sample.key);
    }
}

pub fn status(rows: &[StatusRow], as_json: bool) {
    if as_json {
        return json(&serde_json::json!({ "syncs": rows }));
    }
    for row in rows {
        if row.runs.is_empty() {
            say!("{}: never run", row.sync);
        }
        for run in &row.runs {
            say!(
                "{}: {} at {}: read {}: {} added, {} changed, {} removed; {} written, {} rejected, {} pending{}",
                row.sync,
                run.status.map(|s| s.as_str()).unwrap_or("?"),
                run.started_at,
                run.rows_read,
                run.added,
                run.changed,
                run.removed,
                run.written,
                run.rejected,
                run.retryable,
                run.error.as_ref().map(|e| format!("\n    error: {e}")).unwrap_or_default()
            );
        }
        if row.pending_rejected + row.pending_retryable > 0 {
            say!("    pending rows: {} rejected, {} to retry", row.pending_rejected, row.pending_retryable);
            for e in &row.errors {
                say!("      {} {} ({} attempt(s)): {}", e.key, e.kind, e.attempts, e.message);
            }
        }
    }
}

/// A one-line progress display on stderr, redrawn at most ten times a second.
pub fn progress_line() -> ProgressFn {
    let last = Mutex::new(Instant::now() - Duration::from_secs(1));
    ProgressFn(Arc::new(move |p: Progress<'_>| {
        let Ok(mut last) = last.lock() else { return };
        if last.elapsed() < Duration::from_millis(100) {
            return;
        }
        *last = Instant::now();
        let line = match p {
            Progress::Scanning { sync, rows } => format!("{sync}: reading the model: {rows} rows"),
            Progress::Sending { sync, sent, total } => format!("{sync}: sending: {sent}/{total} rows"),
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }))
}

pub fn clear_progress() {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K");
    let _ = err.flush();
}
