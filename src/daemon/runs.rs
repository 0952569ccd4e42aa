//! Runs in flight: at most one per sync (an overlapping tick is skipped), at most
//! `max_concurrent_runs` overall and a destination's `concurrent_runs` per destination, and, on
//! a Postgres state store, a Postgres advisory lock per sync so several daemons can share one
//! project: the replica that cannot take the lock skips the tick.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnection;
use sqlx::Connection;
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
    /// The Postgres state store's URL, for advisory locks (SQLite: one daemon, no locks).
    lock_url: Option<SecretString>,
}

impl Generation {
    pub async fn load(root: &std::path::Path, id: u64) -> Result<Generation, String> {
        let project = Project::load(root).map_err(|e| e.to_string())?;
        let tz = project.config.daemon.tz()?;
        let engine = Engine::open(&project).await.map_err(|e| e.to_string())?;
        let url = project.config.state.url.expose_secret();
        let lock_url = (url.starts_with("postgres://") || url.starts_with("postgresql://")).then(|| project.config.state.url.clone());
        Ok(Generation { id, project, engine, tz, lock_url })
    }
}

pub enum Outcome {
    Ran(Box<SyncReport>),
    /// Another daemon holds the sync's lock: it is running it.
    LockedElsewhere,
    Failed(String),
}

pub struct Done {
    pub sync: String,
    pub outcome: Outcome,
}

pub struct Runs {
    set: JoinSet<Done>,
    running: HashSet<String>,
    /// Task -> sync, to free the sync when its task panics.
    tasks: HashMap<tokio::task::Id, String>,
    limit: Arc<Semaphore>,
    /// Per destination name, for destinations that cap their concurrent runs. Kept across
    /// reloads, so runs started under the old configuration still count.
    destination_limits: HashMap<String, Arc<Semaphore>>,
    /// Ticks skipped because the sync's previous run was still going, per sync.
    pub skipped: HashMap<String, u64>,
}

impl Runs {
    pub fn new(max_concurrent: usize) -> Runs {
        Runs {
            set: JoinSet::new(),
            running: HashSet::new(),
            tasks: HashMap::new(),
            destination_limits: HashMap::new(),
            limit: Arc::new(Semaphore::new(max_concurrent.max(1))),
            skipped: HashMap::new(),
        }
    }

    pub fn in_flight(&self) -> usize {
        self.running.len()
    }

    pub fn running(&self) -> impl Iterator<Item = &str> {
        self.running.iter().map(String::as_str)
    }

    /// Starts a run of `name` unless one is going; `false` when the tick is skipped.
    pub fn start(&mut self, generation: &Arc<Generation>, name: &str, cancel: &CancellationToken) -> bool {
        self.start_with(generation, name, cancel, false)
    }

    /// `start`, optionally past the delete guard (a person asked for it through the API).
    pub fn start_with(&mut self, generation: &Arc<Generation>, name: &str, cancel: &CancellationToken, allow_deletes: bool) -> bool {
        if self.running.contains(name) {
            *self.skipped.entry(name.to_string()).or_default() += 1;
            crate::metrics::global().skipped_ticks.get_or_create(&crate::metrics::SyncLabel { sync: name.to_string() }).inc();
            tracing::warn!(sync = name, "the previous run is still going: this tick is skipped");
            return false;
        }
        self.running.insert(name.to_string());
        let destination_limit = generation.project.syncs.iter().find(|s| s.name() == name).and_then(|sync| {
            let cap = generation.engine.destination(&sync.destination).ok()?.capabilities().concurrent_runs?;
            Some(self.destination_limits.entry(sync.destination.clone()).or_insert_with(|| Arc::new(Semaphore::new(cap.max(1)))).clone())
        });
        let (generation, name, cancel, limit) = (generation.clone(), name.to_string(), cancel.clone(), self.limit.clone());
        let task_name = name.clone();
        let handle = self.set.spawn(async move {
            let outcome = run_one(&generation, &name, &cancel, limit, destination_limit, allow_deletes).await;
            Done { sync: name, outcome }
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
                    return Some(done);
                }
                // A run task panicked (a bug): free its sync so its next tick runs again.
                Err(e) => {
                    if let Some(name) = self.tasks.remove(&e.id()) {
                        tracing::error!(sync = %name, "a run ended in a panic");
                        self.running.remove(&name);
                    }
                }
            }
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

async fn run_one(
    generation: &Generation,
    name: &str,
    cancel: &CancellationToken,
    limit: Arc<Semaphore>,
    destination_limit: Option<Arc<Semaphore>>,
    allow_deletes: bool,
) -> Outcome {
    let Some(sync) = generation.project.syncs.iter().find(|s| s.name() == name) else {
        return Outcome::Failed(format!("sync `{name}` is no longer defined"));
    };
    // The destination's turn first: a run queued behind its destination holds no global slot.
    let _destination_permit = match destination_limit {
        Some(s) => Some(s.acquire_owned().await),
        None => None,
    };
    let _permit = limit.acquire_owned().await;
    // On a shared Postgres store, the lock says which daemon runs this sync now; it is held on a
    // connection of its own and goes with it, so a crashed daemon never keeps it.
    let mut lock = None;
    if let Some(url) = &generation.lock_url {
        match try_lock(url, name).await {
            Ok(Some(conn)) => lock = Some(conn),
            Ok(None) => return Outcome::LockedElsewhere,
            Err(e) => return Outcome::Failed(format!("could not take the sync's lock in the state store: {e}")),
        }
    }
    let opts = RunOptions { cancel: cancel.clone(), allow_deletes, ..Default::default() };
    let report = generation.engine.run(sync, &opts).await;
    if let Some(conn) = lock {
        unlock(conn, name).await;
    }
    Outcome::Ran(Box::new(report))
}

/// The advisory lock key of a sync: stable across machines and versions.
fn lock_key(sync: &str) -> i64 {
    xxhash_rust::xxh3::xxh3_64(format!("sluice/sync/{sync}").as_bytes()) as i64
}

async fn try_lock(url: &SecretString, sync: &str) -> Result<Option<PgConnection>, String> {
    let mut conn = PgConnection::connect(url.expose_secret()).await.map_err(|e| crate::state::StateError::from(e).to_string())?;
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(lock_key(sync))
        .fetch_one(&mut conn)
        .await
        .map_err(|e| crate::state::StateError::from(e).to_string())?;
    if got {
        Ok(Some(conn))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

async fn unlock(mut conn: PgConnection, sync: &str) {
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)").bind(lock_key(sync)).execute(&mut conn).await;
    let _ = conn.close().await;
}

/// One line per finished run, for people and log collectors.
pub fn log_done(done: &Done) {
    match &done.outcome {
        Outcome::Ran(r) => {
            crate::metrics::global().record_run(r);
            let c = &r.counts;
            if r.failed() {
                tracing::error!(sync = %done.sync, run_id = %r.run_id, error = r.error.as_deref().unwrap_or(""), duration_ms = r.duration_ms, "run failed");
            } else {
                tracing::info!(
                    sync = %done.sync, run_id = %r.run_id, status = r.status.as_str(), rows = r.rows_read, added = c.added, changed = c.changed,
                    removed = c.removed, written = r.written, rejected = r.rejected, pending = r.retryable, duration_ms = r.duration_ms,
                    "run finished"
                );
            }
        }
        Outcome::LockedElsewhere => tracing::info!(sync = %done.sync, "another daemon is running this sync: tick skipped"),
        Outcome::Failed(e) => tracing::error!(sync = %done.sync, error = %e, "run could not start"),
    }
}
