//! The daemon's side of streams: which syncs run when events arrive (`Triggers`), and the
//! sweep that prunes events every sync has read and publishes how far behind each sync is.
//!
//! A sync with `trigger = "on_event"` is armed by the first event after its last run and runs
//! `debounce` later, so a burst is sent by one run. An event arriving while the sync runs arms
//! it again for when that run ends (the run may have chosen its events before it came). At start
//! and after a reload every such sync runs once, which sends what arrived while it was down.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use super::runs::Generation;
use crate::project::{stream_of, SyncSpec, Trigger};

/// How long a sync found running in another process waits before it is tried again.
const BUSY_RETRY: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct Triggers {
    /// When each armed sync runs.
    due: HashMap<String, Instant>,
    /// Syncs that got events while they ran: armed again when the run ends.
    again: HashSet<String>,
}

/// The syncs over `stream` that run on its events, with their debounce.
fn waiting_on<'g>(generation: &'g Generation, stream: &'g str) -> impl Iterator<Item = (&'g SyncSpec, Duration)> + 'g {
    generation.project.syncs.iter().filter_map(move |s| match s.file.trigger {
        Trigger::OnEvent { debounce, .. } if stream_of(&s.source) == Some(stream) => Some((s, debounce)),
        _ => None,
    })
}

impl Triggers {
    /// Arms every sync that runs on events, to run now: at start and after a reload.
    pub fn arm_all(&mut self, generation: &Generation) {
        let now = Instant::now();
        for sync in generation.project.syncs.iter().filter(|s| matches!(s.file.trigger, Trigger::OnEvent { .. })) {
            self.due.insert(sync.name().to_string(), now);
        }
        // Syncs no longer defined (a reload) are forgotten.
        self.due.retain(|name, _| generation.project.syncs.iter().any(|s| s.name() == name));
        self.again.retain(|name| generation.project.syncs.iter().any(|s| s.name() == name));
    }

    /// An event arrived on `stream`.
    pub fn event(&mut self, generation: &Generation, stream: &str, running: impl Fn(&str) -> bool) {
        let now = Instant::now();
        for (sync, debounce) in waiting_on(generation, stream) {
            if running(sync.name()) {
                self.again.insert(sync.name().to_string());
            } else {
                self.due.entry(sync.name().to_string()).or_insert(now + debounce);
            }
        }
    }

    /// When the next armed sync is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    /// The syncs due now, disarmed; those running are armed again for when they end.
    pub fn take_due(&mut self, running: impl Fn(&str) -> bool) -> Vec<String> {
        let now = Instant::now();
        let due: Vec<String> = self.due.iter().filter(|(_, at)| **at <= now).map(|(name, _)| name.clone()).collect();
        due.into_iter()
            .filter(|name| {
                self.due.remove(name);
                if running(name) {
                    self.again.insert(name.clone());
                    return false;
                }
                true
            })
            .collect()
    }

    /// A run of `sync` ended: run it again if events came meanwhile, or, when another process
    /// held it (`busy`), shortly.
    pub fn ended(&mut self, generation: &Generation, sync: &str, busy: bool) {
        let Some(debounce) = generation.project.syncs.iter().find(|s| s.name() == sync).and_then(|s| match s.file.trigger {
            Trigger::OnEvent { debounce, .. } => Some(debounce),
            Trigger::Schedule => None,
        }) else {
            return;
        };
        let now = Instant::now();
        if busy {
            self.due.insert(sync.to_string(), now + debounce.max(BUSY_RETRY));
        } else if self.again.remove(sync) {
            self.due.entry(sync.to_string()).or_insert(now + debounce);
        }
    }
}

/// Drops the events of `stream` past its `retain` that every sync over it has read, and
/// publishes how many it holds and how far behind each sync is. A sync that has never got
/// through a run holds every event.
pub async fn sweep(generation: &Generation, stream: &str) {
    let Some(config) = generation.project.config.streams.get(stream) else { return };
    let store = &generation.engine.store;
    let metrics = crate::metrics::global();
    let mut read_by_all = i64::MAX;
    for sync in generation.project.syncs.iter().filter(|s| stream_of(&s.source) == Some(stream)) {
        let cursor = match store.stream_cursor(sync.name()).await {
            Ok(c) => c,
            Err(e) => return tracing::warn!(stream, error = %e, "cannot read the syncs' cursors: no events pruned this time"),
        };
        read_by_all = read_by_all.min(cursor);
        let oldest = store.oldest_unread(stream, cursor).await.ok().flatten();
        let age = oldest
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map_or(0.0, |t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds().max(0) as f64 / 1000.0);
        let labels = crate::metrics::StreamSyncLabels { stream: stream.to_string(), sync: sync.name().to_string() };
        metrics.oldest_unread.get_or_create(&labels).set(age);
    }
    let retain = chrono::Duration::from_std(config.retain).unwrap_or(chrono::Duration::MAX);
    if let Some(cutoff) = chrono::Utc::now().checked_sub_signed(retain) {
        match store.prune_events(stream, &crate::state::stamp(cutoff), read_by_all).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(stream, pruned = n, "events past retain, read by every sync over the stream, dropped"),
            Err(e) => tracing::warn!(stream, error = %e, "could not prune the stream's events"),
        }
    }
    if let Ok(n) = store.count_events(stream).await {
        metrics.events_stored.get_or_create(&crate::metrics::StreamLabel { stream: stream.to_string() }).set(n);
    }
}
