//! A run whose diff runs in the source database (`diff = "warehouse"`; the SQL and the table
//! are `source::warehouse`'s). The scan gets only the rows that changed, each with its class
//! and the database's key and fingerprint after the model's columns; this module asks for
//! them (`spec`), takes the removed rows and the model's row count aside before the rows are
//! hashed (`split`), reads each row's class (`classify`), and turns a committed batch into
//! what the sync's table records (`applied`).
//!
//! Memory is O(changed rows): nothing of the unchanged rows reaches sluice, and the stored
//! state is never loaded. The state store still records every batch as usual (the destination's
//! record ids, the change log, errors); the table in the source is written after it, so a kill
//! between the two re-sends that batch, never loses it.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::shape::Shape;
use super::RunError;
use crate::destinations::Op;
use crate::diff::{Change, Counts, Duplicate};
use crate::project::{OnRemove, SyncSpec};
use crate::source::warehouse::{self, Applied, DiffSpec, CHANGE, CLEARED, FP, HASH, KEY, N, WAS};
use crate::source::{Chunk, Column, SourceError};
use crate::value::{Hash128, Value, ValueType};

/// What the rows that came back say besides the model's rows.
#[derive(Debug, Default)]
pub(super) struct Aside {
    /// Rows the table holds that left the model: their key hash, and whether their record was
    /// cleared already.
    pub removed: Vec<(Hash128, bool)>,
    /// The model's row count (the query's last row).
    pub total: Option<u64>,
    /// Model rows that came back (added, changed or duplicate).
    pub returned: u64,
}

/// The database's key and fingerprint of a row to send, for the table once it is written.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct WarehouseRow {
    pub key: String,
    pub fingerprint: String,
}

/// What the run asks the source for.
pub(super) fn spec(sync: &SyncSpec, shape: &Shape, described: &[Column], salt: &str, everything: bool, table_exists: bool) -> DiffSpec {
    // Plain scalar types sort in every database; JSON, arrays and the source's odd types may not.
    let sortable_keys = shape.key_idx.iter().all(|&i| {
        matches!(
            described[i].value_type,
            ValueType::Bool
                | ValueType::Int
                | ValueType::Float
                | ValueType::Decimal { .. }
                | ValueType::Text
                | ValueType::Bytes
                | ValueType::Date
                | ValueType::Time
                | ValueType::Timestamp
                | ValueType::Uuid
        )
    });
    let columns: Vec<String> = described.iter().map(|c| c.name.clone()).collect();
    // Templates may read any column: then every column counts, as it may change what is sent.
    let fp_columns = match shape.computed() {
        true => columns.to_vec(),
        false => shape.field_idx.iter().filter(|&&i| i != usize::MAX).map(|&i| columns[i].clone()).collect(),
    };
    DiffSpec {
        table: warehouse::table_name(sync.name()),
        key_columns: shape.key_columns.clone(),
        fp_columns,
        salt: salt.to_string(),
        everything,
        removals: sync.file.on_remove != OnRemove::Ignore,
        changes: sync.file.mode != crate::project::Mode::Insert,
        table_exists,
        sortable_keys,
    }
}

fn text(row: &[Value], width: usize, extra: usize) -> Option<&str> {
    match row.get(width + extra) {
        Some(Value::Text(s)) => Some(s),
        _ => None,
    }
}

fn hash_of(hex: &str) -> Result<Hash128, RunError> {
    Hash128::from_str_radix(hex, 16).map_err(|_| {
        RunError::Invalid(format!("sluice's table in the source holds `{hex}` as a key hash, which is not one (was it edited?)"))
    })
}

/// The model's chunks as the source sends them.
type Chunks = mpsc::Receiver<Result<Chunk, SourceError>>;

/// Takes the removed rows and the count out of the source's chunks; the model rows go on (with
/// their extra columns: `classify` and `row` read them). `width`: the model's column count.
pub(super) fn split(mut rows: Chunks, width: usize) -> (Chunks, JoinHandle<Result<Aside, RunError>>) {
    let (tx, rx) = mpsc::channel(crate::source::CHUNKS_IN_FLIGHT);
    let task = tokio::spawn(async move {
        let mut aside = Aside::default();
        while let Some(chunk) = rows.recv().await {
            let chunk = match chunk {
                Ok(Chunk::Rows(chunk)) => chunk,
                Ok(_) => return Err(RunError::Invalid("a warehouse diff came back in a form it never takes (a bug)".into())),
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return Ok(aside);
                }
            };
            let mut kept = Vec::with_capacity(chunk.len());
            for row in chunk {
                match text(&row, width, CHANGE) {
                    Some("removed") => {
                        let hash = hash_of(text(&row, width, HASH).unwrap_or_default())?;
                        aside.removed.push((hash, text(&row, width, WAS) == Some(CLEARED)));
                    }
                    Some("total") => {
                        aside.total = match row.get(width + N) {
                            Some(Value::Int(n)) => u64::try_from(*n).ok(),
                            _ => None,
                        }
                    }
                    _ => kept.push(row),
                }
            }
            aside.returned += kept.len() as u64;
            if !kept.is_empty() && tx.send(Ok(Chunk::Rows(kept))).await.is_err() {
                break;
            }
        }
        Ok(aside)
    });
    (rx, task)
}

/// The class of each of `rows` of a chunk that came back: a key the model returned more than
/// once is a duplicate (every row of it).
pub(super) fn classify(chunk: &Chunk, rows: &[usize], width: usize, out: &mut Vec<Result<Change, Duplicate>>) -> Result<(), RunError> {
    for &r in rows {
        let n = chunk.value(r, width + N)?;
        let change = chunk.value(r, width + CHANGE)?;
        out.push(match (n, change) {
            (Value::Int(n), _) if n > 1 => Err(Duplicate),
            (_, Value::Text(c)) if c == "added" => Ok(Change::Added),
            (_, Value::Text(c)) if c == "changed" => Ok(Change::Changed),
            (n, c) => return Err(RunError::Invalid(format!("a warehouse diff row says {n:?} {c:?} (a bug)"))),
        });
    }
    Ok(())
}

/// The database's key and fingerprint of a row that came back.
pub(super) fn row(chunk: &Chunk, r: usize, width: usize) -> Result<WarehouseRow, RunError> {
    match (chunk.value(r, width + KEY)?, chunk.value(r, width + FP)?) {
        (Value::Text(key), Value::Text(fingerprint)) => Ok(WarehouseRow { key, fingerprint }),
        (k, f) => Err(RunError::Invalid(format!("a warehouse diff row has key {k:?} and fingerprint {f:?} (a bug)"))),
    }
}

/// The counts of a run: what came back, and the rest of the model unchanged.
pub(super) fn counts(aside: &Aside, added: u64, changed: u64, removed: u64) -> Counts {
    let total = aside.total.unwrap_or(aside.returned);
    Counts { added, changed, unchanged: total.saturating_sub(aside.returned), removed }
}

/// What the sync's table records of one written row.
pub(super) fn applied<'a>(op: Op, key_hash: Hash128, row: Option<&'a WarehouseRow>) -> Option<Applied<'a>> {
    let key_hash = format!("{key_hash:032x}");
    match (op, row) {
        (Op::Delete, _) => Some(Applied::Deleted { key_hash }),
        (Op::Clear, _) => Some(Applied::Cleared { key_hash }),
        (_, Some(r)) => Some(Applied::Holds { key: &r.key, key_hash, fingerprint: &r.fingerprint }),
        (_, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extra(change: &str, n: i64, hash: Option<&str>, was: Option<&str>) -> Vec<Value> {
        let t = |s: Option<&str>| s.map(|s| Value::Text(s.into())).unwrap_or(Value::Null);
        vec![Value::Text("[1]".into()), Value::Text("fp".into()), Value::Int(n), t(hash), t(was), Value::Text(change.into())]
    }

    #[tokio::test]
    async fn removed_rows_and_the_count_are_taken_aside() {
        let model = |id: i64| vec![Value::Int(id)];
        let rows = vec![
            [model(1), extra("added", 1, None, None)].concat(),
            [vec![Value::Null], extra("removed", 1, Some("00000000000000000000000000000007"), Some("abc"))].concat(),
            [vec![Value::Null], extra("removed", 1, Some("0000000000000000000000000000000a"), Some(CLEARED))].concat(),
            [model(2), extra("changed", 2, None, None)].concat(),
            [vec![Value::Null], extra("total", 9, None, None)].concat(),
        ];
        let (tx, rx) = mpsc::channel(2);
        tx.send(Ok(Chunk::Rows(rows))).await.unwrap();
        drop(tx);
        let (mut kept, task) = split(rx, 1);
        let Some(Ok(chunk)) = kept.recv().await else { panic!("the model rows") };
        assert_eq!(chunk.len(), 2);
        let aside = task.await.unwrap().unwrap();
        assert_eq!(aside.removed, vec![(7, false), (10, true)]);
        assert_eq!((aside.total, aside.returned), (Some(9), 2));
        let mut classes = Vec::new();
        classify(&chunk, &[0, 1], 1, &mut classes).unwrap();
        assert_eq!(classes, vec![Ok(Change::Added), Err(Duplicate)]);
        assert_eq!(counts(&aside, 1, 0, 2).unchanged, 7);
    }
}
