//! One run against one table: each batch is one transaction (its upserts, inserts, updates,
//! deletes and clears), committed whole or not at all, so a kill at any moment leaves every
//! batch either done or undone, and a re-sent batch writes the same rows again.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;

use super::client::{self, Db, Params};
use super::dialect::{Dialect, Failure};
use super::encoding::{encode, Cell};
use super::sql::{OnConflict, Table};
use crate::destinations::{DestinationError, Op, RowOp, RowOutcome, Writer};
use crate::value::Value;

pub(super) struct TableWriter {
    pub db: Arc<Db>,
    pub table: Arc<Table>,
    pub warnings: Vec<String>,
}

/// A batch's rows, encoded and sorted by the statement that carries them.
#[derive(Default)]
struct Groups {
    /// Upserts, updates and inserts: (row index in the batch, op, cells of every column).
    writes: Vec<(usize, Op, Vec<Cell>)>,
    /// Deletes and clears: key cells.
    deletes: Vec<Vec<Cell>>,
    clears: Vec<Vec<Cell>>,
}

impl TableWriter {
    /// The cells of `op` for every column (or only the key columns), or why a value does not
    /// fit its column.
    fn cells(&self, op: &RowOp, keys_only: bool) -> Result<Vec<Cell>, String> {
        let t = &self.table;
        let mut values: Vec<Option<&Value>> = vec![None; t.columns.len()];
        for (k, &c) in t.keys.iter().enumerate() {
            values[c] = op.key.get(k);
        }
        if !keys_only {
            for (j, v) in op.fields.iter().enumerate() {
                values[t.field_base + j] = Some(v);
            }
        }
        let columns: Vec<usize> = if keys_only { t.keys.clone() } else { (0..t.columns.len()).collect() };
        columns
            .into_iter()
            .map(|c| {
                let col = &t.columns[c];
                encode(t.dialect, values[c].unwrap_or(&Value::Null), &col.kind, &col.declared)
                    .map_err(|e| format!("column `{}`: {e}", col.name))
            })
            .collect()
    }

    fn group(&self, batch: &[RowOp], out: &mut [Option<RowOutcome>]) -> Groups {
        let mut groups = Groups::default();
        for (i, op) in batch.iter().enumerate() {
            let keys_only = matches!(op.op, Op::Delete | Op::Clear);
            match (self.cells(op, keys_only), op.op) {
                (Err(reason), _) => out[i] = Some(RowOutcome::Rejected(reason)),
                (Ok(cells), Op::Delete) => groups.deletes.push(cells),
                (Ok(cells), Op::Clear) => groups.clears.push(cells),
                (Ok(cells), op) => groups.writes.push((i, op, cells)),
            }
        }
        groups
    }
}

/// Rows as the Postgres batch document: a JSON array of rows, each an array of cells.
fn document<'a>(rows: impl Iterator<Item = &'a [Cell]>) -> String {
    serde_json::Value::Array(rows.map(|r| serde_json::Value::Array(r.iter().map(Cell::to_json).collect())).collect()).to_string()
}

/// Runs `sql_for(n)` over `rows` in as few statements as the dialect allows: Postgres takes
/// them all in one document; MySQL in statements of at most 65,535 placeholders.
async fn each_statement<F: Fn(usize) -> String>(
    conn: &mut sqlx::AnyConnection,
    dialect: Dialect,
    rows: &[&[Cell]],
    per_row: usize,
    sql_for: F,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    match dialect {
        Dialect::Postgres => {
            client::execute(conn, &sql_for(rows.len()), Params::Json(document(rows.iter().copied()))).await?;
        }
        Dialect::Mysql => {
            for chunk in rows.chunks(Table::mysql_rows_per_statement(per_row)) {
                let cells: Vec<Cell> = chunk.iter().flat_map(|r| r.iter().cloned()).collect();
                client::execute(conn, &sql_for(chunk.len()), Params::Cells(&cells)).await?;
            }
        }
    }
    Ok(())
}

/// Which of `writes` the table holds a row for (their positions in `writes`), locked until
/// the transaction ends.
async fn existing(conn: &mut sqlx::AnyConnection, table: &Table, writes: &[(usize, Op, Vec<Cell>)]) -> Result<HashSet<usize>, sqlx::Error> {
    let keys: Vec<Vec<Cell>> = writes.iter().map(|(_, _, cells)| table.keys.iter().map(|&k| cells[k].clone()).collect()).collect();
    let mut found = Vec::new();
    match table.dialect {
        Dialect::Postgres => {
            let doc = document(keys.iter().map(Vec::as_slice));
            found.extend(client::indexes(conn, &table.existing(keys.len()), Params::Json(doc)).await?);
        }
        Dialect::Mysql => {
            // Each row binds its index, then its key.
            let per_statement = Table::mysql_rows_per_statement(table.keys.len() + 1);
            for (n, chunk) in keys.chunks(per_statement).enumerate() {
                let cells: Vec<Cell> = chunk
                    .iter()
                    .enumerate()
                    .flat_map(|(i, k)| std::iter::once(Cell::Int((n * per_statement + i) as i64)).chain(k.iter().cloned()))
                    .collect();
                found.extend(client::indexes(conn, &table.existing(chunk.len()), Params::Cells(&cells)).await?);
            }
        }
    }
    Ok(found.into_iter().filter_map(|i| usize::try_from(i).ok()).filter(|&i| i < writes.len()).collect())
}

/// Runs a batch's statements in one transaction: the keys the table holds are read (and
/// locked) first; those rows are updated, new ones inserted. Returns the batch indexes of the
/// updates whose key the table did not hold.
async fn apply(db: &Db, table: &Table, groups: &Groups) -> Result<Vec<usize>, sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    let conn: &mut sqlx::AnyConnection = &mut tx;
    if table.dialect == Dialect::Postgres {
        // The server gives up too, rather than holding locks for a batch nobody waits for.
        let ms = db.timeout.as_millis().to_string();
        sqlx::query("SELECT set_config('statement_timeout', $1, true)").bind(ms.as_str()).execute(&mut *conn).await?;
    }
    let (all, keys) = (table.columns.len(), table.keys.len());
    // Every row that writes columns, in one existence check.
    let held = if groups.writes.is_empty() { HashSet::new() } else { existing(conn, table, &groups.writes).await? };
    let (mut to_update, mut to_insert, mut to_add) = (Vec::new(), Vec::new(), Vec::new());
    let mut absent = Vec::new();
    for (p, (i, op, cells)) in groups.writes.iter().enumerate() {
        match (op, held.contains(&p)) {
            (Op::Upsert | Op::Update, true) => to_update.push(cells.as_slice()),
            (Op::Upsert, false) => to_insert.push(cells.as_slice()),
            (Op::Update, false) => absent.push(*i),
            // Insert mode: a stored row stays as it is.
            (_, true) => {}
            (_, false) => to_add.push(cells.as_slice()),
        }
    }
    if table.update(1).is_some() {
        each_statement(conn, table.dialect, &to_update, all, |n| table.update(n).unwrap_or_default()).await?;
    }
    each_statement(conn, table.dialect, &to_insert, all, |n| table.insert(OnConflict::Update, n)).await?;
    each_statement(conn, table.dialect, &to_add, all, |n| table.insert(OnConflict::Keep, n)).await?;
    let deletes: Vec<&[Cell]> = groups.deletes.iter().map(Vec::as_slice).collect();
    each_statement(conn, table.dialect, &deletes, keys, |n| table.delete(n)).await?;
    if table.clear(1).is_some() {
        let clears: Vec<&[Cell]> = groups.clears.iter().map(Vec::as_slice).collect();
        each_statement(conn, table.dialect, &clears, keys, |n| table.clear(n).unwrap_or_default()).await?;
    }
    tx.commit().await?;
    Ok(absent)
}

#[async_trait]
impl Writer for TableWriter {
    async fn write(&mut self, batch: &[RowOp]) -> Result<Vec<RowOutcome>, DestinationError> {
        let mut out: Vec<Option<RowOutcome>> = vec![None; batch.len()];
        let groups = self.group(batch, &mut out);
        let applied = tokio::time::timeout(self.db.timeout, apply(&self.db, &self.table, &groups)).await;
        let absent = match applied {
            Ok(Ok(absent)) => absent,
            // Dropped mid-transaction: the server rolls it back when the connection closes.
            Err(_) => {
                return Err(DestinationError::transient(format!(
                    "a batch's transaction on {} took longer than {} s (`timeout`); it was rolled back",
                    self.table.shown,
                    self.db.timeout.as_secs()
                )))
            }
            Ok(Err(e)) => {
                return match self.db.failure(&e) {
                    // The transaction was rolled back: the rows go again in smaller groups
                    // until the one at fault stands alone.
                    (Failure::Row, message) => {
                        Ok(out.into_iter().map(|o| o.unwrap_or_else(|| RowOutcome::RefusedInGroup(message.clone()))).collect())
                    }
                    // Retried, or the run's end; with what to do (a privilege revoked mid-run).
                    _ => Err(self.db.error(e, &format!("writing to {}", self.table.shown))),
                };
            }
        };
        for i in absent {
            out[i] =
                Some(RowOutcome::Rejected(format!("no row with this key in {}: update mode changes only existing rows", self.table.shown)));
        }
        Ok(out.into_iter().map(|o| o.unwrap_or_else(RowOutcome::written)).collect())
    }

    fn fork(&self) -> Option<Box<dyn Writer>> {
        Some(Box::new(TableWriter { db: self.db.clone(), table: self.table.clone(), warnings: Vec::new() }))
    }

    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}
