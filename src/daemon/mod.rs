//! `sluice daemon`: every sync on its schedule, until stopped.
//!
//! The loop owns the current [`Generation`] (project + engine), the scheduler's pending jobs
//! (one one-shot job per scheduled sync: its next run time comes from `schedule`, which is
//! DST-correct in the configured time zone) and the runs in flight. Ticks, SIGHUP, the watchdog,
//! finished runs, streams' events and their debounce timers all arrive in one `select!`, so
//! state changes in one place.
//!
//! Shutdown: the cancellation token stops scheduling; runs in flight see it through their
//! `RunOptions`, finish their batch and commit; the daemon waits at most `shutdown_timeout`.

mod console;
mod hooks;
mod http;
mod runs;
pub mod schedule;
pub mod signature;
mod streams;
mod systemd;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::project::Schedule;
use http::{Control, Shared, View};
use runs::{log_done, Asked, Ended, Generation, LiveRuns, Runs};
use streams::Triggers;
use systemd::Notifier;

/// How often every stream is swept (events pruned, how far behind each sync is published), besides
/// after each run of a sync over it.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// How often the daemon looks for scheduled runs that are late (`late` alerts).
const LATE_EVERY: Duration = Duration::from_secs(10);

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
    /// When each scheduled sync runs next.
    due: HashMap<String, DateTime<Utc>>,
    ticks: mpsc::UnboundedSender<Tick>,
}

impl Pending {
    /// Schedules `sync`'s next run after `after` (plus its fixed jitter offset).
    async fn schedule(&mut self, generation: &Generation, sync: &str, after: DateTime<Utc>) {
        let Some(s) = generation.project.syncs.iter().find(|s| s.name() == sync) else { return };
        let Schedule::Cron(cron) = &s.file.schedule else { return };
        let offset = jitter_offset(sync, s.file.jitter_secs);
        let now = Utc::now();
        // The occurrence after the one that fired, so a jitter offset longer than the interval
        // skips nothing; but after a long stall (suspend, overload) not a burst of past ones.
        let next = schedule::next_after(cron, generation.tz, after)
            .filter(|due| chrono::Duration::from_std(offset).is_ok_and(|o| *due + o + chrono::Duration::seconds(1) >= now))
            .or_else(|| schedule::next_after(cron, generation.tz, now));
        let Some(due) = next else {
            tracing::warn!(sync, "the schedule has no next run time");
            return;
        };
        let fire = chrono::Duration::from_std(offset).map(|o| due + o).unwrap_or(due);
        let wait = (fire - now).to_std().unwrap_or(Duration::ZERO);
        let (tx, name, id) = (self.ticks.clone(), sync.to_string(), generation.id);
        let job = Job::new_one_shot_async(wait, move |_, _| {
            let (tx, name) = (tx.clone(), name.clone());
            Box::pin(async move {
                // The scheduler's clock ticks in whole steps and may fire up to one early: a run
                // starts at its time, never before it.
                if let Ok(early) = (fire - Utc::now()).to_std() {
                    tokio::time::sleep(early).await;
                }
                let _ = tx.send(Tick { generation: id, sync: name, due });
            })
        });
        match job {
            Ok(job) => match self.scheduler.add(job).await {
                Ok(uuid) => {
                    self.jobs.insert(sync.to_string(), uuid);
                    self.due.insert(sync.to_string(), due);
                }
                Err(e) => tracing::error!(sync, error = %e, "could not schedule the next run"),
            },
            Err(e) => tracing::error!(sync, error = %e, "could not schedule the next run"),
        }
    }

    async fn clear(&mut self) {
        self.due.clear();
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
    for sync in generation.project.in_order(generation.project.syncs.iter().collect()) {
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
    for stream in generation.project.unread_streams() {
        tracing::warn!(
            stream,
            "no sync reads this stream (`source = \"stream:{stream}\"`): its events are stored and dropped unread after `retain`"
        );
    }
}

/// The loop's state: the current configuration, its pending jobs, the runs in flight.
struct Daemon {
    root: std::path::PathBuf,
    /// The environment (`--env`) every reload loads again.
    env: Option<String>,
    generation: Arc<Generation>,
    pending: Pending,
    runs: Runs,
    notifier: Notifier,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    /// Syncs waiting to run on their stream's events.
    triggers: Triggers,
    /// Syncs due to run while syncs in their `after` (or, for a follower, itself) run here:
    /// each with the runs it waits for; started when they have all ended.
    waiting: BTreeMap<String, BTreeSet<String>>,
    /// A late check is going (`check_late`).
    late_check: Arc<std::sync::atomic::AtomicBool>,
}

impl Daemon {
    async fn schedule_all(&mut self) {
        let now = Utc::now();
        let generation = self.generation.clone();
        for sync in &generation.project.syncs {
            self.pending.schedule(&generation, sync.name(), now).await;
        }
    }

    /// Publishes the state the HTTP endpoint and systemd see.
    fn publish(&self) {
        let view = View {
            generation: self.generation.clone(),
            next_runs: self.pending.due.clone(),
            running: self.runs.running().map(str::to_string).collect(),
            started: self.runs.started(),
        };
        if let Ok(mut v) = self.shared.view.write() {
            *v = view;
        }
        let metrics = crate::metrics::global();
        for (sync, due) in &self.pending.due {
            metrics.next_run.get_or_create(&crate::metrics::SyncLabel { sync: sync.clone() }).set(due.timestamp() as f64);
        }
        self.notifier.status(&status_line(&self.generation, &self.runs));
    }

    /// Re-reads the project. An invalid one is refused and the running configuration kept.
    async fn reload(&mut self) -> Result<(), String> {
        self.notifier.reloading();
        let loaded = match Generation::load(&self.root, self.env.as_deref(), self.generation.id + 1).await {
            // The API token may have changed (or been removed: then the generated one).
            Ok(next) => http::api_token(&next.project).map(|(token, _)| (next, token)),
            Err(e) => Err(e),
        };
        let result = match loaded {
            Ok((next, token)) => {
                if let Ok(mut current) = self.shared.token.write() {
                    *current = token;
                }
                self.pending.clear().await;
                self.generation = Arc::new(next);
                log_invalid(&self.generation);
                self.schedule_all().await;
                self.triggers.arm_all(&self.generation);
                tracing::info!("configuration reloaded: {}", status_line(&self.generation, &self.runs));
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "reload failed: the new configuration is invalid; still running the previous one");
                Err(e)
            }
        };
        self.notifier.ready(&status_line(&self.generation, &self.runs));
        self.publish();
        result
    }

    /// Starts the syncs whose stream's events are due.
    fn start_due(&mut self) {
        let runs = &self.runs;
        let due = self.triggers.take_due(|s| runs.is_running(s));
        for name in due {
            self.start_after(&name, "events on its stream");
        }
    }

    /// Starts a run the daemon decided on (schedule, catch-up, events, a chain), unless a
    /// sync in its `after` runs here now: then it waits for those runs to end (`ended`), and
    /// only those, so upstream runs that keep overlapping cannot hold it off for ever. Whether
    /// they got through is the run's first question (`Asked::check_after`).
    fn start_after(&mut self, name: &str, by: &'static str) {
        let generation = self.generation.clone();
        let Some(sync) = generation.project.syncs.iter().find(|s| s.name() == name) else { return };
        let running: BTreeSet<String> = sync.file.after.value.iter().filter(|d| self.runs.is_running(d)).cloned().collect();
        if !running.is_empty() {
            let shown = running.iter().map(|d| format!("`{d}`")).collect::<Vec<_>>().join(", ");
            tracing::info!(sync = name, "waiting for {shown} to end: this sync runs after it");
            self.waiting.entry(name.to_string()).or_default().extend(running);
            return;
        }
        self.runs.start_by(&generation, name, &self.cancel, Asked::by_daemon(), by);
    }

    /// After a run of `name` ended: the syncs that waited for it go once nothing else they wait
    /// for runs; the syncs that follow it (`after` it, no schedule of their own) are due when it
    /// ran here, and one still running from before runs again when it ends.
    fn ended(&mut self, name: &str, ran: bool) {
        let generation = self.generation.clone();
        let mut released = Vec::new();
        self.waiting.retain(|sync, waits_for| {
            waits_for.remove(name);
            let defined = generation.project.syncs.iter().any(|s| s.name() == sync);
            if defined && waits_for.is_empty() {
                released.push(sync.clone());
            }
            defined && !waits_for.is_empty()
        });
        // Released: what they waited for has ended; a run that started since is not waited for.
        for sync in &released {
            self.runs.start_by(&generation, sync, &self.cancel, Asked::by_daemon(), "the syncs it runs after");
        }
        let mut due = Vec::new();
        if ran {
            for follower in generation.project.dependants(name) {
                let follows = follower.file.schedule == Schedule::Manual && follower.file.trigger == crate::project::Trigger::Schedule;
                if !follows || released.iter().any(|d| d == follower.name()) {
                    continue;
                }
                if self.runs.is_running(follower.name()) {
                    // Its run read before this one ended: one more when it ends.
                    self.waiting.entry(follower.name().to_string()).or_default().insert(follower.name().to_string());
                } else {
                    due.push(follower.name().to_string());
                }
            }
        }
        for sync in due {
            self.start_after(&sync, "the syncs it runs after");
        }
    }

    /// Looks, in the background, for scheduled runs a whole interval late whose syncs alert
    /// `late`: due since this configuration loaded, no run of the sync started since.
    fn check_late(&self) {
        let generation = self.generation.clone();
        let Some(alerts) = &generation.project.config.alerts else { return };
        if self.late_check.swap(true, Ordering::AcqRel) {
            return; // the last check is still going
        }
        let now = Utc::now();
        let mut due = Vec::new();
        for sync in &generation.project.syncs {
            let Schedule::Cron(cron) = &sync.file.schedule else { continue };
            let rules = alerts.for_sync(&sync.file);
            if !rules.on.contains(&crate::project::config::AlertEvent::Late) {
                continue;
            }
            let offset = jitter_offset(sync.name(), sync.file.jitter_secs);
            if let Some(at) = schedule::overdue(cron, generation.tz, now, offset).filter(|at| *at >= generation.loaded_at) {
                due.push((sync.name().to_string(), at));
            }
        }
        let busy = self.late_check.clone();
        tokio::spawn(async move {
            for (name, at) in due {
                let Some(sync) = generation.project.syncs.iter().find(|s| s.name() == name) else { continue };
                let last = generation.engine.store.last_start(&name).await.ok().flatten();
                let last = last.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.with_timezone(&Utc));
                if last.is_some_and(|t| t >= at) {
                    continue;
                }
                match generation.engine.alert_late(sync, at).await {
                    Ok(true) => {
                        tracing::warn!(sync = %name, due = %at, "a scheduled run is late (not started an interval after it was due): alerted")
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(sync = %name, error = %e, "could not send the late alert"),
                }
            }
            busy.store(false, Ordering::Release);
        });
    }

    /// Sweeps `streams` (none: every stream) in the background: the loop never waits on the store.
    fn sweep(&self, stream: Option<&str>) {
        let generation = self.generation.clone();
        let streams: Vec<String> = match stream {
            Some(s) => vec![s.to_string()],
            None => generation.project.config.streams.keys().cloned().collect(),
        };
        if streams.is_empty() {
            return;
        }
        tokio::spawn(async move {
            for stream in streams {
                streams::sweep(&generation, &stream).await;
            }
        });
    }

    fn trigger(&mut self, name: &str, asked: Asked, by: &'static str) -> Result<(), String> {
        if !self.generation.project.syncs.iter().any(|s| s.name() == name) {
            return Err(format!("no sync named `{name}`"));
        }
        if self.runs.start_by(&self.generation, name, &self.cancel, asked, by) {
            Ok(())
        } else {
            Err(format!("`{name}` is running already"))
        }
    }
}

pub async fn run(root: &Path, env: Option<&str>, cancel: CancellationToken) -> Result<(), String> {
    let generation = Arc::new(Generation::load(root, env, 1).await?);
    log_invalid(&generation);
    let daemon_config = &generation.project.config.daemon;
    let scheduler = JobScheduler::new().await.map_err(|e| format!("cannot start the scheduler: {e}"))?;
    scheduler.start().await.map_err(|e| format!("cannot start the scheduler: {e}"))?;
    let (ticks, mut tick_rx) = mpsc::unbounded_channel();
    let (control, mut control_rx) = mpsc::channel(16);
    let (events, mut events_rx) = mpsc::unbounded_channel::<String>();
    let (token, token_file) = http::api_token(&generation.project)?;
    let live = LiveRuns::default();
    let shared = Arc::new(Shared {
        view: std::sync::RwLock::new(View {
            generation: generation.clone(),
            next_runs: HashMap::new(),
            running: Vec::new(),
            started: HashMap::new(),
        }),
        heartbeat: AtomicI64::new(Utc::now().timestamp_millis()),
        token: std::sync::RwLock::new(token),
        live: live.clone(),
    });
    let mut d = Daemon {
        root: root.to_path_buf(),
        env: env.map(str::to_string),
        runs: Runs::new(daemon_config.max_concurrent_runs, live),
        generation,
        pending: Pending { scheduler, jobs: HashMap::new(), due: HashMap::new(), ticks },
        notifier: Notifier::from_env(),
        shared,
        cancel: cancel.clone(),
        triggers: Triggers::default(),
        waiting: BTreeMap::new(),
        late_check: Arc::default(),
    };
    d.schedule_all().await;
    // Published before the endpoint answers: its first answer already has every next run.
    d.publish();
    let daemon_config = &d.generation.project.config.daemon;
    if daemon_config.listen.eq_ignore_ascii_case("off") && !d.generation.project.config.streams.is_empty() {
        tracing::warn!("[daemon] listen = \"off\": the streams' webhooks (POST /hooks/NAME) receive nothing");
    }
    if !daemon_config.listen.eq_ignore_ascii_case("off") {
        let limits = http::Limits {
            allowed_hosts: daemon_config.allowed_hosts.clone(),
            header_timeout: daemon_config.http_timeout,
            max_connections: daemon_config.http_max_connections,
        };
        let addr = http::serve(&daemon_config.listen, limits, d.shared.clone(), control, events, cancel.clone()).await?;
        tracing::info!(%addr, "HTTP endpoint: /healthz, /metrics, /api/syncs, /hooks/STREAM");
        if let Some(path) = &token_file {
            tracing::info!(
                token_file = %path.display(),
                "the API's mutating endpoints need `Authorization: Bearer <the token in this file>` (set [daemon] api_token to choose it)"
            );
        }
    }
    // In `after` order, so a sync that waits for another one due too waits for its run.
    for name in missed(&d.generation, Utc::now()).await {
        tracing::info!(sync = %name, "a scheduled run was missed while the daemon was down: running it now");
        d.start_after(&name, "the daemon's schedule");
    }
    // What arrived while the daemon was down is sent now.
    d.triggers.arm_all(&d.generation);
    let environment = d.generation.project.config.active_env.as_deref().unwrap_or("-");
    tracing::info!(project = %root.display(), environment, timezone = %d.generation.tz, "daemon started: {}", status_line(&d.generation, &d.runs));
    d.notifier.ready(&status_line(&d.generation, &d.runs));
    d.publish();

    let mut hangup =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map_err(|e| format!("cannot watch SIGHUP: {e}"))?;
    let mut watchdog = d.notifier.watchdog_every.map(tokio::time::interval);
    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    let mut sweeps = tokio::time::interval(SWEEP_EVERY);
    let mut late = tokio::time::interval(LATE_EVERY);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(tick) = tick_rx.recv() => {
                if tick.generation != d.generation.id {
                    continue; // scheduled by a configuration since replaced
                }
                d.pending.jobs.remove(&tick.sync);
                d.pending.due.remove(&tick.sync);
                let generation = d.generation.clone();
                d.pending.schedule(&generation, &tick.sync, tick.due).await;
                d.start_after(&tick.sync, "the daemon's schedule");
                d.publish();
            }
            Some(done) = d.runs.next(), if d.runs.in_flight() > 0 => {
                log_done(&done);
                d.triggers.ended(&d.generation, &done.sync, matches!(done.ended, Ended::Busy(_)));
                d.ended(&done.sync, matches!(done.ended, Ended::Ran(_)));
                let stream = d.generation.project.syncs.iter().find(|s| s.name() == done.sync).and_then(|s| crate::project::stream_of(&s.source));
                if let Some(stream) = stream {
                    d.sweep(Some(stream));
                }
                d.publish();
            }
            Some(stream) = events_rx.recv() => {
                let runs = &d.runs;
                d.triggers.event(&d.generation, &stream, |s| runs.is_running(s));
            }
            _ = until(d.triggers.next_due()) => {
                d.start_due();
                d.publish();
            }
            _ = sweeps.tick() => d.sweep(None),
            _ = late.tick() => d.check_late(),
            Some(request) = control_rx.recv() => match request {
                Control::Run { name, asked, by, reply } => {
                    let _ = reply.send(d.trigger(&name, asked, by));
                    d.publish();
                }
                Control::Reload(reply) => {
                    let _ = reply.send(d.reload().await);
                }
            },
            _ = hangup.recv() => {
                let _ = d.reload().await;
            }
            _ = watchdog_tick(&mut watchdog) => d.notifier.watchdog(),
            _ = heartbeat.tick() => d.shared.heartbeat.store(Utc::now().timestamp_millis(), Ordering::Relaxed),
        }
    }
    d.notifier.stopping();
    tracing::info!(running = d.runs.in_flight(), "stopping: runs in flight finish their batch");
    d.pending.clear().await;
    let _ = d.pending.scheduler.shutdown().await;
    let abandoned = d.runs.drain(d.generation.project.config.daemon.shutdown_timeout).await;
    d.generation.engine.store.close().await;
    if abandoned > 0 {
        return Err(format!("{abandoned} run(s) did not finish within [daemon] shutdown_timeout; they resume on the next start"));
    }
    Ok(())
}

/// Waits until `at`; forever when there is nothing to wait for.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn watchdog_tick(watchdog: &mut Option<tokio::time::Interval>) {
    match watchdog {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_a_fixed_offset_within_the_bound() {
        assert_eq!(jitter_offset("a", 0), Duration::ZERO);
        let offsets: Vec<Duration> = ["a", "b", "c", "d", "e", "f"].iter().map(|s| jitter_offset(s, 30)).collect();
        assert!(offsets.iter().all(|d| *d <= Duration::from_secs(30)));
        assert_eq!(jitter_offset("a", 30), offsets[0], "the same every time");
        assert!(offsets.iter().any(|d| *d != offsets[0]), "syncs spread out: {offsets:?}");
    }
}
