//! The send phase: spool -> batches -> destination -> outcomes -> state.
//!
//! Two loops run side by side in the run's task. The *sender* reads the next batch (spooled
//! rows, then deletes, then clears), sends it with its retries and tallies the outcomes; the
//! *committer* records each answered batch in the state store while the sender already has the
//! next one on the wire. The store's work happens on its own thread (SQLite's worker, or the
//! Postgres server), so on two cores a commit costs the sender almost nothing.
//!
//! The commit rule is unchanged: state advances only for rows the destination accepted, after
//! it answered, one transaction per commit. A commit may take several answered batches at once
//! when the store falls behind. A kill loses at most the batches between the wire and the store
//! ([`IN_FLIGHT`]), which the next run sends again; a cancelled run stops sending and commits
//! everything that was answered.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{keys, retry, Progress, RunError, RunOptions, Shape, SyncReport};
use crate::destinations::{Capabilities, Op, RowOp, RowOutcome, Target, Writer};
use crate::state::{Committed, StateError, Store, SyncLock};
use crate::value::{Hash128, Value};

use super::spool::{SpoolReader, SpoolRow};

/// Answered batches that may wait for the committer. With one waiting, one being committed and
/// one on the wire, a kill loses at most three batches' worth of commits.
const QUEUED: usize = 1;
/// Batches sent but perhaps not committed when the process dies: re-sent by the next run.
pub const IN_FLIGHT: usize = QUEUED + 2;

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
}

/// One row of an answered batch, as the state store records it.
struct Head {
    key_hash: Hash128,
    fingerprint: Hash128,
    op: Op,
    key_json: String,
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
        let (sent, committed) = tokio::join!(self.send_all(writer, reader, deletes, clears, report, tx), self.commit_all(rx));
        // A failed commit first: the state store is behind what the destination holds (the
        // next run re-sends those rows), and the sender stopped because of it.
        committed?;
        sent
    }

    async fn commit_all(&self, mut rx: mpsc::Receiver<Answered>) -> Result<(), StateError> {
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
            busy += started.elapsed();
            commits += 1;
        }
        tracing::debug!(sync = %self.name, commits, ms = busy.as_millis() as u64, "batches committed");
        Ok(())
    }

    async fn send_all(
        &self,
        writer: &mut dyn Writer,
        mut reader: SpoolReader,
        deletes: &[Hash128],
        clears: &[Hash128],
        report: &mut SyncReport,
        tx: mpsc::Sender<Answered>,
    ) -> Result<(), RunError> {
        // Where the sender's time goes (SLUICE_LOG=sluice=debug): the destination, or waiting
        // for the committer to take an answered batch.
        let (started, mut writing, mut waiting) = (Instant::now(), Duration::ZERO, Duration::ZERO);
        let mut delete_chunks = deletes.chunks(self.batch_rows);
        let mut clear_chunks = clears.chunks(self.batch_rows);
        loop {
            if self.opts.cancel.is_cancelled() {
                return Err(RunError::Cancelled(format!(
                    "stopped on request after {} batch(es); the rest is sent on the next run",
                    report.batches
                )));
            }
            let rows = reader.next_batch(self.batch_rows).map_err(RunError::Invalid)?;
            let batch = if !rows.is_empty() {
                self.upserts(rows).await?
            } else if let Some(hashes) = delete_chunks.next() {
                self.removals(hashes, Op::Delete).await?
            } else if let Some(hashes) = clear_chunks.next() {
                self.removals(hashes, Op::Clear).await?
            } else {
                break;
            };
            let shown_keys: Vec<String> = batch.iter().map(|(r, _, _)| keys::plain_key_json(&self.shape.key_columns, &r.key)).collect();
            let mut heads = Vec::with_capacity(batch.len());
            let mut ops = Vec::with_capacity(batch.len());
            for (row, key_json, destination_id) in batch {
                heads.push(Head { key_hash: row.key_hash, fingerprint: row.fingerprint, op: row.op, key_json });
                ops.push(RowOp { op: row.op, key: row.key, fields: row.fields, destination_id });
            }
            report.batches += 1;
            let total = report.to_send.total();
            let done = report.written + report.rejected + report.retryable;
            self.opts.progress(Progress::Sending { sync: self.name, sent: done, total });
            // A batch that ended in an error still has outcomes: rows written before it are
            // committed like any others, the rest as pending; then the run stops.
            let write_started = Instant::now();
            let sent = tokio::select! {
                sent = retry::write_with_retry(writer, &ops, self.caps, &self.opts.cancel) => sent,
                _ = self.abort.cancelled() => return Err(RunError::Cancelled("stopped at the run's deadline".into())),
            };
            let retry::Sent { outcomes, error, undone } = sent;
            writing += write_started.elapsed();
            let fields =
                ops.iter().map(|op| (self.log_values && op.op != Op::Delete).then(|| op.fields_json(self.target).to_string())).collect();
            writer.take_warnings().into_iter().for_each(|w| report.warn(w));
            for ((op, outcome), undone) in ops.iter().zip(&outcomes).zip(&undone) {
                match undone {
                    // Left undone by the error that ends the run: the run's error says why, once.
                    true => report.retryable += 1,
                    false => report.tally(|| keys::key_label(&self.shape.key_columns, &op.key), outcome),
                }
            }
            let answered = Answered { heads, outcomes, shown_keys, fields };
            let handed = Instant::now();
            let refused = tx.send(answered).await.is_err();
            waiting += handed.elapsed();
            if refused {
                // The committer stopped on an error; `run` reports it.
                return Ok(());
            }
            if let Some(error) = error {
                return Err(RunError::Destination { name: self.destination.to_string(), error });
            }
        }
        let ms = |d: Duration| d.as_millis() as u64;
        tracing::debug!(sync = %self.name, batches = report.batches, ms = ms(started.elapsed()), writing_ms = ms(writing), waiting_ms = ms(waiting), "batches sent");
        Ok(())
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
            batch.push((SpoolRow { op, key_hash: hash, fingerprint, key, fields }, row.key_json, row.destination_id));
        }
        Ok(batch)
    }
}
