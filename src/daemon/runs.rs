//! Runs in flight: at most one per sync (an overlapping tick is skipped), at most
//! `max_concurrent_runs` overall and a destination's `concurrent_runs` per destination. Across
//! processes (another daemon on a shared Postgres store, a `sluice run` by hand) the engine's
//! per-sync lock decides: a run that finds the sync locked is skipped and counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, RunOptions, SyncReport};
use crate::project::Project;

/// One loaded configuration: the project, its engine, and what the scheduler needs. Runs keep
/// the generation they started with, so a reload never pulls anything from under them.
pub struct Generation {
    pub id: u64,
    pub project: Project,
    pub engine: Engine,
    pub tz: Tz,
    /// When it was loaded: a run due before is not this configuration's to call late.
    pub loaded_at: chrono::DateTime<chrono::Utc>,
}

impl Generation {
    pub async fn load(root: &std::path::Path, env: Option<&str>, id: u64) -> Result<Generation, String> {
        let project = Project::load_in(root, env).map_err(|e| e.to_string())?;
        let tz = project.config.daemon.tz()?;
        let engine = Engine::open(&project).await.map_err(|e| e.to_string())?;
        Ok(Generation { id, project, engine, tz, loaded_at: chrono::Utc::now() })
    }
}

pub enum Ended {
    Ran(Box<SyncReport>),
    /// Another process (a replica, `sluice run` by hand) holds the sync's lock: it is running
    /// it. Who, as the engine said.
    Busy(String),
    Failed(String),
}

/// How far a run going on in this process has got: what the console shows while it runs.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Live {
    pub rows_read: u64,
    pub sent: u64,
    pub to_send: u64,
}

/// Per sync running here, its [`Live`] progress; shared with the HTTP endpoint.
pub type LiveRuns = Arc<std::sync::Mutex<HashMap<String, Live>>>;

/// What was asked of a run: by a person (the API, the console), or by the daemon itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Asked {
    /// Past the delete guard.
    pub allow_deletes: bool,
    /// Rows rejected before are sent again even if unchanged (`sluice retry`).
    pub retry_rejected: bool,
    /// The run goes only if the syncs in its `after` got through, else it is recorded as
    /// skipped (`engine::sequence`). The daemon's own starts ask; a person naming a sync does not.
    pub check_after: bool,
}

impl Asked {
    /// A run the daemon starts by itself (schedule, catch-up, events, the syncs it runs after).
    pub fn by_daemon() -> Asked {
        Asked { check_after: true, ..Default::default() }
    }
}

pub struct Done {
    pub sync: String,
    pub ended: Ended,
}

pub struct Runs {
    set: JoinSet<Done>,
    /// The syncs running, with when each run started and its `max_run_time`.
    running: HashMap<String, (std::time::Instant, Duration)>,
    /// Task -> sync, to free the sync when its task panics.
    tasks: HashMap<tokio::task::Id, String>,
    limit: Arc<Semaphore>,
    /// Per destination name, for destinations that cap their concurrent runs. Kept across
    /// reloads, so runs started under the old configuration still count.
    destination_limits: HashMap<String, Arc<Semaphore>>,
    /// Ticks skipped because the sync's previous run was still going, per sync.
    pub skipped: HashMap<String, u64>,
    pub live: LiveRuns,
}

impl Runs {
    pub fn new(max_concurrent: usize, live: LiveRuns) -> Runs {
        Runs {
            set: JoinSet::new(),
            running: HashMap::new(),
            tasks: HashMap::new(),
            destination_limits: HashMap::new(),
            limit: Arc::new(Semaphore::new(max_concurrent.max(1))),
            skipped: HashMap::new(),
            live,
        }
    }

    pub fn in_flight(&self) -> usize {
        self.running.len()
    }

    pub fn is_running(&self, name: &str) -> bool {
        self.running.contains_key(name)
    }

    pub fn running(&self) -> impl Iterator<Item = &str> {
        self.running.keys().map(String::as_str)
    }

    /// The runs going on: when each started, and its `max_run_time`.
    pub fn started(&self) -> HashMap<String, (std::time::Instant, Duration)> {
        self.running.clone()
    }

    /// Starts a run of `name` unless one is going, saying who asked (named to anyone who finds
    /// the sync locked) and what they asked for.
    pub fn start_by(
        &mut self,
        generation: &Arc<Generation>,
        name: &str,
        cancel: &CancellationToken,
        asked: Asked,
        started_by: &'static str,
    ) -> bool {
        if self.running.contains_key(name) {
            *self.skipped.entry(name.to_string()).or_default() += 1;
            crate::metrics::global().skipped_ticks.get_or_create(&crate::metrics::SyncLabel { sync: name.to_string() }).inc();
            tracing::warn!(sync = name, "the previous run is still going: this tick is skipped");
            return false;
        }
        let deadline = generation.project.syncs.iter().find(|s| s.name() == name).map_or(Duration::ZERO, |s| s.file.max_run_time);
        self.running.insert(name.to_string(), (std::time::Instant::now(), deadline));
        let destination_limit = generation.project.syncs.iter().find(|s| s.name() == name).and_then(|sync| {
            let cap = generation.engine.destination(&sync.destination).ok()?.capabilities().concurrent_runs?;
            Some(self.destination_limits.entry(sync.destination.clone()).or_insert_with(|| Arc::new(Semaphore::new(cap.max(1)))).clone())
        });
        if let Ok(mut live) = self.live.lock() {
            live.insert(name.to_string(), Live::default());
        }
        let (generation, name, cancel, limit) = (generation.clone(), name.to_string(), cancel.clone(), self.limit.clone());
        let task_name = name.clone();
        let progress = progress_into(self.live.clone(), &name);
        let handle = self.set.spawn(async move {
            let ended = run_one(&generation, &name, &cancel, limit, destination_limit, asked, started_by, progress).await;
            Done { sync: name, ended }
        });
        self.tasks.insert(handle.id(), task_name);
        true
    }

    /// The next run to end (`None` when none is in flight).
    pub async fn next(&mut self) -> Option<Done> {
        loop {
            match self.set.join_next_with_id().await? {
                Ok((id, done)) => {
                    self.tasks.remove(&id);
                    self.running.remove(&done.sync);
                    self.forget_live(&done.sync);
                    return Some(done);
                }
                // A run task panicked (a bug): free its sync so its next tick runs again.
                Err(e) => {
                    if let Some(name) = self.tasks.remove(&e.id()) {
                        tracing::error!(sync = %name, "a run ended in a panic");
                        self.running.remove(&name);
                        self.forget_live(&name);
                    }
                }
            }
        }
    }

    fn forget_live(&self, name: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(name);
        }
    }

    /// Waits for the runs in flight, at most `timeout`; the rest are abandoned (state stays
    /// consistent: only accepted batches were committed).
    pub async fn drain(&mut self, timeout: Duration) -> usize {
        let wait = async {
            while let Some(done) = self.next().await {
                log_done(&done);
            }
        };
        if tokio::time::timeout(timeout, wait).await.is_err() {
            let left = self.set.len();
            self.set.abort_all();
            return left;
        }
        0
    }
}

/// A run's progress, written into `live` for the console.
fn progress_into(live: LiveRuns, name: &str) -> crate::engine::ProgressFn {
    let name = name.to_string();
    crate::engine::ProgressFn(Arc::new(move |p| {
        let Ok(mut live) = live.lock() else { return };
        let Some(entry) = live.get_mut(&name) else { return };
        match p {
            crate::engine::Progress::Scanning { rows, .. } => entry.rows_read = rows,
            crate::engine::Progress::Sending { sent, total, .. } => {
                entry.sent = sent;
                entry.to_send = total;
            }
        }
    }))
}

#[allow(clippy::too_many_arguments)]
async fn run_one(
    generation: &Generation,
    name: &str,
    cancel: &CancellationToken,
    limit: Arc<Semaphore>,
    destination_limit: Option<Arc<Semaphore>>,
    asked: Asked,
    started_by: &str,
    progress: crate::engine::ProgressFn,
) -> Ended {
    let Some(sync) = generation.project.syncs.iter().find(|s| s.name() == name) else {
        return Ended::Failed(format!("sync `{name}` is no longer defined"));
    };
    // The destination's turn first: a run queued behind its destination holds no global slot.
    let _destination_permit = match destination_limit {
        Some(s) => Some(s.acquire_owned().await),
        None => None,
    };
    let _permit = limit.acquire_owned().await;
    if asked.check_after && !sync.file.after.value.is_empty() {
        if let crate::engine::Gate::Skip(why) = generation.engine.gate(sync).await {
            return Ended::Ran(Box::new(generation.engine.skip(sync, why, started_by).await));
        }
    }
    // The engine takes the sync's lock: a replica or a person running it by hand holds it.
    let opts = RunOptions {
        cancel: cancel.clone(),
        allow_deletes: asked.allow_deletes,
        retry_rejected: asked.retry_rejected,
        started_by: started_by.to_string(),
        progress: Some(progress),
        ..Default::default()
    };
    let report = generation.engine.run(sync, &opts).await;
    if report.outcome() == crate::engine::Outcome::Busy {
        return Ended::Busy(report.error.unwrap_or_default());
    }
    Ended::Ran(Box::new(report))
}

/// One line per finished run, for people and log collectors.
pub fn log_done(done: &Done) {
    match &done.ended {
        Ended::Ran(r) => {
            crate::metrics::global().record_run(r);
            if r.deadline_exceeded {
                crate::metrics::global().run_deadline_exceeded.get_or_create(&crate::metrics::SyncLabel { sync: done.sync.clone() }).inc();
            }
            let c = &r.counts;
            if r.outcome() == crate::engine::Outcome::Skipped {
                tracing::warn!(sync = %done.sync, run_id = %r.run_id, why = r.error.as_deref().unwrap_or(""), "run skipped");
            } else if r.failed() {
                tracing::error!(sync = %done.sync, run_id = %r.run_id, error = r.error.as_deref().unwrap_or(""), duration_ms = r.duration_ms, "run failed");
            } else {
                tracing::info!(
                    sync = %done.sync, run_id = %r.run_id, status = r.status.as_str(), rows = r.rows_read, added = c.added, changed = c.changed,
                    removed = c.removed, written = r.written, rejected = r.rejected, pending = r.retryable, duration_ms = r.duration_ms,
                    "run finished"
                );
            }
        }
        Ended::Busy(holder) => {
            crate::metrics::global().skipped_ticks.get_or_create(&crate::metrics::SyncLabel { sync: done.sync.clone() }).inc();
            tracing::warn!(sync = %done.sync, why = %holder, "another process is running this sync: tick skipped");
        }
        Ended::Failed(e) => tracing::error!(sync = %done.sync, error = %e, "run could not start"),
    }
}
