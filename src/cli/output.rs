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
    let answered = r.written + r.rejected + r.retryable;
    // What was to be sent, and what was: a run stopped before its send (duplicate keys, the
    // delete guard) says it sent nothing, not the counts it meant to send.
    match (ops.is_empty(), r.dry_run, r.batches == 0 && answered == 0) {
        (true, _, _) => line.push_str("; nothing to send"),
        (false, true, _) => line.push_str(&format!("; would send {}", ops.join(", "))),
        (false, false, true) => line.push_str(&format!("; to send {}, nothing sent", ops.join(", "))),
        (false, false, false) => line.push_str(&format!(
            "; to send {}; sent in {} batch(es): {} written, {} rejected, {} pending",
            ops.join(", "),
            r.batches,
            r.written,
            r.rejected,
            r.retryable
        )),
    }
    if r.limited > 0 {
        line.push_str(&format!("; {} left for the next run (--limit)", r.limited));
    }
    if !r.dry_run {
        line.push_str(&format!(" ({:.1}s)", r.duration_ms as f64 / 1000.0));
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
        let fields = match (&sample.before, &sample.fields) {
            (Some(before), Some(after)) => format!(" {}", field_changes(before, after)),
            (None, Some(f)) => format!(" {f}"),
            _ => String::new(),
        };
        say!("        {:<8} {}{fields}", sample.change, sample.key);
    }
}

/// A changed row's fields that differ from its last written values: `{email: "a" -> "b"}`.
pub fn field_changes(before: &serde_json::Value, after: &serde_json::Value) -> String {
    let Some(after) = after.as_object() else { return after.to_string() };
    let null = serde_json::Value::Null;
    let changed: Vec<String> = after
        .iter()
        .filter_map(|(field, new)| {
            let old = before.get(field).unwrap_or(&null);
            (old != new).then(|| format!("{field}: {old} -> {new}"))
        })
        .collect();
    match changed.is_empty() {
        // Same values, another fingerprint: the sync's definition changed (every row re-sent).
        true => "{no field changed}".to_string(),
        false => format!("{{{}}}", changed.join(", ")),
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

/// A progress bar per sync on stderr (a terminal): the rows read while the model is scanned,
/// then the rows sent of the total, with the rate and what is left. indicatif redraws at most
/// 20 times a second and draws nothing when stderr is not a terminal.
pub fn progress_bars() -> (ProgressFn, Bars) {
    let bars = Bars(Arc::new(Mutex::new(None)));
    let shown = bars.clone();
    let f = ProgressFn(Arc::new(move |p: Progress<'_>| {
        let Ok(mut current) = shown.0.lock() else { return };
        let (sync, sending) = match p {
            Progress::Scanning { sync, .. } => (sync, false),
            Progress::Sending { sync, .. } => (sync, true),
        };
        // A new bar for each sync and phase: a spinner while the total is unknown, then a bar.
        if current.as_ref().is_none_or(|(s, phase, _)| s != sync || *phase != sending) {
            if let Some((_, _, bar)) = current.take() {
                bar.finish_and_clear();
            }
            let bar = match sending {
                false => indicatif::ProgressBar::new_spinner()
                    .with_style(style("{spinner} {prefix}: reading the model: {human_pos} rows ({per_sec})")),
                true => indicatif::ProgressBar::new(0)
                    .with_style(style("{prefix}: sending [{bar:30}] {human_pos}/{human_len} rows ({per_sec}, {eta} left)")),
            };
            bar.set_prefix(sync.to_string());
            *current = Some((sync.to_string(), sending, bar));
        }
        let Some((_, _, bar)) = current.as_ref() else { return };
        match p {
            Progress::Scanning { rows, .. } => bar.set_position(rows),
            Progress::Sending { sent, total, .. } => {
                bar.set_length(total);
                bar.set_position(sent);
            }
        }
    }));
    (f, bars)
}

fn style(template: &str) -> indicatif::ProgressStyle {
    // The templates are constants: a bad one is a bug, shown plainly rather than a panic.
    indicatif::ProgressStyle::with_template(template).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()).progress_chars("=> ")
}

/// The bar being drawn, cleared when its sync's report is printed.
#[derive(Clone)]
pub struct Bars(Arc<Mutex<Option<(String, bool, indicatif::ProgressBar)>>>);

impl Bars {
    pub fn clear(&self) {
        if let Some((_, _, bar)) = self.0.lock().ok().and_then(|mut b| b.take()) {
            bar.finish_and_clear();
        }
    }
}

/// Progress for machines (`--json`): JSON lines on stderr, the first of each phase, then at
/// most one a second, and the last of a send (every row sent) always.
pub fn progress_json() -> ProgressFn {
    let last: Mutex<Option<(String, bool, Instant)>> = Mutex::new(None);
    ProgressFn(Arc::new(move |p: Progress<'_>| {
        let Ok(mut last) = last.lock() else { return };
        let (sync, sending, done, line) = match p {
            Progress::Scanning { sync, rows } => {
                (sync, false, false, serde_json::json!({ "progress": "scanning", "sync": sync, "rows": rows }))
            }
            Progress::Sending { sync, sent, total } => {
                (sync, true, sent >= total, serde_json::json!({ "progress": "sending", "sync": sync, "sent": sent, "total": total }))
            }
        };
        let fresh = last.as_ref().is_none_or(|(s, phase, _)| s != sync || *phase != sending);
        let due = last.as_ref().is_some_and(|(_, _, at)| at.elapsed() >= Duration::from_secs(1));
        if fresh || due || done {
            *last = Some((sync.to_string(), sending, Instant::now()));
            err_line(format_args!("{line}"));
        }
    }))
}
