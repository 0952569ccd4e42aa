//! One run of one sync: model rows -> diff -> spool -> batches -> destination -> outcomes -> state.
//!
//! The run has two phases. The *scan* reads the whole model, diffs every row against the stored
//! state and spools the rows to send; nothing is sent before it ends, so duplicate keys fail the
//! run with nothing written. The *send* phase (`send`) writes the spool in batches and commits
//! each batch's outcomes to the state store after the destination answered, while the next
//! batch is being sent.

pub mod alerts;
mod concurrency;
mod cursor;
mod finish;
mod guard;
mod hashing;
mod prepare;
mod removals;
mod report;
mod retry;
pub mod saved;
mod scan;
mod send;
mod sequence;
mod shape;
mod spool;
mod stream;
mod warehouse;
mod writeback;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

pub use cursor::CursorReport;
pub use report::{exit, OpCounts, Outcome, Sample, Sending, SyncReport};
pub use send::in_flight_bound as batches_in_flight;
pub use sequence::Gate;
pub use shape::{check_capabilities, config_fingerprint, Shape};

use crate::destinations::{self, Destination, DestinationError, Op};
use crate::diff::Change;
use crate::project::{Mode, Project, ProjectError, SyncSpec};
use crate::source::{Source, SourceError};
use crate::state::{keys, RunRecord, StateError, Store, SyncLock};
use spool::Spool;

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
    /// The delete guard stopped a run before it sent anything.
    #[error("{0}")]
    DeleteGuard(String),
    /// The model returned a key twice; nothing was sent.
    #[error("{0}")]
    DuplicateKeys(String),
    /// The spool (the temporary file of rows to send) could not be written or read.
    #[error("the spool of rows to send: {0}")]
    Spool(String),
    /// `sluice apply`: the run's changes are not the saved plan's; nothing was sent.
    #[error("{0}")]
    Drift(String),
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
    /// Send at most this many changes (`--limit`): the rest wait for the next run.
    pub limit: Option<u64>,
    /// Cancelled: finish the batch in flight, commit it, stop.
    pub cancel: CancellationToken,
    /// Told how a run advances (the CLI draws a progress line from it on a terminal).
    pub progress: Option<ProgressFn>,
    /// Who starts the run (`sluice run`, `the daemon's schedule`): named to a run that finds
    /// the sync locked by this one.
    pub started_by: String,
    /// A plan saved to a file (`sluice plan --out`): every change is recorded here.
    pub record: Option<Arc<saved::Recorder>>,
    /// `sluice apply`: the saved plan's changes; a run that finds others sends nothing.
    pub expect: Option<Arc<saved::Expected>>,
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
    /// The project's directory (sources made for one run read files under it).
    root: std::path::PathBuf,
    /// Syncs with `diff = "warehouse"`, and their sources: a reset empties their tables there.
    in_warehouse: HashMap<String, String>,
    /// `[writeback]`: where the run history and the change log are copied after each run.
    writeback: Option<crate::project::config::WritebackConfig>,
    /// Its tables were found or made by this process (`writeback`).
    writeback_ready: std::sync::atomic::AtomicBool,
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
        let mut sources: HashMap<String, Result<Source, String>> = project
            .config
            .sources
            .iter()
            .map(|(name, cfg)| {
                let runs = project.config.daemon.max_concurrent_runs;
                let local = project.config.state.local_dir(&project.root);
                (name.clone(), Source::new(name, cfg, &project.root, &local, runs).map_err(|e| e.to_string()))
            })
            .collect();
        let writeback = project.config.writeback.clone();
        if let Some(w) = &writeback {
            if let Some(Ok(source)) = sources.get_mut(&w.source) {
                source.read_log(&w.schema);
            }
        }
        Ok(Engine {
            store,
            writeback,
            writeback_ready: Default::default(),
            destinations,
            kinds,
            sources,
            delete_guard: project.config.delete_guard.clone(),
            retry: project.config.retry.clone(),
            alerts: project.config.alerts.clone(),
            keep_changes: project.config.state.keep_changes,
            root: project.root.clone(),
            in_warehouse: project
                .syncs
                .iter()
                .filter(|s| s.file.diff.value == crate::project::DiffMode::Warehouse)
                .map(|s| (s.name().to_string(), s.source.clone()))
                .collect(),
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
        let deadline = Deadline::start(sync.file.max_run_time, opts);
        let result = guarded(self.run_inner(sync, &deadline.opts, &run_id, None, &deadline.abort, &mut report)).await;
        report.settle(outcome(deadline.judge(result), opts));
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
        let deadline = Deadline::start(sync.file.max_run_time, opts);
        let result = guarded(self.run_inner(sync, &deadline.opts, &run_id, Some(lock), &deadline.abort, &mut report)).await;
        let result = deadline.judge(result);
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
        // Before the pruning: what the change log drops is written first.
        self.write_back(sync.name(), &mut report).await;
        self.prune_changes(sync, &mut report).await;
        // Last, so it holds the alerts and warnings.
        self.keep_report(&report).await;
        report
    }

    /// Keeps a finished run's report beside its row: the console's run page shows it. Pretty,
    /// in the report's own field order: the page shows it as kept.
    pub(crate) async fn keep_report(&self, report: &SyncReport) {
        let (sync, run_id) = (&report.sync, &report.run_id);
        match serde_json::to_string_pretty(report) {
            Ok(json) => {
                if let Err(e) = self.store.set_run_report(run_id, &json).await {
                    tracing::warn!(%sync, %run_id, error = %e, "could not keep the run's report");
                }
            }
            Err(e) => tracing::warn!(%sync, error = %e, "could not encode the run's report"),
        }
    }

    /// Forgets what the destination holds for `name` (`sluice reset`), under the sync's lock:
    /// never beside a run of it.
    pub async fn reset(&self, name: &str, started_by: &str) -> Result<u64, StateError> {
        let lock = self.store.lock_sync(name, &crate::state::holder(started_by)).await?;
        let mut result = self.store.reset(name).await;
        // A warehouse diff compares with the sync's table in the source: emptied too, or the
        // next run would find every row unchanged.
        let state = self.in_warehouse.get(name).and_then(|s| self.sources.get(s)).and_then(|s| s.as_ref().ok()).and_then(Source::warehouse);
        if let (Ok(_), Some(state)) = (&result, state) {
            if let Err(e) = state.clear(&crate::source::warehouse::table_name(name)).await {
                result = Err(StateError::Config(format!("the state store forgot `{name}`, but its table in the source did not: {e}")));
            }
        }
        lock.release().await;
        result
    }

    /// A run's phases, in order: prepare (what it runs against and compares with), scan (the
    /// model read and diffed, rows to send spooled), removals (what left the model, the delete
    /// guard; a plan ends here), send (batches to the destination, outcomes committed), and
    /// record (what the next run compares with). Each phase is a method in its own file.
    async fn run_inner(
        &self,
        sync: &SyncSpec,
        opts: &RunOptions,
        run_id: &str,
        lock: Option<&SyncLock>,
        abort: &CancellationToken,
        report: &mut SyncReport,
    ) -> Result<(), RunError> {
        let mut prepared = self.prepare(sync, opts, report).await?;
        let scanned = self.scan(sync, opts, run_id, &mut prepared, report).await?;
        let scan::Scanned { shape, target, writer, diffed, spool, settled, check } = scanned;
        let Some(removals) = self.removals(sync, opts, &prepared, (diffed, settled, check), report).await? else { return Ok(()) };
        let (Some(mut writer), Some(lock)) = (writer, lock) else { return Ok(()) };
        let pieces = (&shape, &target, abort);
        self.send(sync, opts, run_id, lock, &prepared, pieces, writer.as_mut(), spool, &removals, report).await?;
        writer.close().await.map_err(|error| RunError::Destination { name: sync.destination.clone(), error })?;
        self.record(sync, &prepared, report).await
    }

    /// The send phase: spool -> batches -> destination -> outcomes -> state (`send`).
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        sync: &SyncSpec,
        opts: &RunOptions,
        run_id: &str,
        lock: &SyncLock,
        prepared: &prepare::Prepared<'_>,
        (shape, target, abort): (&Shape, &destinations::Target, &CancellationToken),
        writer: &mut dyn destinations::Writer,
        spool: Spool,
        removals: &removals::Removals,
        report: &mut SyncReport,
    ) -> Result<(), RunError> {
        writer.take_warnings().into_iter().for_each(|w| report.warn(w));
        let batch_rows = writer.preferred_batch_rows(report.to_send.total()).unwrap_or(prepared.caps.max_batch_rows).max(1);
        let send = send::Send {
            store: &self.store,
            lock,
            name: sync.name(),
            run_id,
            destination: &sync.destination,
            shape,
            target,
            caps: &prepared.caps,
            log_values: sync.file.log_values,
            opts,
            abort,
            batch_rows,
            needs_ids: self.store.has_destination_ids(sync.name()).await?,
            warehouse: prepared.warehouse.map(|w| (w, crate::source::warehouse::table_name(sync.name()))),
        };
        let reader = spool.into_reader().map_err(RunError::Spool)?;
        send.run(writer, reader, &removals.deletes, &removals.clears, report).await
    }
}
/// A run's work, with a panic (a bug) caught: the run still ends, is recorded as failed with the
/// panic's message, and frees its lock; the process and the other syncs go on.
async fn guarded(work: impl std::future::Future<Output = Result<(), RunError>>) -> Result<(), RunError> {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let message = crate::panics::message(panic.as_ref());
            Err(RunError::Invalid(format!("sluice hit a bug and stopped this run: {message} (please report it)")))
        }
    }
}

/// A run's `max_run_time` (zero: none). When it passes, the run stops as on a stop request (its
/// `opts.cancel` is a child of the caller's, cancelled too), and `abort` cuts short a request
/// still on the wire. The run is stopped, never dropped: a state store operation half done (a
/// transaction begun) would leave the store's connection unusable, so every one of them ends.
struct Deadline {
    limit: std::time::Duration,
    /// The run's options, with a stop token of their own.
    opts: RunOptions,
    /// Cancelled when the deadline passes.
    abort: CancellationToken,
    timer: Option<tokio::task::JoinHandle<()>>,
}

impl Deadline {
    fn start(limit: std::time::Duration, opts: &RunOptions) -> Deadline {
        let stop = opts.cancel.child_token();
        let abort = CancellationToken::new();
        let timer = (!limit.is_zero()).then(|| {
            let (stop, abort) = (stop.clone(), abort.clone());
            tokio::spawn(async move {
                tokio::time::sleep(limit).await;
                abort.cancel();
                stop.cancel();
            })
        });
        Deadline { limit, opts: RunOptions { cancel: stop, ..opts.clone() }, abort, timer }
    }

    /// The run's result, as the deadline sees it: an error after it passed is the deadline's.
    fn judge(self, result: Result<(), RunError>) -> Result<(), RunError> {
        if let Some(timer) = &self.timer {
            timer.abort();
        }
        match result {
            Err(_) if self.abort.is_cancelled() => Err(RunError::Deadline(self.limit)),
            other => other,
        }
    }
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
