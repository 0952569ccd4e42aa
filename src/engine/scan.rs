//! A run's scan: the whole model read and diffed against the stored state, the rows to send
//! spooled to disk. Nothing is sent before it ends, so duplicate keys fail the run with nothing
//! written. The writer is opened first: a destination that reads its keys when opened can tell
//! which stored rows someone removed by hand (`Writer::holds`).

use std::time::Instant;

use super::hashing::{self, BadKey, Hashed};
use super::prepare::Prepared;
use super::spool::{Spool, SpoolRow};
use super::{keys, op_for, retry, Engine, Progress, RunError, RunOptions, Shape, SyncReport, DUPLICATES_SHOWN};
use crate::destinations::{Target, Writer};
use crate::diff::{Change, Differ, Duplicate};
use crate::project::{Mode, SyncSpec};
use crate::value::{Hash128, Value};

/// What the scan leaves for the next phases.
pub(super) struct Scanned {
    pub shape: Shape,
    pub target: Target,
    /// `None` for a plan, which opens nothing.
    pub writer: Option<Box<dyn Writer>>,
    /// Every model row classified; `Differ::finish` gives the removals.
    pub differ: Differ,
    /// The added and changed rows to send.
    pub spool: Spool,
    /// Rows rejected once that the destination now holds as the model says: errors to forget.
    pub settled: Vec<Hash128>,
}

impl Engine {
    pub(super) async fn scan(
        &self,
        sync: &SyncSpec,
        opts: &RunOptions,
        run_id: &str,
        prepared: &mut Prepared<'_>,
        report: &mut SyncReport,
    ) -> Result<Scanned, RunError> {
        let name = sync.name();
        let after = prepared.cursor.as_ref().filter(|_| prepared.cursor_in_model).and_then(|c| c.after.as_ref());
        // The stored state loads while the model query starts. The reader stops once a few
        // chunks wait for the diff (the source's and the hashing stage's channels are bounded),
        // so the load is on a run's critical path: hence its packed form (`state::pages`, a few
        // hundred blobs, not a row per pair).
        let started = Instant::now();
        let load = async {
            let stored = self.store.snapshot(name, !opts.dry_run).await;
            tracing::debug!(sync = %name, ms = started.elapsed().as_millis() as u64, "stored state loaded");
            stored
        };
        let stopped = || RunError::Cancelled("stopped on request while reading the model; nothing was sent".into());
        // A model whose query takes long to give its first row is stopped too; the state load
        // never is (a fold half done would leave the store's connection in its transaction).
        let stream = async {
            tokio::select! {
                stream = prepared.source.stream(&sync.file.model, after, sync.file.statement_timeout) => stream.map_err(RunError::from),
                _ = opts.cancel.cancelled() => Err(stopped()),
            }
        };
        let (snapshot, stream) = tokio::join!(load, stream);
        let snapshot = snapshot?;
        let stream = stream?;
        let shape = Shape::new(sync, &stream.columns)?;
        let target = shape.target(sync, run_id);
        let writer = match opts.dry_run {
            true => None,
            false => Some(
                // Opening may read (Sheets' tab, HubSpot's properties): in the shared windows too.
                crate::destinations::flow::within(
                    self.store.shared_windows(),
                    retry::open_with_retry(prepared.destination.as_ref(), &target, &prepared.caps, &opts.cancel),
                )
                .await
                .map_err(|error| RunError::Destination { name: sync.destination.clone(), error })?,
            ),
        };
        // Only a writer that read its keys can tell; asking the others would build every
        // unchanged row's key for nothing.
        let heal = matches!(sync.file.mode, Mode::Upsert | Mode::Mirror) && writer.as_ref().is_some_and(|w| w.reads_keys());
        let mut differ = Differ::new(snapshot, opts.full_resync);
        let mut spool = Spool::new().map_err(RunError::Spool)?;
        let mut duplicates = Duplicates::default();
        let mut settled: Vec<Hash128> = Vec::new();
        // Per chunk: its rows hashed (on their own thread: `hashing`), then the chunk
        // classified in one call (its stored pairs are looked up together: see
        // `Differ::classify_chunk`), then each row acted on. Values are built only for rows to send.
        let mut hashed_chunks = hashing::spawn(shape.clone(), Value::Text(prepared.config_fp.clone()), stream.rows);
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
            if let (Some(c), Some(i)) = (prepared.cursor.as_mut(), shape.cursor_idx) {
                for r in 0..chunk.len() {
                    c.see(&chunk.value(r, i)?);
                }
            }
            for (r, k, why) in bad_keys {
                let (row, column) = (first_row + r as u64 + 1, &shape.key_columns[k]);
                match why {
                    BadKey::Null => {
                        report.null_keys += 1;
                        report.warn(format!(
                            "model row {row} has NULL in primary key column `{column}`: row skipped (fix the model or filter it out)"
                        ));
                    }
                    BadKey::NotFinite => {
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
                        duplicates.count += 1;
                        if duplicates.shown.len() < DUPLICATES_SHOWN {
                            duplicates.shown.push(format!("({})", keys::key_label(&shape.key_columns, &key()?)));
                        }
                        continue;
                    }
                };
                if change == Change::Unchanged {
                    // Rejected once, but the destination holds what the model says now (the row
                    // went back to its last written value): the error is settled.
                    if prepared.holds.contains_key(&key_hash) {
                        settled.push(key_hash);
                    }
                    continue;
                }
                let still_held = prepared.holds.get(&key_hash).is_some_and(|(fp, seen)| {
                    *fp == fingerprint && chrono::DateTime::parse_from_rfc3339(seen).is_ok_and(|t| t > prepared.held_since)
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
                if let Some(op) = op_for(sync.file.mode, change) {
                    report.to_send.add(op);
                    spool.push(&SpoolRow { op, key_hash, fingerprint, key, fields }).map_err(RunError::Spool)?;
                }
            }
        }
        // New keys are checked for duplicates once the scan ended; their rows are in the spool,
        // which names them.
        let repeated = differ.end_scan();
        if duplicates.count > 0 || !repeated.is_empty() {
            duplicates.count += repeated.len() as u64;
            if !repeated.is_empty() {
                let wanted: rustc_hash::FxHashSet<_> = repeated.into_iter().collect();
                let room = DUPLICATES_SHOWN.saturating_sub(duplicates.shown.len());
                let named = spool.find(&wanted, room).map_err(RunError::Spool)?;
                duplicates.shown.extend(named.iter().map(|row| format!("({})", keys::key_label(&shape.key_columns, &row.key))));
            }
            return Err(RunError::DuplicateKeys(duplicates.message(&shape.key_columns)));
        }
        tracing::debug!(sync = %name, rows = report.rows_read, ms = started.elapsed().as_millis() as u64, "model read and diffed");
        Ok(Scanned { shape, target, writer, differ, spool, settled })
    }
}

/// Duplicate keys found: how many, and the first few, named.
#[derive(Default)]
struct Duplicates {
    count: u64,
    shown: Vec<String>,
}

impl Duplicates {
    fn message(&self, key_columns: &[String]) -> String {
        // Rows held back (rejected before, unchanged) are not spooled, so a few may go unnamed.
        let shown = match (self.shown.len(), self.count as usize > self.shown.len()) {
            (0, _) => String::new(),
            (_, true) => format!(": {}, ...", self.shown.join(", ")),
            (_, false) => format!(": {}", self.shown.join(", ")),
        };
        format!(
            "the model returned {} duplicate primary key(s), nothing was sent{shown} (make `{}` unique in the model)",
            self.count,
            key_columns.join(", ")
        )
    }
}
