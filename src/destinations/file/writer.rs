//! One run of a file sync: insert mode appends, the other modes rewrite the file, each batch
//! durable before its rows count as written.

use std::fs::OpenOptions;

use async_trait::async_trait;
use serde_json::Value as J;

use super::client::{io_err, replace, sync_dir};
use super::encoding::{self, cell, key_of};
use super::Layout;
use crate::destinations::{DestinationError, Op, RowOp, RowOutcome, Target, Writer};
use crate::project::Mode;

pub(super) struct FileWriter {
    pub layout: Layout,
    pub mode: Mode,
    pub target: Target,
}

impl FileWriter {
    fn row_cells(&self, op: &RowOp) -> Vec<J> {
        let l = &self.layout;
        let mut row = vec![J::Null; l.header.len()];
        for (k, v) in op.key.iter().enumerate() {
            row[l.key_idx[k]] = cell(l.format, v);
        }
        for (i, v) in op.fields.iter().enumerate() {
            row[l.field_base + i] = cell(l.format, v);
        }
        row
    }

    /// The row's new cells over its current ones: a cell the row does not write (a skipped
    /// NULL, an `if_empty` field that holds a value) keeps what the file has.
    fn merged_cells(&self, op: &RowOp, current: Option<&Vec<J>>) -> Vec<J> {
        let mut row = self.row_cells(op);
        if let Some(current) = current {
            for j in 0..op.fields.len() {
                let c = self.layout.field_base + j;
                let empty = current.get(c).is_none_or(|v| v.is_null() || v.as_str() == Some(""));
                if self.target.keeps_current(op, j, empty) {
                    row[c] = current.get(c).cloned().unwrap_or(J::Null);
                }
            }
        }
        row
    }

    fn key_text(&self, op: &RowOp) -> String {
        key_of(op.key.iter().map(|v| cell(self.layout.format, v)))
    }

    /// Insert mode: append, never rewrite (the file may be a log someone else reads).
    fn append(&self, batch: &[RowOp]) -> Result<(), String> {
        let l = &self.layout;
        let fresh = std::fs::metadata(&l.path).map(|m| m.len() == 0).unwrap_or(true);
        let rows: Vec<Vec<J>> = batch.iter().map(|op| self.row_cells(op)).collect();
        let created = !l.path.exists();
        let mut file = OpenOptions::new().create(true).append(true).open(&l.path).map_err(|e| io_err(&l.path, e))?;
        let before = file.metadata().map_err(|e| io_err(&l.path, e))?.len();
        let written = encoding::write_rows(&mut file, l.format, &l.header, rows.iter(), fresh, l.escaped).and_then(|_| file.sync_all());
        if let Err(e) = written {
            // A half-written batch (a full disk) is cut off, so the retry does not leave a torn
            // line or a second copy of the rows that did fit.
            return Err(match file.set_len(before) {
                Ok(()) => io_err(&l.path, e),
                Err(cut) => {
                    format!("{}: {e}; cutting the half-written batch off failed too ({cut}): check the file's end", l.path.display())
                }
            });
        }
        // A file just created exists after a crash only once its directory entry is on disk.
        if created {
            sync_dir(&l.path)?;
        }
        Ok(())
    }

    fn rewrite(&self, batch: &[RowOp]) -> Result<Vec<RowOutcome>, String> {
        let l = &self.layout;
        let mut table = encoding::read(&l.path, l.format, &l.header, &l.key_idx, l.escaped)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for op in batch {
            let key = self.key_text(op);
            let outcome = match op.op {
                Op::Upsert | Op::Insert => {
                    let cells = self.merged_cells(op, table.rows.get(&key));
                    table.rows.insert(key, cells);
                    RowOutcome::written()
                }
                Op::Update => match table.rows.get_mut(&key) {
                    Some(row) => {
                        *row = self.merged_cells(op, Some(row));
                        RowOutcome::written()
                    }
                    None => RowOutcome::Rejected(format!(
                        "no row with this key in {}: update mode changes only existing rows",
                        l.path.display()
                    )),
                },
                Op::Delete => {
                    table.rows.shift_remove(&key);
                    RowOutcome::written()
                }
                // The key stays, the mapped cells are emptied; a row no longer there needs nothing.
                Op::Clear => {
                    if let Some(row) = table.rows.get_mut(&key) {
                        *row = self.merged_cells(op, Some(row));
                    }
                    RowOutcome::written()
                }
            };
            outcomes.push(outcome);
        }
        replace(&l.path, |out| encoding::write_rows(out, l.format, &l.header, table.rows.values(), true, l.escaped))?;
        Ok(outcomes)
    }
}

#[async_trait]
impl Writer for FileWriter {
    async fn write(&mut self, batch: &[RowOp]) -> Result<Vec<RowOutcome>, DestinationError> {
        if let Some(dir) = self.layout.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| DestinationError::fatal(io_err(dir, e)))?;
        }
        // Local file I/O is quick and this writer is used by one run at a time; blocking here
        // keeps the code simple. A failure is fatal: retrying a full disk does not help.
        if self.mode == Mode::Insert {
            self.append(batch).map_err(DestinationError::fatal)?;
            Ok(vec![RowOutcome::written(); batch.len()])
        } else {
            self.rewrite(batch).map_err(DestinationError::fatal)
        }
    }
}
