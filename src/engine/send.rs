//! The send phase: spool -> batches -> destination -> outcomes -> state.
//!
//! Two loops run side by side in the run's task. The *sender* reads the next batch (spooled
//! rows, then deletes, then clears) and puts it on the wire, keeping up to the destination's
//! `max_in_flight` batches there at once (how many, `concurrency` decides from the service's
//! answers); each batch goes with its retries through a writer of its own (the run's writer or
//! one of its forks). As batches are answered, in whatever order, the sender tallies their
//! outcomes and hands them to the *committer*, which records them in the state store. The
//! store's work happens on its own thread (SQLite's worker, or the Postgres server), so on two
//! cores a commit costs the sender almost nothing.
//!
//! No two batches of a run hold one key, so their order does not matter. The commit rule is
//! unchanged: state advances only for rows the destination accepted, after it answered, one
//! transaction per commit. A commit may take several answered batches at once when the store
//! falls behind. A kill loses at most the batches between the wire and the store
//! ([`in_flight_bound`]), which the next run sends again; a cancelled run stops sending, waits
//! for the batches on the wire and commits everything that was answered.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

use super::concurrency::Adaptive;
use super::{keys, retry, Progress, RunError, RunOptions, Shape, SyncReport};
use crate::destinations::{Capabilities, Op, RowOp, RowOutcome, Target, Writer};
use crate::state::{Committed, Store, SyncLock};
use crate::value::{Hash128, Value};

use super::spool::{SpoolReader, SpoolRow};

/// Answered batches that may wait for the committer.
const QUEUED: usize = 1;

/// Batches sent but perhaps not committed when the process dies, for a destination that takes
/// `max_in_flight` at once: those on the wire or answered and waiting (together at most
/// `max_in_flight`), the ones queued for the committer and the one it is committing. The next
/// run sends them again.
pub fn in_flight_bound(max_in_flight: usize) -> usize {
    max_in_flight.max(1) + QUEUED + 1
}

/// What one run sends, and where the outcomes go.
pub(super) struct Send<'a> {
    pub store: &'a Store,
    /// The sync's lock: checked before each commit.
    pub lock: &'a SyncLock,
    pub name: &'a str,
    pub run_id: &'a str,
    pub destination: &'a str,
    pub shape: &'a Shape,
    pub target: &'a Target,
    pub caps: &'a Capabilities,
    pub log_values: bool,
    pub opts: &'a RunOptions,
    /// Cancelled when the run's deadline passes: the request on the wire is cut short (its
    /// rows are sent again by the next run), not awaited.
    pub abort: &'a tokio_util::sync::CancellationToken,
    pub batch_rows: usize,
    /// Whether stored rows carry the destination's record ids (looked up per batch).
    pub needs_ids: bool,
    /// `diff = "warehouse"`: the source's tables and the sync's, recorded after the store.
    pub warehouse: Option<(&'a crate::source::warehouse::WarehouseState, String)>,
}

/// One row of an answered batch, as the state store records it.
struct Head {
    key_hash: Hash128,
    fingerprint: Hash128,
    op: Op,
    key_json: String,
    /// The source database's key and fingerprint (`diff = "warehouse"`).
    warehouse: Option<super::warehouse::WarehouseRow>,
}

/// A batch on its way to the destination.
struct Job {
    heads: Vec<Head>,
    ops: Vec<RowOp>,
    /// The key as plain JSON, for the change log.
    shown_keys: Vec<String>,
}

/// A batch and its answer, back from the wire.
struct Done {
    job: Job,
    sent: retry::Sent,
}

/// What is left to send: the spooled rows, then the deletes, then the clears.
struct Batches<'a> {
    reader: SpoolReader,
    deletes: std::slice::Chunks<'a, Hash128>,
    clears: std::slice::Chunks<'a, Hash128>,
}

impl<'a> Batches<'a> {
    fn new(reader: SpoolReader, deletes: &'a [Hash128], clears: &'a [Hash128], rows: usize) -> Batches<'a> {
        Batches { reader, deletes: deletes.chunks(rows), clears: clears.chunks(rows) }
    }
}

/// A batch the destination answered, on its way to the state store.
struct Answered {
    heads: Vec<Head>,
    outcomes: Vec<RowOutcome>,
    /// The key as plain JSON, for the change log.
    shown_keys: Vec<String>,
    /// The fields sent, for syncs with `log_values`.
    fields: Vec<Option<String>>,
}

impl Answered {
    fn items(&self) -> impl Iterator<Item = Committed<'_>> {
        self.heads.iter().zip(&self.outcomes).zip(self.shown_keys.iter().zip(&self.fields)).map(|((h, outcome), (shown, fields))| {
            Committed {
                key_hash: h.key_hash,
                key_json: &h.key_json,
                fingerprint: h.fingerprint,
                op: h.op,
                outcome,
                shown_key: shown,
                fields_json: fields.as_deref(),
            }
        })
    }
}

impl Send<'_> {
    /// Sends every spooled row, then the deletes and clears, committing each answered batch.
    /// Returns once every answered batch is committed, with the first error that stopped it.
    pub async fn run(
        &self,
        writer: &mut dyn Writer,
        reader: SpoolReader,
        deletes: &[Hash128],
        clears: &[Hash128],
        report: &mut SyncReport,
    ) -> Result<(), RunError> {
        let (tx, rx) = mpsc::channel(QUEUED);
        let batches = Batches::new(reader, deletes, clears, self.batch_rows);
        let (sent, committed) = tokio::join!(self.send_all(writer, batches, report, tx), self.commit_all(rx));
        // A failed commit first: the state store is behind what the destination holds (the
        // next run re-sends those rows), and the sender stopped because of it.
        committed?;
        sent
    }

    async fn commit_all(&self, rx: mpsc::Receiver<Answered>) -> Result<(), RunError> {
        let result = self.commit_each(rx).await;
        // A DuckDB source's file stays open for writing from the first commit to here.
        if let Some((state, table)) = &self.warehouse {
            state.release(table).await;
        }
        result
    }

    async fn commit_each(&self, mut rx: mpsc::Receiver<Answered>) -> Result<(), RunError> {
        let (mut commits, mut busy) = (0u64, Duration::ZERO);
        while let Some(first) = rx.recv().await {
            let mut group = vec![first];
            while let Ok(next) = rx.try_recv() {
                group.push(next);
            }
            let started = Instant::now();
            let items: Vec<Committed> = group.iter().flat_map(Answered::items).collect();
            // On an error the receiver is dropped: the sender sees it at its next hand-off.
            // A run that lost its lock may have company: it commits nothing more.
            self.lock.check().await?;
            self.store.commit_batch(self.name, self.run_id, &items).await?;
            // After the store: a kill between the two re-sends these rows, never loses them.
            if let Some((state, table)) = &self.warehouse {
                let applied: Vec<_> = group
                    .iter()
                    .flat_map(|a| a.heads.iter().zip(&a.outcomes))
                    .filter(|(_, outcome)| matches!(outcome, RowOutcome::Written { .. }))
                    .filter_map(|(h, _)| super::warehouse::applied(h.op, h.key_hash, h.warehouse.as_ref()))
                    .collect();
                if !applied.is_empty() {
                    state.commit(table, &applied).await?;
                }
            }
            busy += started.elapsed();
            commits += 1;
        }
        tracing::debug!(sync = %self.name, commits, ms = busy.as_millis() as u64, "batches committed");
        Ok(())
    }

    async fn send_all(
        &self,
        writer: &mut dyn Writer,
        batches: Batches<'_>,
        report: &mut SyncReport,
        tx: mpsc::Sender<Answered>,
    ) -> Result<(), RunError> {
        // One writer per batch on the wire: the run's own, and as many forks as the destination
        // takes batches at once. A writer that cannot fork sends one batch at a time.
        let mut forks: Vec<Box<dyn Writer>> = Vec::new();
        while forks.len() + 1 < self.caps.max_in_flight {
            match writer.fork() {
                Some(fork) => forks.push(fork),
                None => break,
            }
        }
        let flow = Adaptive::new(forks.len() + 1, self.destination, self.store.shared_windows());
        let sent = {
            let mut idle: Vec<&mut dyn Writer> = vec![&mut *writer];
            idle.extend(forks.iter_mut().map(|f| &mut **f as &mut dyn Writer));
            self.send_side_by_side(idle, &flow, batches, report, tx).await
        };
        for fork in forks {
            if let Err(error) = fork.close().await {
                tracing::warn!(sync = %self.name, error = %error.message, "closing a writer failed");
            }
        }
        sent
    }

    /// Keeps up to `flow`'s limit of batches on the wire, one per idle writer, and hands each
    /// answered batch to the committer. Stops at the first error, after the batches on the wire
    /// are answered and everything answered is handed over.
    async fn send_side_by_side(
        &self,
        mut idle: Vec<&mut dyn Writer>,
        flow: &Adaptive,
        mut batches: Batches<'_>,
        report: &mut SyncReport,
        tx: mpsc::Sender<Answered>,
    ) -> Result<(), RunError> {
        // Where the sender's time goes (SLUICE_LOG=sluice=debug).
        let started = Instant::now();
        let mut wire = FuturesUnordered::new();
        let mut answered: VecDeque<Answered> = VecDeque::new();
        let (mut stop, mut exhausted) = (None::<RunError>, false);
        loop {
            if stop.is_none() && self.opts.cancel.is_cancelled() {
                stop = Some(RunError::Cancelled(format!(
                    "stopped on request after {} batch(es); the rest is sent on the next run",
                    report.batches
                )));
            }
            // A new batch goes to a free writer while the batches on the wire and those answered
            // but not handed over stay within the ceiling (the kill bound). Each of its attempts
            // then waits for a slot under the adaptive limit (`retry`).
            if stop.is_none() && !exhausted && !self.abort.is_cancelled() && wire.len() + answered.len() < flow.ceiling() {
                if let Some(lane) = idle.pop() {
                    let Some(job) = self.next_job(&mut batches).await? else {
                        exhausted = true;
                        idle.push(lane);
                        continue;
                    };
                    report.batches += 1;
                    let done = report.written + report.rejected + report.retryable;
                    self.opts.progress(Progress::Sending { sync: self.name, sent: done, total: report.to_send.total() });
                    let (caps, cancel) = (self.caps, &self.opts.cancel);
                    wire.push(async move {
                        let sent = retry::write_with_retry(&mut *lane, &job.ops, caps, cancel, flow).await;
                        (lane, Done { job, sent })
                    });
                    continue;
                }
            }
            if wire.is_empty() && answered.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                _ = self.abort.cancelled() => {
                    // The batches on the wire are cut short (the next run sends them again);
                    // what was answered is still recorded.
                    drop(wire);
                    for batch in answered {
                        if tx.send(batch).await.is_err() {
                            break;
                        }
                    }
                    return Err(RunError::Cancelled("stopped at the run's deadline".into()));
                }
                Some((lane, done)) = wire.next(), if !wire.is_empty() => {
                    let lane: &mut dyn Writer = lane;
                    lane.take_warnings().into_iter().for_each(|w| report.warn(w));
                    idle.push(lane);
                    let (batch, error) = self.tally(done, report);
                    // Answered: the progress counts it (the last answer shows every row sent).
                    let done = report.written + report.rejected + report.retryable;
                    self.opts.progress(Progress::Sending { sync: self.name, sent: done, total: report.to_send.total() });
                    answered.push_back(batch);
                    if let (Some(error), None) = (error, &stop) {
                        stop = Some(RunError::Destination { name: self.destination.to_string(), error });
                    }
                }
                permit = tx.reserve(), if !answered.is_empty() => match (permit, answered.pop_front()) {
                    (Ok(permit), Some(batch)) => permit.send(batch),
                    // The committer stopped on an error (`run` reports it): nothing more is sent.
                    _ => return Ok(()),
                },
            }
        }
        let ms = |d: Duration| d.as_millis() as u64;
        tracing::debug!(sync = %self.name, batches = report.batches, ms = ms(started.elapsed()), most_in_flight = flow.most_in_flight(), limit = flow.limit(), "batches sent");
        report.sending = (report.batches > 0).then(|| self.pace_of(flow, started.elapsed(), report));
        stop.map_or(Ok(()), Err)
    }

    /// What the send phase achieved, against the destination's ceiling and rate limit.
    fn pace_of(&self, flow: &Adaptive, took: Duration, report: &SyncReport) -> super::report::Sending {
        let seconds = took.as_secs_f64().max(1e-3);
        let requests = flow.requests();
        let used = self.caps.rate_limit.map(|limit| {
            // The windows the phase spanned allowed this many.
            let windows = (took.as_secs_f64() / limit.per.as_secs_f64()).ceil().max(1.0);
            (requests as f64 / (windows * f64::from(limit.requests))).min(1.0)
        });
        super::report::Sending {
            seconds,
            rows_per_second: (report.written + report.rejected + report.retryable) as f64 / seconds,
            requests,
            most_in_flight: flow.most_in_flight(),
            max_in_flight: flow.ceiling(),
            rate_limit: self.caps.rate_limit.map(|l| l.to_string()),
            rate_limit_used: used,
        }
    }

    /// The next batch, with what the store needs to record its answer; `None` when every row,
    /// delete and clear went out.
    async fn next_job(&self, batches: &mut Batches<'_>) -> Result<Option<Job>, RunError> {
        let rows = batches.reader.next_batch(self.batch_rows).map_err(RunError::Invalid)?;
        let batch = if !rows.is_empty() {
            self.upserts(rows).await?
        } else if let Some(hashes) = batches.deletes.next() {
            self.removals(hashes, Op::Delete).await?
        } else if let Some(hashes) = batches.clears.next() {
            self.removals(hashes, Op::Clear).await?
        } else {
            return Ok(None);
        };
        let shown_keys: Vec<String> = batch.iter().map(|(r, _, _)| keys::plain_key_json(&self.shape.key_columns, &r.key)).collect();
        let mut heads = Vec::with_capacity(batch.len());
        let mut ops = Vec::with_capacity(batch.len());
        for (row, key_json, destination_id) in batch {
            heads.push(Head { key_hash: row.key_hash, fingerprint: row.fingerprint, op: row.op, key_json, warehouse: row.warehouse });
            ops.push(RowOp { op: row.op, key: row.key, fields: row.fields, destination_id });
        }
        Ok(Some(Job { heads, ops, shown_keys }))
    }

    /// Counts an answered batch's outcomes in the report. A batch that ended in an error still
    /// has outcomes: rows written before it are committed like any others, the rest as pending;
    /// the error then stops the run.
    fn tally(&self, done: Done, report: &mut SyncReport) -> (Answered, Option<crate::destinations::DestinationError>) {
        let Done { job: Job { heads, ops, shown_keys }, sent: retry::Sent { outcomes, error, undone } } = done;
        let fields =
            ops.iter().map(|op| (self.log_values && op.op != Op::Delete).then(|| op.fields_json(self.target).to_string())).collect();
        for ((op, outcome), undone) in ops.iter().zip(&outcomes).zip(&undone) {
            match undone {
                // Left undone by the error that ends the run: the run's error says why, once.
                true => report.retryable += 1,
                false => report.tally(|| keys::key_label(&self.shape.key_columns, &op.key), outcome),
            }
        }
        (Answered { heads, outcomes, shown_keys, fields }, error)
    }

    /// Spooled rows, each with its stored key text and the destination's record id, if any.
    async fn upserts(&self, rows: Vec<SpoolRow>) -> Result<Vec<(SpoolRow, String, Option<String>)>, RunError> {
        let mut ids = if self.needs_ids {
            let hashes: Vec<_> = rows.iter().map(|r| r.key_hash).collect();
            self.store.lookup(self.name, &hashes).await?
        } else {
            Default::default()
        };
        Ok(rows
            .into_iter()
            .map(|row| {
                let key_json = keys::key_json(&self.shape.key_columns, &row.key);
                let id = ids.remove(&row.key_hash).and_then(|s| s.destination_id);
                (row, key_json, id)
            })
            .collect())
    }

    /// Stored rows that left the model, to delete or to clear.
    async fn removals(&self, hashes: &[Hash128], op: Op) -> Result<Vec<(SpoolRow, String, Option<String>)>, RunError> {
        let mut batch = Vec::with_capacity(hashes.len());
        for (hash, row) in self.store.lookup(self.name, hashes).await? {
            let key = keys::parse_key_json(&row.key_json).map_err(RunError::Invalid)?;
            let (fingerprint, fields) = match op {
                Op::Clear => {
                    // The fields that carry the key keep it (the destination finds the record by
                    // them); every other mapped field is emptied.
                    let mut fields = vec![Value::Null; self.target.fields.len()];
                    for (k, field) in self.target.key_fields.iter().enumerate() {
                        if let (Some(j), Some(v)) = (field, key.get(k)) {
                            fields[*j] = v.clone();
                        }
                    }
                    (crate::diff::CLEARED, fields)
                }
                _ => (0, Vec::new()),
            };
            batch.push((SpoolRow { op, key_hash: hash, fingerprint, key, fields, warehouse: None }, row.key_json, row.destination_id));
        }
        Ok(batch)
    }
}
