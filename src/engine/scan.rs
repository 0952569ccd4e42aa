//! A run's scan: the whole model read and diffed against the stored state, the rows to send
//! spooled to disk. Nothing is sent before it ends, so duplicate keys fail the run with nothing
//! written. The writer is opened first: a destination that reads its keys when opened can tell
//! which stored rows someone removed by hand (`Writer::holds`).

use std::time::Instant;

use super::hashing::{self, BadKey, Hashed};
use super::prepare::Prepared;
use super::saved::{self, Planned};
use super::spool::{Spool, SpoolRow};
use super::warehouse;
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
    /// Every model row classified, and what left the model.
    pub diffed: Diffed,
    /// The added and changed rows to send.
    pub spool: Spool,
    /// Rows rejected once that the destination now holds as the model says: errors to forget.
    pub settled: Vec<Hash128>,
    /// `sluice apply`: the changes found, against the saved plan's.
    pub check: saved::Check,
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
        let in_source = prepared.warehouse.is_some();
        let load = async {
            if in_source {
                // Nothing to load: the source holds what the diff compares with. Staged rows
                // are folded all the same (the deletes' lookups read `sync_rows`).
                if !opts.dry_run {
                    self.store.fold(name).await?;
                }
                return Ok(None);
            }
            let stored = self.store.snapshot(name, !opts.dry_run).await;
            tracing::debug!(sync = %name, ms = started.elapsed().as_millis() as u64, "stored state loaded");
            stored.map(Some)
        };
        // The warehouse diff's query is built from the model's columns and the sync's shape.
        let spec = match in_source {
            false => None,
            true => {
                let columns = prepared.source.describe(&sync.file.model).await?;
                let shape = Shape::new(sync, &columns)?;
                let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
                if let Some(c) = names.iter().find(|c| warehouse_name(c)) {
                    return Err(RunError::Invalid(format!(
                        "{}:{}: column `{c}`: with diff = \"warehouse\", model columns cannot be named like sluice's own \
                         ({}): rename it in the model",
                        sync.file.path.display(),
                        sync.file.model_line,
                        crate::source::warehouse::EXTRA.join(", ")
                    )));
                }
                // A real run created the sync's table; a plan, which writes nothing, may find none.
                let table = crate::source::warehouse::table_name(name);
                let exists = match (opts.dry_run, prepared.warehouse) {
                    (true, Some(state)) => state.exists(&table).await?,
                    _ => true,
                };
                Some(warehouse::spec(sync, &shape, &columns, &prepared.config_fp, opts.full_resync, exists))
            }
        };
        let stopped = || RunError::Cancelled("stopped on request while reading the model; nothing was sent".into());
        // A model whose query takes long to give its first row is stopped too; the state load
        // never is (a fold half done would leave the store's connection in its transaction).
        let stream = async {
            let stream = async {
                match &spec {
                    None => prepared.source.stream(&sync.file.model, after, sync.file.statement_timeout).await,
                    Some(spec) => prepared.source.stream_diff(&sync.file.model, spec, sync.file.statement_timeout).await,
                }
            };
            tokio::select! {
                stream = stream => stream.map_err(RunError::from),
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
        let mut differ = snapshot.map(|snapshot| Differ::new(snapshot, opts.full_resync));
        let mut spool = Spool::new().map_err(RunError::Spool)?;
        let mut duplicates = Duplicates::default();
        let mut settled: Vec<Hash128> = Vec::new();
        let plan = expected(opts, name)?;
        let mut check = saved::Check::default();
        // Per chunk: its rows hashed (on their own thread: `hashing`), then the chunk
        // classified in one call (its stored pairs are looked up together: see
        // `Differ::classify_chunk`), then each row acted on. Values are built only for rows to send.
        // A warehouse diff's removed rows and count are taken aside; the model rows go on.
        let width = stream.columns.len();
        let (rows, in_warehouse) = match spec {
            None => (stream.rows, None),
            Some(_) => {
                let (rows, aside) = warehouse::split(stream.rows, width);
                (rows, Some((width, aside)))
            }
        };
        let mut warehouse_counts = (0u64, 0u64);
        let mut hashed_chunks = hashing::spawn(shape.clone(), Value::Text(prepared.config_fp.clone()), rows);
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
            match (&mut differ, &in_warehouse) {
                (Some(differ), _) => differ.classify_chunk(&probes, &mut changes),
                (None, Some((width, _))) => {
                    warehouse::classify(&chunk, &rows, *width, &mut changes)?;
                    for change in &changes {
                        match change {
                            Ok(Change::Added) => warehouse_counts.0 += 1,
                            Ok(Change::Changed) => warehouse_counts.1 += 1,
                            _ => {}
                        }
                    }
                }
                (None, None) => {}
            }
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
                    // `--limit`: the changes past it stay as they are in the state, so the next
                    // run finds them changed still.
                    if opts.limit.is_some_and(|limit| report.to_send.total() >= limit) {
                        report.limited += 1;
                        continue;
                    }
                    report.to_send.add(op);
                    if let Some(plan) = plan {
                        check.see(plan, key_hash, op, Some(fingerprint), removed_by_hand);
                    }
                    if let Some(recorder) = &opts.record {
                        let after = shape.fields.iter().cloned().zip(fields.iter().map(Value::to_json)).collect();
                        let planned = Planned {
                            key: keys::plain_key_json(&shape.key_columns, &key),
                            key_hash,
                            op,
                            change: if change == Change::Added { "added" } else { "changed" }.into(),
                            fingerprint: Some(fingerprint),
                            after: Some(serde_json::Value::Object(after)),
                        };
                        recorder.push(name, &planned).map_err(RunError::Invalid)?;
                    }
                    let warehouse = match &in_warehouse {
                        Some((width, _)) => Some(warehouse::row(&chunk, r, *width)?),
                        None => None,
                    };
                    spool.push(&SpoolRow { op, key_hash, fingerprint, key, fields, warehouse }).map_err(RunError::Spool)?;
                }
            }
        }
        // New keys are checked for duplicates once the scan ended; their rows are in the spool,
        // which names them.
        let repeated = differ.as_mut().map(Differ::end_scan).unwrap_or_default();
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
        let diffed = match (differ, in_warehouse) {
            (Some(differ), _) => Diffed::Local(differ),
            (None, Some((_, aside))) => {
                let aside = aside.await.map_err(|e| RunError::Invalid(format!("the warehouse diff's reader stopped: {e} (a bug)")))??;
                report.rows_read = aside.total.unwrap_or(report.rows_read);
                report.warehouse_rows = Some(aside.returned + aside.removed.len() as u64);
                Diffed::Warehouse { aside, added: warehouse_counts.0, changed: warehouse_counts.1 }
            }
            (None, None) => return Err(RunError::Invalid("a scan without a diff (a bug)".into())),
        };
        Ok(Scanned { shape, target, writer, diffed, spool, settled, check })
    }
}

/// How the scan's rows were classified: by sluice against the stored state, or by the source
/// database against the sync's table there (`diff = "warehouse"`).
pub(super) enum Diffed {
    /// `Differ::finish` gives the removals.
    Local(Differ),
    /// What came back besides the rows, and how many rows were added and changed.
    Warehouse { aside: warehouse::Aside, added: u64, changed: u64 },
}

/// The sync's part of the saved plan a run must match (`sluice apply`), if any.
pub(super) fn expected<'o>(opts: &'o RunOptions, name: &str) -> Result<Option<&'o saved::SyncExpected>, RunError> {
    match &opts.expect {
        None => Ok(None),
        Some(expect) => match expect.syncs.get(name) {
            Some(plan) => Ok(Some(plan)),
            None => Err(RunError::Invalid(format!(
                "`{name}` is not in the saved plan: nothing of it is sent (plan it with `sluice plan {name} --out FILE` and apply that)"
            ))),
        },
    }
}

/// A model column the warehouse diff's own columns would clash with.
fn warehouse_name(column: &str) -> bool {
    crate::source::warehouse::EXTRA.contains(&column)
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
