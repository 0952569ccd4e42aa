//! `sluice daemon`: every sync on its schedule, until stopped.
//!
//! The loop owns the current [`Generation`] (project + engine), the scheduler's pending jobs
//! (one one-shot job per scheduled sync: its next run time comes from `schedule`, which is
//! DST-correct in the configured time zone) and the runs in flight. Ticks, SIGHUP, the watchdog
//! and finished runs all arrive in one `select!`, so state changes in one place.
//!
//! Shutdown: the cancellation token stops scheduling; runs in flight see it through their
//! `RunOptions`, finish their batch and commit; the daemon waits at most `shutdown_timeout`.

mod notify;
mod runs;
pub mod schedule;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::project::Schedule;
use notify::Notifier;
use runs::{log_done, Generation, Runs};

/// A scheduled run came due.
struct Tick {
    generation: u64,
    sync: String,
    due: DateTime<Utc>,
}

/// The scheduler's pending job per sync, for the current generation.
struct Pending {
    scheduler: JobScheduler,
    jobs: HashMap<String, Uuid>,
    ticks: mpsc::UnboundedSender<Tick>,
}

impl Pending {
    /// Schedules `sync`'s next run after `after` (plus its fixed jitter offset).
    async fn schedule(&mut self, generation: &Generation, sync: &str, after: DateTime<Utc>) {
        let Some(s) = generation.project.syncs.iter().find(|s| s.name() == sync) else { return };
        let Schedule::Cron(cron) = &s.file.schedule else { return };
        let Some(due) = schedule::next_after(cron, generation.tz, after) else {
            tracing::warn!(sync, "the schedule has no next run time");
            return;
        };
        let offset = jitter_offset(sync, s.file.jitter_secs);
        let wait = (due - Utc::now()).to_std().unwrap_or(Duration::ZERO) + offset;
        let (tx, name, id) = (self.ticks.clone(), sync.to_string(), generation.id);
        let job = Job::new_one_shot_async(wait, move |_, _| {
            let (tx, name) = (tx.clone(), name.clone());
            Box::pin(async move {
                let _ = tx.send(Tick { generation: id, sync: name, due });
            })
        });
        match job {
            Ok(job) => match self.scheduler.add(job).await {
                Ok(uuid) => {
                    self.jobs.insert(sync.to_string(), uuid);
                }
                Err(e) => tracing::error!(sync, error = %e, "could not schedule the next run"),
            },
            Err(e) => tracing::error!(sync, error = %e, "could not schedule the next run"),
        }
    }

    async fn clear(&mut self) {
        for (_, id) in self.jobs.drain() {
            let _ = self.scheduler.remove(&id).await;
        }
    }
}

/// A fixed delay per sync within `jitter` seconds (the same every time, like cron's `H`), so syncs
/// sharing a schedule spread out without drifting.
fn jitter_offset(sync: &str, jitter_secs: u64) -> Duration {
    if jitter_secs == 0 {
        return Duration::ZERO;
    }
    Duration::from_secs(xxhash_rust::xxh3::xxh3_64(sync.as_bytes()) % (jitter_secs + 1))
}

/// Scheduled syncs whose last completed run started before their latest due time: they missed a
/// run while the daemon was down (or never ran).
async fn missed(generation: &Generation, now: DateTime<Utc>) -> Vec<String> {
    let mut due = Vec::new();
    for sync in &generation.project.syncs {
        let Schedule::Cron(cron) = &sync.file.schedule else { continue };
        if !sync.file.catch_up {
            continue;
        }
        let Some(previous) = schedule::previous_at_or_before(cron, generation.tz, now) else { continue };
        let last = generation.engine.store.last_completed_start(sync.name()).await.ok().flatten();
        let last = last.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.with_timezone(&Utc));
        if last.is_none_or(|t| t < previous) {
            due.push(sync.name().to_string());
        }
    }
    due
}

fn status_line(generation: &Generation, runs: &Runs) -> String {
    let scheduled = generation.project.syncs.iter().filter(|s| matches!(s.file.schedule, Schedule::Cron(_))).count();
    format!(
        "{scheduled} sync(s) scheduled, {} manual, {} invalid; {} running",
        generation.project.syncs.len() - scheduled,
        generation.project.invalid.len(),
        runs.in_flight()
    )
}

fn log_invalid(generation: &Generation) {
    for e in &generation.project.invalid {
        tracing::error!(error = %e, "sync file is invalid and will not run until fixed");
    }
}

pub async fn run(root: &Path, cancel: CancellationToken) -> Result<(), String> {
    let notifier = Notifier::from_env();
    let mut generation = Arc::new(Generation::load(root, 1).await?);
    log_invalid(&generation);
    let scheduler = JobScheduler::new().await.map_err(|e| format!("cannot start the scheduler: {e}"))?;
    scheduler.start().await.map_err(|e| format!("cannot start the scheduler: {e}"))?;
    let (ticks, mut tick_rx) = mpsc::unbounded_channel();
    let mut pending = Pending { scheduler, jobs: HashMap::new(), ticks };
    let mut runs = Runs::new(generation.project.config.daemon.max_concurrent_runs);
    let now = Utc::now();
    for sync in &generation.project.syncs {
        pending.schedule(&generation, sync.name(), now).await;
    }
    for name in missed(&generation, now).await {
        tracing::info!(sync = %name, "a scheduled run was missed while the daemon was down: running it now");
        runs.start(&generation, &name, &cancel);
    }
    tracing::info!(project = %root.display(), timezone = %generation.tz, "daemon started: {}", status_line(&generation, &runs));
    notifier.ready(&status_line(&generation, &runs));

    let mut hangup =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map_err(|e| format!("cannot watch SIGHUP: {e}"))?;
    let mut watchdog = notifier.watchdog_every.map(tokio::time::interval);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(tick) = tick_rx.recv() => {
                if tick.generation != generation.id {
                    continue; // scheduled by a configuration since replaced
                }
                pending.jobs.remove(&tick.sync);
                pending.schedule(&generation, &tick.sync, tick.due.max(Utc::now())).await;
                runs.start(&generation, &tick.sync, &cancel);
                notifier.status(&status_line(&generation, &runs));
            }
            Some(done) = runs.next(), if runs.in_flight() > 0 => {
                log_done(&done);
                notifier.status(&status_line(&generation, &runs));
            }
            _ = hangup_recv(&mut hangup) => {
                notifier.reloading();
                match Generation::load(root, generation.id + 1).await {
                    Ok(next) => {
                        pending.clear().await;
                        generation = Arc::new(next);
                        log_invalid(&generation);
                        let now = Utc::now();
                        for sync in &generation.project.syncs {
                            pending.schedule(&generation, sync.name(), now).await;
                        }
                        tracing::info!("configuration reloaded: {}", status_line(&generation, &runs));
                    }
                    Err(e) => tracing::error!(error = %e, "reload failed: the new configuration is invalid; still running the previous one"),
                }
                notifier.ready(&status_line(&generation, &runs));
            }
            _ = watchdog_tick(&mut watchdog) => notifier.watchdog(),
        }
    }
    notifier.stopping();
    tracing::info!(running = runs.in_flight(), "stopping: runs in flight finish their batch");
    pending.clear().await;
    let _ = pending.scheduler.shutdown().await;
    let abandoned = runs.drain(generation.project.config.daemon.shutdown_timeout).await;
    generation.engine.store.close().await;
    if abandoned > 0 {
        return Err(format!("{abandoned} run(s) did not finish within [daemon] shutdown_timeout; they resume on the next start"));
    }
    Ok(())
}

async fn hangup_recv(hangup: &mut tokio::signal::unix::Signal) {
    hangup.recv().await;
}

async fn watchdog_tick(watchdog: &mut Option<tokio::time::Interval>) {
    match watchdog {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}
