//! One run against one table: each batch is one transaction (its upserts, inserts, updates,
//! deletes and clears), committed whole or not at all, so a kill at any moment leaves every
//! batch either done or undone, and a re-sent batch writes the same rows again.

use std::sync::Arc;

use async_trait::async_trait;

use super::client::{self, Db, Params};
use super::dialect::{Dialect, Failure};
use super::encoding::{encode, Cell};
use super::sql::{OnConflict, Table};
use crate::destinations::{DestinationError, Op, RowOp, RowOutcome, Writer};

pub(super) struct TableWriter {
    pub db: Arc<Db>,
    pub table: Arc<Table>,
    pub warnings: Vec<String>,
}

/// A batch's rows, encoded and sorted by the statement that carries them.
#[derive(Default)]
struct Groups {
    /// (row index in the batch, cells of every column)
    upserts: Vec<(usize, Vec<Cell>)>,
    inserts: Vec<(usize, Vec<Cell>)>,
    updates: Vec<(usize, Vec<Cell>)>,
    /// (row index, key cells)
    deletes: Vec<(usize, Vec<Cell>)>,
    clears: Vec<(usize, Vec<Cell>)>,
}

impl TableWriter {
    /// The cells of `op` for every column (or only the key columns), or why a value does not
    /// fit its column.
    fn cells(&self, op: &RowOp, keys_only: bool) -> Result<Vec<Cell>, String> {
        let t = &self.table;
        let mut values: Vec<Option<&crate::value::Value>> = vec![None; t.columns.len()];
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
                let value = values[c].cloned().unwrap_or(crate::value::Value::Null);
                encode(t.dialect, &value, &col.kind, &col.declared).map_err(|e| format!("column `{}`: {e}", col.name))
            })
            .collect()
    }

    fn group(&self, batch: &[RowOp], out: &mut [Option<RowOutcome>]) -> Groups {
        let mut groups = Groups::default();
        for (i, op) in batch.iter().enumerate() {
            let keys_only = matches!(op.op, Op::Delete | Op::Clear);
            let cells = match self.cells(op, keys_only) {
                Ok(cells) => cells,
                Err(reason) => {
                    out[i] = Some(RowOutcome::Rejected(reason));
                    continue;
                }
            };
            let list = match op.op {
                Op::Upsert => &mut groups.upserts,
                Op::Insert => &mut groups.inserts,
                Op::Update => &mut groups.updates,
                Op::Delete => &mut groups.deletes,
                Op::Clear => &mut groups.clears,
            };
            list.push((i, cells));
        }
        groups
    }
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
            let doc =
                serde_json::Value::Array(rows.iter().map(|r| serde_json::Value::Array(r.iter().map(Cell::to_json).collect())).collect());
            client::execute(conn, &sql_for(rows.len()), Params::Json(doc.to_string())).await?;
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

/// The rows of `updates` whose key the table holds (their positions in `updates`), locked.
async fn existing(conn: &mut sqlx::AnyConnection, table: &Table, updates: &[(usize, Vec<Cell>)]) -> Result<Vec<usize>, sqlx::Error> {
    let keys: Vec<Vec<Cell>> = updates.iter().map(|(_, cells)| table.keys.iter().map(|&k| cells[k].clone()).collect()).collect();
    let mut found = Vec::new();
    match table.dialect {
        Dialect::Postgres => {
            let doc =
                serde_json::Value::Array(keys.iter().map(|r| serde_json::Value::Array(r.iter().map(Cell::to_json).collect())).collect());
            found.extend(client::indexes(conn, &table.existing(keys.len()), Params::Json(doc.to_string())).await?);
        }
        Dialect::Mysql => {
            let per_row = table.keys.len() + 1;
            for (n, chunk) in keys.chunks(Table::mysql_rows_per_statement(per_row)).enumerate() {
                let base = n * Table::mysql_rows_per_statement(per_row);
                let cells: Vec<Cell> = chunk
                    .iter()
                    .enumerate()
                    .flat_map(|(i, k)| std::iter::once(Cell::Int((base + i) as i64)).chain(k.iter().cloned()))
                    .collect();
                found.extend(client::indexes(conn, &table.existing(chunk.len()), Params::Cells(&cells)).await?);
            }
        }
    }
    Ok(found.into_iter().filter_map(|i| usize::try_from(i).ok()).filter(|&i| i < updates.len()).collect())
}

/// Runs a batch's statements in one transaction: the keys the table holds are read (and
/// locked) first; those rows are updated, new ones inserted. Returns the positions in
/// `updates` of the rows whose key the table did not hold.
async fn apply(db: &Db, table: &Table, groups: &Groups) -> Result<Vec<usize>, sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    let conn: &mut sqlx::AnyConnection = &mut tx;
    if table.dialect == Dialect::Postgres {
        // The server gives up too, rather than holding locks for a batch nobody waits for.
        let ms = db.timeout.as_millis().to_string();
        sqlx::query("SELECT set_config('statement_timeout', $1, true)").bind(ms.as_str()).execute(&mut *conn).await?;
    }
    let all = table.columns.len();
    let keys = table.keys.len();
    // Every row that writes columns, in one existence check.
    let writes: Vec<(usize, Vec<Cell>)> = groups.upserts.iter().chain(&groups.updates).chain(&groups.inserts).cloned().collect();
    let held: std::collections::HashSet<usize> =
        if writes.is_empty() { Default::default() } else { existing(conn, table, &writes).await?.into_iter().collect() };
    let (n_up, n_upd) = (groups.upserts.len(), groups.updates.len());
    let mut to_update: Vec<&[Cell]> = Vec::new();
    let mut to_insert: Vec<&[Cell]> = Vec::new();
    let mut to_add: Vec<&[Cell]> = Vec::new();
    let mut absent = Vec::new();
    for (p, (_, cells)) in writes.iter().enumerate() {
        let is_held = held.contains(&p);
        match (p < n_up, p < n_up + n_upd, is_held) {
            // Upserts and updates of stored rows.
            (true, _, true) | (false, true, true) => to_update.push(cells),
            (true, _, false) => to_insert.push(cells),
            (false, true, false) => absent.push(p - n_up),
            // Insert mode: a stored row stays as it is.
            (false, false, true) => {}
            (false, false, false) => to_add.push(cells),
        }
    }
    if table.update(1).is_some() {
        each_statement(conn, table.dialect, &to_update, all, |n| table.update(n).unwrap_or_default()).await?;
    }
    each_statement(conn, table.dialect, &to_insert, all, |n| table.insert(OnConflict::Update, n)).await?;
    each_statement(conn, table.dialect, &to_add, all, |n| table.insert(OnConflict::Keep, n)).await?;
    let cells = |rows: &[(usize, Vec<Cell>)]| -> Vec<Vec<Cell>> { rows.iter().map(|(_, c)| c.clone()).collect() };
    let deletes = cells(&groups.deletes);
    let rows: Vec<&[Cell]> = deletes.iter().map(Vec::as_slice).collect();
    each_statement(conn, table.dialect, &rows, keys, |n| table.delete(n)).await?;
    if table.clear(1).is_some() {
        let clears = cells(&groups.clears);
        let rows: Vec<&[Cell]> = clears.iter().map(Vec::as_slice).collect();
        each_statement(conn, table.dialect, &rows, keys, |n| table.clear(n).unwrap_or_default()).await?;
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
                let (failure, message) = self.db.failure(&e);
                return match failure {
                    // The transaction was rolled back: the rows go again in smaller groups
                    // until the one at fault stands alone.
                    Failure::Row => Ok(out.into_iter().map(|o| o.unwrap_or_else(|| RowOutcome::RefusedInGroup(message.clone()))).collect()),
                    Failure::Transient => Err(DestinationError::transient(message)),
                    Failure::Fatal => Err(DestinationError::fatal(format!("writing to {}: {message}", self.table.shown))),
                };
            }
        };
        for p in absent {
            out[groups.updates[p].0] =
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
