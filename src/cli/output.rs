//! Rendering command results as text or JSON.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::engine::{Progress, ProgressFn, SyncReport};
use crate::state::{ChangeRecord, RowError, RunRecord, RunStatus};

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
            println!("{}: no failed rows", s.sync);
            continue;
        }
        println!(
            "{}: {} rejected (held until they change or `sluice retry {}`), {} to retry on the next run",
            s.sync, s.rejected, s.sync, s.retryable
        );
        for e in &s.rows {
            println!("  {} {:<9} {} attempt(s), first {} last {}: {}", e.key, e.kind, e.attempts, e.first_seen, e.last_seen, e.message);
        }
        let shown = s.rows.len() as i64;
        if s.rejected + s.retryable > shown {
            println!("  ... and {} more (--limit)", s.rejected + s.retryable - shown);
        }
    }
}

/// `sluice log`: one line per row operation, newest first.
pub fn changes(sync: &str, changes: &[ChangeRecord], as_json: bool) {
    if as_json {
        return json(&serde_json::json!({ "sync": sync, "changes": changes }));
    }
    if changes.is_empty() {
        println!("{sync}: no changes logged (for this filter)");
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
        println!("{line}");
    }
}

pub fn json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot render JSON: {e}"),
    }
}

pub fn check(results: &[CheckResult], as_json: bool) {
    if as_json {
        let ok = results.iter().all(|r| r.ok);
        return json(&serde_json::json!({ "ok": ok, "syncs": results }));
    }
    if results.is_empty() {
        println!("no syncs: add a .sql file under syncs/");
    }
    for r in results {
        println!("{:<6} {}: {}", if r.ok { "ok" } else { "ERROR" }, r.sync, r.detail);
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
    }
}

pub fn report(r: &SyncReport) {
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
    }
    println!("{line}");
    if let Some(c) = &r.cursor {
        let read = match (&c.after, c.full_read) {
            (Some(after), _) => format!("read rows with {} >= {after}", c.column),
            (None, Some(why)) => format!("read the whole model ({why})"),
            (None, None) => "read the whole model".to_string(),
        };
        let next = c.next.as_ref().map(|n| format!("; the next run reads from {n}")).unwrap_or_default();
        println!("        cursor: {read}{next}");
    }
    if let Some(e) = &r.error {
        println!("        error: {e}");
    }
    for w in &r.warnings {
        println!("        warning: {w}");
    }
    if r.warnings_dropped() > 0 {
        println!("        ... and {} more warning(s)", r.warnings_dropped());
    }
    for sample in &r.samples {
        let fields = sample.fields.as_ref().map(|f| format!(" {f}")).unwrap_or_default();
        println!("        {:<8} {}{fields}", sample.change, sample.key);
    }
}

pub fn status(rows: &[StatusRow], as_json: bool) {
    if as_json {
        return json(&serde_json::json!({ "syncs": rows }));
    }
    for row in rows {
        if row.runs.is_empty() {
            println!("{}: never run", row.sync);
        }
        for run in &row.runs {
            println!(
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
            println!("    pending rows: {} rejected, {} to retry", row.pending_rejected, row.pending_retryable);
            for e in &row.errors {
                println!("      {} {} ({} attempt(s)): {}", e.key, e.kind, e.attempts, e.message);
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
