//! One run of one sync: model rows -> diff -> spool -> batches -> destination -> outcomes -> state.
//!
//! The run has two phases. The *scan* reads the whole model, diffs every row against the stored
//! state and spools the rows to send; nothing is sent before it ends, so duplicate keys fail the
//! run with nothing written. The *send* phase (`send`) writes the spool in batches and commits
//! each batch's outcomes to the state store after the destination answered, while the next
//! batch is being sent.

pub mod alerts;
mod cursor;
mod finish;
mod guard;
mod hashing;
mod report;
mod retry;
mod send;
mod shape;
mod spool;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

pub use cursor::CursorReport;
pub use report::{OpCounts, Sample, SyncReport};
pub use send::IN_FLIGHT as BATCHES_IN_FLIGHT;
pub use shape::{check_capabilities, config_fingerprint, Shape};

use crate::destinations::{self, Destination, DestinationError, Op};
use crate::diff::{Change, Differ, Duplicate};
use crate::project::{Mode, OnRemove, Project, ProjectError, SyncSpec};
use crate::source::{Source, SourceError};
use crate::state::{keys, RunRecord, StateError, Store, SyncLock};
use crate::value::Value;
use hashing::Hashed;
use spool::{Spool, SpoolRow};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("destination `{name}`: {error}")]
    Destination { name: String, error: DestinationError },
    #[error("{0}")]
    Invalid(String),
    /// Stopped on request (Ctrl-C, SIGTERM, a daemon shutting down): not a failure.
    #[error("{0}")]
    Cancelled(String),
    /// The run went past its `max_run_time`.
    #[error("the run took longer than max_run_time ({}) and was stopped; what it committed stays, the rest is sent by the next run \
             (raise `max_run_time` in the sync's header if it needs longer, or look for what holds it up: `statement_timeout` bounds the model's query)", humantime::format_duration(*.0))]
    Deadline(std::time::Duration),
}

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Re-send every row, whatever the stored fingerprints say.
    pub full_resync: bool,
    /// Plan only: diff and report, send and store nothing.
    pub dry_run: bool,
    /// Let a mirror run past the delete guard (`--allow-deletes`).
    pub allow_deletes: bool,
    /// Send rows the destination rejected before even if unchanged (`sluice retry`).
    pub retry_rejected: bool,
    /// Sample rows to keep per change class (plan output).
    pub samples: usize,
    /// Cancelled: finish the batch in flight, commit it, stop.
    pub cancel: CancellationToken,
    /// Told how a run advances (the CLI draws a progress line from it on a terminal).
    pub progress: Option<ProgressFn>,
    /// Who starts the run (`sluice run`, `the daemon's schedule`): named to a run that finds
    /// the sync locked by this one.
    pub started_by: String,
}

/// Where a run is. Reported every chunk of rows read and every batch sent.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    Scanning { sync: &'a str, rows: u64 },
    Sending { sync: &'a str, sent: u64, total: u64 },
}

#[derive(Clone)]
pub struct ProgressFn(pub Arc<dyn Fn(Progress<'_>) + Send + std::marker::Sync>);

impl std::fmt::Debug for ProgressFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressFn")
    }
}

impl RunOptions {
    fn progress(&self, p: Progress<'_>) {
        if let Some(f) = &self.progress {
            (f.0)(p);
        }
    }
}

/// How many duplicate keys a failed run names.
const DUPLICATES_SHOWN: usize = 10;

/// The resources a set of runs share: the state store and one client per source/destination.
/// It owns what it needs of the project, so a daemon can keep one per loaded configuration.
pub struct Engine {
    pub store: Store,
    destinations: HashMap<String, Result<Arc<dyn Destination>, String>>,
    /// Destination name -> kind, mixed into configuration fingerprints.
    kinds: HashMap<String, String>,
    delete_guard: crate::project::config::DeleteGuardConfig,
    retry: crate::project::config::RetryConfig,
    sources: HashMap<String, Result<Source, String>>,
    alerts: Option<crate::project::config::AlertsConfig>,
    /// How long the change log keeps entries (`[state] keep_changes`).
    keep_changes: std::time::Duration,
}

impl Engine {
    pub async fn open(project: &Project) -> Result<Engine, StateError> {
        let store = Store::open(project.config.state.url.expose_secret(), &project.root).await?;
        let destinations = project
            .config
            .destinations
            .iter()
            .map(|(name, spec)| (name.clone(), destinations::build(name, spec, &project.root).map_err(|e| e.to_string())))
            .collect();
        let kinds = project.config.destinations.iter().map(|(name, spec)| (name.clone(), spec.kind.clone())).collect();
        let sources = project
            .config
            .sources
            .iter()
            .map(|(name, cfg)| {
                let runs = project.config.daemon.max_concurrent_runs;
                (name.clone(), Source::new(name, cfg, &project.root, runs).map_err(|e| e.to_string()))
            })
            .collect();
        Ok(Engine {
            store,
            destinations,
            kinds,
            sources,
            delete_guard: project.config.delete_guard.clone(),
            retry: project.config.retry.clone(),
            alerts: project.config.alerts.clone(),
            keep_changes: project.config.state.keep_changes,
        })
    }

    pub fn destination(&self, name: &str) -> Result<&Arc<dyn Destination>, RunError> {
        match self.destinations.get(name) {
            Some(Ok(d)) => Ok(d),
            Some(Err(e)) => Err(RunError::Invalid(e.clone())),
            None => Err(RunError::Invalid(format!("destination `{name}` is not defined in sluice.toml"))),
        }
    }

    pub fn source(&self, name: &str) -> Result<&Source, RunError> {
        match self.sources.get(name) {
            Some(Ok(s)) => Ok(s),
            Some(Err(e)) => Err(RunError::Invalid(e.clone())),
            None => Err(RunError::Invalid(format!("source `{name}` is not defined in sluice.toml"))),
        }
    }

    fn destination_kind(&self, sync: &SyncSpec) -> &str {
        self.kinds.get(&sync.destination).map(String::as_str).unwrap_or("")
    }

    /// Runs (or, with `dry_run`, plans) one sync. Never panics on a bad sync: every failure
    /// ends up in the report and, for real runs, in the run history.
    ///
    /// A real run holds the sync's lock (`Store::lock_sync`) from before it records its start
    /// until it has recorded its end: a sync another run holds is not run at all, and the
    /// report says who holds it (`SyncReport::busy`).
    pub async fn run(&self, sync: &SyncSpec, opts: &RunOptions) -> SyncReport {
        let started = Instant::now();
        let run_id = uuid::Uuid::new_v4().to_string();
        let mut report = SyncReport::new(sync.name(), &run_id, opts);
        let lock = if opts.dry_run {
            None
        } else {
            match self.store.lock_sync(sync.name(), &crate::state::holder(&opts.started_by)).await {
                Ok(lock) => Some(lock),
                Err(e) => {
                    report.busy = matches!(e, StateError::Busy { .. });
                    report.fail(e.to_string());
                    return report;
                }
            }
        };
        tracing::info!(sync = %sync.name(), run_id = %run_id, dry_run = opts.dry_run, "run started");
        if let Some(lock) = lock {
            report = self.locked_run(sync, opts, &lock, report, started).await;
            lock.release().await;
            return report;
        }
        let result = guarded(within(sync.file.max_run_time, self.run_inner(sync, opts, &run_id, None, &mut report))).await;
        report.settle(outcome(result, opts));
        report.duration_ms = started.elapsed().as_millis() as u64;
        report
    }

    /// A real run, under the sync's lock: recorded, folded, alerted.
    async fn locked_run(
        &self,
        sync: &SyncSpec,
        opts: &RunOptions,
        lock: &SyncLock,
        mut report: SyncReport,
        started: Instant,
    ) -> SyncReport {
        let run_id = report.run_id.clone();
        if let Err(e) = self.store.begin_run(sync.name(), &run_id, opts.full_resync).await {
            report.fail(e.to_string());
            return report;
        }
        let deadline = sync.file.max_run_time;
        let result = guarded(within(deadline, self.run_inner(sync, opts, &run_id, Some(lock), &mut report))).await;
        report.deadline_exceeded = matches!(result, Err(RunError::Deadline(_)));
        report.settle(outcome(result, opts));
        // What this run staged goes into `sync_rows` now, in key order; if that fails, the
        // rows stay staged (committed all the same) and the next run folds them.
        let folding = Instant::now();
        match self.store.fold(sync.name()).await {
            Ok(rows) => tracing::debug!(sync = %sync.name(), rows, ms = folding.elapsed().as_millis() as u64, "state folded"),
            Err(e) => report.warn(format!("the state store could not fold this run's rows yet (the next run will): {e}")),
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        let record = RunRecord::from(&report);
        if let Err(e) = self.store.finish_run(&record).await {
            report.fail(format!("could not record the run: {e}"));
        }
        self.alert(sync, &mut report).await;
        self.prune_changes(sync, &mut report).await;
        report
    }

    /// Forgets what the destination holds for `name` (`sluice reset`), under the sync's lock:
    /// never beside a run of it.
    pub async fn reset(&self, name: &str, started_by: &str) -> Result<u64, StateError> {
        let lock = self.store.lock_sync(name, &crate::state::holder(started_by)).await?;
        let result = self.store.reset(name).await;
        lock.release().await;
        result
    }

    async fn run_inner(
        &self,
        sync: &SyncSpec,
        opts: &RunOptions,
        run_id: &str,
        lock: Option<&SyncLock>,
        report: &mut SyncReport,
    ) -> Result<(), RunError> {
        let name = sync.name();
        let mode = sync.file.mode;
        let destination = self.destination(&sync.destination)?;
        let caps = destination.capabilities();
        shape::check_capabilities(sync, &caps)?;
        let source = self.source(&sync.source)?;

        let dest_err = |error: DestinationError| RunError::Destination { name: sync.destination.clone(), error };

        // Where the rows land is part of the definition: a sync pointed at another spreadsheet,
        // endpoint or account sends every row there once. The identity counts once it differs
        // from the first one recorded, so stores from before identities keep their fingerprints.
        let identity =
            shape::identity_hash(&retry::identity_with_retry(destination.as_ref(), &caps, &opts.cancel).await.map_err(dest_err)?);
        let meta = self.store.sync_meta(name).await?;
        let moved_on = meta.as_ref().and_then(|m| m.first_identity.as_ref()).is_some_and(|first| *first != identity);
        let config_fp = config_fingerprint(sync, self.destination_kind(sync), caps.presentation, moved_on.then_some(&*identity));
        let stored_fp = meta.as_ref().map(|m| m.config_fingerprint.clone());
        report.config_changed = stored_fp.as_ref().is_some_and(|s| *s != config_fp);
        let moved = meta.as_ref().and_then(|m| m.identity.as_ref()).is_some_and(|last| *last != identity);
        // Rejected rows stay held back while unchanged, until `sluice retry` or their hold ends.
        let hold_for = sync.file.retry_rejected_after.unwrap_or(self.retry.rejected_after);
        // A hold longer than the calendar (e.g. "1000y": never) reaches back to the start of time.
        let held_since = chrono::Duration::from_std(hold_for)
            .ok()
            .and_then(|d| chrono::Utc::now().checked_sub_signed(d))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let holds = if opts.retry_rejected { Default::default() } else { self.store.rejected_holds(name).await? };
        // A cursor sync reads only the rows from its stored mark on (or everything, and says
        // why); a rejected row whose hold ran out is only seen by a whole read.
        let hold_ended = holds.values().any(|(_, seen)| chrono::DateTime::parse_from_rfc3339(seen).map_or(true, |t| t <= held_since));
        let stored_cursor = if sync.file.cursor.is_some() { self.store.cursor(name).await? } else { None };
        let mut cursor = cursor::RunCursor::plan(sync, &config_fp, stored_cursor, opts, hold_ended);
        report.cursor = cursor.as_ref().map(|c| c.report.clone());
        let after = cursor.as_ref().and_then(|c| c.after.as_ref());
        let incremental = after.is_some();
        // The stored state loads while the model query starts. The reader stops once a
        // few chunks wait for the diff (the source's and the hashing stage's channels are
        // bounded), so the load is on a run's critical path:
        // hence its packed form (`state::pages`, a few hundred blobs, not a row per pair).
        let scan_started = Instant::now();
        let load = async {
            let stored = self.store.snapshot(name, !opts.dry_run).await;
            tracing::debug!(sync = %name, ms = scan_started.elapsed().as_millis() as u64, "stored state loaded");
            stored
        };
        let stopped = || RunError::Cancelled("stopped on request while reading the model; nothing was sent".into());
        // A model whose query takes long to give its first row is stopped too.
        let (snapshot, stream) = tokio::select! {
            both = async { tokio::join!(load, source.stream(&sync.file.model, after, sync.file.statement_timeout)) } => both,
            _ = opts.cancel.cancelled() => return Err(stopped()),
        };
        let snapshot = snapshot?;

        // ---- scan: model -> diff -> spool ----
        let stream = stream?;
        let shape = Shape::new(sync, &stream.columns)?;
        let target = shape.target(sync, run_id);
        // Opened before the scan: a destination that reads its keys when opened can tell which
        // stored rows someone removed by hand (`Writer::holds`). A plan opens nothing.
        let writer = if opts.dry_run {
            None
        } else {
            Some(retry::open_with_retry(destination.as_ref(), &target, &caps, &opts.cancel).await.map_err(dest_err)?)
        };
        // Only a writer that read its keys can tell; asking the others would build every
        // unchanged row's key for nothing.
        let heal = matches!(mode, Mode::Upsert | Mode::Mirror) && writer.as_ref().is_some_and(|w| w.reads_keys());
        let mut differ = Differ::new(snapshot, opts.full_resync);
        let mut spool = Spool::new().map_err(RunError::Invalid)?;
        let mut duplicates: Vec<String> = Vec::new();
        let mut duplicate_count = 0u64;
        let mut settled: Vec<crate::value::Hash128> = Vec::new();
        // Per chunk: its rows hashed (on their own thread: `hashing`), then the chunk
        // classified in one call (its stored pairs are looked up together: see
        // `Differ::classify_chunk`), then each row acted on. Values are built only for rows to send.
        let mut hashed_chunks = hashing::spawn(shape.clone(), Value::Text(config_fp.clone()), stream.rows);
        let mut changes = Vec::new();
        loop {
            // Checked between chunks, and while waiting for one: a stop request ends the scan at
            // once (dropping the stream stops the source's query).
            let hashed = tokio::select! {
                biased;
                _ = opts.cancel.cancelled() => return Err(stopped()),
                next = hashed_chunks.recv() => match next {
                    Some(hashed) => hashed,
                    None => break,
                },
            };
            opts.progress(Progress::Scanning { sync: name, rows: report.rows_read });
            let Hashed { chunk, probes, rows, computed, bad_keys } = hashed?;
            let first_row = report.rows_read;
            report.rows_read += chunk.len() as u64;
            if let (Some(c), Some(i)) = (cursor.as_mut(), shape.cursor_idx) {
                for r in 0..chunk.len() {
                    c.see(&chunk.value(r, i)?);
                }
            }
            for (r, k, why) in bad_keys {
                let (row, column) = (first_row + r as u64 + 1, &shape.key_columns[k]);
                match why {
                    hashing::BadKey::Null => {
                        report.null_keys += 1;
                        report.warn(format!(
                            "model row {row} has NULL in primary key column `{column}`: row skipped (fix the model or filter it out)"
                        ));
                    }
                    hashing::BadKey::NotFinite => {
                        report.invalid_keys += 1;
                        let value = chunk.value(r, shape.key_idx[k]).map(|v| v.to_text()).unwrap_or_default();
                        report.warn(format!(
                            "model row {row} has {value} in primary key column `{column}`: row skipped (a key must be a finite \
                             number: filter the row out, or key the sync on another column)"
                        ));
                    }
                }
            }
            let mut computed = computed.into_iter();
            differ.classify_chunk(&probes, &mut changes);
            for ((&r, &(key_hash, fingerprint)), change) in rows.iter().zip(&probes).zip(changes.drain(..)) {
                // (`computed` is empty for syncs without static values or templates.)
                let computed = computed.next();
                let key = || chunk.values(r, &shape.key_idx);
                let removed_by_hand = match (&change, &writer) {
                    (Ok(Change::Unchanged), Some(w)) if heal => w.holds(&key()?) == Some(false),
                    _ => false,
                };
                let change = match change {
                    Ok(Change::Unchanged) if removed_by_hand => {
                        report.restored += 1;
                        Change::Changed
                    }
                    Ok(c) => c,
                    Err(Duplicate) => {
                        duplicate_count += 1;
                        if duplicates.len() < DUPLICATES_SHOWN {
                            duplicates.push(format!("({})", keys::key_label(&shape.key_columns, &key()?)));
                        }
                        continue;
                    }
                };
                if change == Change::Unchanged {
                    // Rejected once, but the destination holds what the model says now (the row
                    // went back to its last written value): the error is settled.
                    if holds.contains_key(&key_hash) {
                        settled.push(key_hash);
                    }
                    continue;
                }
                let still_held = holds.get(&key_hash).is_some_and(|(fp, seen)| {
                    *fp == fingerprint && chrono::DateTime::parse_from_rfc3339(seen).is_ok_and(|t| t > held_since)
                });
                if still_held {
                    report.held += 1;
                    continue;
                }
                let fields = match computed {
                    Some(values) => values,
                    None => chunk.values(r, &shape.field_idx)?,
                };
                let key = key()?;
                report.sample(change, &shape, &key, &fields);
                if let Some(op) = op_for(mode, change) {
                    report.to_send.add(op);
                    spool.push(&SpoolRow { op, key_hash, fingerprint, key, fields }).map_err(RunError::Invalid)?;
                }
            }
        }
        // New keys are checked for duplicates once the scan ended; their rows are in the spool,
        // which names them.
        let repeated = differ.end_scan();
        if duplicate_count > 0 || !repeated.is_empty() {
            duplicate_count += repeated.len() as u64;
            if !repeated.is_empty() {
                let wanted: rustc_hash::FxHashSet<_> = repeated.into_iter().collect();
                let room = DUPLICATES_SHOWN.saturating_sub(duplicates.len());
                let named = spool.find(&wanted, room).map_err(RunError::Invalid)?;
                duplicates.extend(named.iter().map(|row| format!("({})", keys::key_label(&shape.key_columns, &row.key))));
            }
            // Rows held back (rejected before, unchanged) are not spooled, so a few may go unnamed.
            let shown = match (duplicates.len(), duplicate_count as usize > duplicates.len()) {
                (0, _) => String::new(),
                (_, true) => format!(": {}, ...", duplicates.join(", ")),
                (_, false) => format!(": {}", duplicates.join(", ")),
            };
            return Err(RunError::Invalid(format!(
                "the model returned {duplicate_count} duplicate primary key(s), nothing was sent{shown} (make `{}` unique in the model)",
                shape.key_columns.join(", ")
            )));
        }
        tracing::debug!(sync = %name, rows = report.rows_read, ms = scan_started.elapsed().as_millis() as u64, "model read and diffed");
        // Errors of rows that left the model can never be fixed by a retry: forgotten below, once
        // the delete guard has let the run go on (a broken, empty model must not erase them).
        // An incremental read sees only the rows past the cursor: the others have not left.
        let mut stale_errors: Vec<_> = if opts.dry_run || incremental {
            Vec::new()
        } else {
            self.store.error_hashes(name).await?.into_iter().filter(|h| !differ.seen(*h)).collect()
        };
        if !opts.dry_run {
            stale_errors.extend(settled);
        }
        let (mut counts, mut removed, cleared) = differ.finish();
        if incremental {
            counts.removed = 0;
            removed.clear();
        }
        report.counts = counts;
        // Rows that left the model: deleted (mirror), cleared, or left alone, by `on_remove`.
        let (deletes, clears) = match sync.file.on_remove {
            // Records cleared under an earlier on_remove = "clear" go too.
            OnRemove::Delete => (removed.into_iter().chain(cleared).collect(), Vec::new()),
            OnRemove::Clear => (Vec::new(), removed),
            OnRemove::Ignore => (Vec::new(), Vec::new()),
        };
        report.to_send.delete = deletes.len() as u64;
        report.to_send.clear = clears.len() as u64;
        if moved && report.config_changed {
            report.warn(format!(
                "destination `{}` now points at another place than at the last run (its spreadsheet, endpoint, file, command or \
                 account changed), which holds none of this sync's rows: every row is sent there once",
                sync.destination
            ));
        } else if report.config_changed {
            report.warn("the sync's mode, key, mapping, target or destination changed: every row is re-sent".into());
        }
        // The delete guard, before anything is sent: a run it stops sends nothing at all.
        let stored_rows = counts.changed + counts.unchanged + counts.removed;
        let limits = guard::limits(&self.delete_guard, &sync.file);
        if let Some(why) =
            guard::violation(&limits, (deletes.len() + clears.len()) as u64, stored_rows, report.rows_read).filter(|_| !opts.allow_deletes)
        {
            let message = format!(
                "delete guard: {why}; nothing was sent. If that is intended, run `sluice run {name} --allow-deletes` \
                 (or raise max_deletes / max_delete_pct); otherwise check the model"
            );
            if !opts.dry_run {
                return Err(RunError::Invalid(message));
            }
            report.warn(format!("a real run would stop here: {message}"));
        }
        if !stale_errors.is_empty() {
            self.store.forget_errors(name, &stale_errors).await?;
        }
        if opts.dry_run {
            let removals = if deletes.is_empty() { &clears } else { &deletes };
            let stored = self.store.lookup(name, &removals[..removals.len().min(opts.samples)]).await?;
            report.sample_removed(stored.values().map(|r| keys::display_key_json(&r.key_json)));
            return Ok(());
        }

        if report.held > 0 {
            report.warn(format!(
                "{} row(s) the destination rejected before are unchanged and held back (see `sluice failures {name}`; `sluice retry {name}` sends them now)",
                report.held
            ));
        }
        if report.restored > 0 {
            report.warn(format!(
                "{} unchanged row(s) are missing from the destination (removed by hand?) and are written again",
                report.restored
            ));
        }

        // ---- send: spool -> batches -> destination -> outcomes -> state ----
        let Some(mut writer) = writer else { return Ok(()) };
        writer.take_warnings().into_iter().for_each(|w| report.warn(w));
        let batch_rows = writer.preferred_batch_rows(report.to_send.total()).unwrap_or(caps.max_batch_rows).max(1);
        let Some(lock) = lock else { return Ok(()) };
        let send = send::Send {
            store: &self.store,
            lock,
            name,
            run_id,
            destination: &sync.destination,
            shape: &shape,
            target: &target,
            caps: &caps,
            log_values: sync.file.log_values,
            opts,
            batch_rows,
            needs_ids: self.store.has_destination_ids(name).await?,
        };
        let reader = spool.into_reader().map_err(RunError::Invalid)?;
        send.run(writer.as_mut(), reader, &deletes, &clears, report).await?;
        writer.close().await.map_err(dest_err)?;
        let recorded = meta
            .as_ref()
            .is_some_and(|m| m.config_fingerprint == config_fp && m.identity.as_deref() == Some(&*identity) && m.first_identity.is_some());
        if !recorded {
            self.store.set_sync_meta(name, &config_fp, &identity).await?;
        }
        if let Some(next) = cursor.as_ref().and_then(|c| c.next()) {
            self.advance_cursor(name, next, report).await?;
        }
        Ok(())
    }
}

impl Engine {
    /// Stores a cursor sync's new mark, unless rows of this run wait for a retry: a read past
    /// the new mark would never return them, so the mark stays and the next run reads them again
    /// (the diff keeps the rows already written from being sent twice).
    async fn advance_cursor(&self, name: &str, next: crate::state::StoredCursor, report: &mut SyncReport) -> Result<(), RunError> {
        if report.retryable > 0 {
            report.warn(format!(
                "{} row(s) wait for a retry, so the cursor stays where it was and the next run reads them again",
                report.retryable
            ));
            return Ok(());
        }
        let text = next.value.to_text();
        self.store.set_cursor(name, &next).await?;
        if let Some(c) = report.cursor.as_mut() {
            c.next = Some(text);
        }
        Ok(())
    }
}

/// A run's work, with a panic (a bug) caught: the run still ends, is recorded as failed with the
/// panic's message, and frees its lock; the process and the other syncs go on.
async fn guarded(work: impl std::future::Future<Output = Result<(), RunError>>) -> Result<(), RunError> {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Err(RunError::Invalid(format!("sluice hit a bug and stopped this run: {message} (please report it)")))
        }
    }
}

/// A run's work, ended when it takes longer than `deadline` (zero: no deadline). Ending it drops
/// it: a commit in flight rolls back, and the batch on the wire is sent again by the next run.
async fn within(deadline: std::time::Duration, work: impl std::future::Future<Output = Result<(), RunError>>) -> Result<(), RunError> {
    if deadline.is_zero() {
        return work.await;
    }
    tokio::time::timeout(deadline, work).await.unwrap_or(Err(RunError::Deadline(deadline)))
}

/// How a run ended, for its report: a run stopped on request ended interrupted, not failed,
/// even when the stop cut a wait short and surfaced as that wait's error.
fn outcome(result: Result<(), RunError>, opts: &RunOptions) -> report::Ending {
    match result {
        Ok(()) => report::Ending::Done,
        Err(RunError::Cancelled(why)) => report::Ending::Interrupted(why),
        Err(e) if opts.cancel.is_cancelled() => report::Ending::Interrupted(format!("stopped on request: {e}")),
        Err(e) => report::Ending::Failed(e.to_string()),
    }
}

/// What a diff result means in each mode (removals are handled separately: mirror only).
fn op_for(mode: Mode, change: Change) -> Option<Op> {
    match (mode, change) {
        (_, Change::Unchanged) => None,
        (Mode::Upsert | Mode::Mirror, _) => Some(Op::Upsert),
        (Mode::Update, _) => Some(Op::Update),
        (Mode::Insert, Change::Added) => Some(Op::Insert),
        (Mode::Insert, Change::Changed) => None,
    }
}
