//! One run of one sync against its tab: read the tab (header row, key column) when opened,
//! then per batch update rows in place, delete removed rows and append new ones.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value as J};

use super::client::{GridProperties, SheetsClient, ValueRange};
use super::config::ValueInput;
use super::encoding::{cell, column_range, column_runs, row_range, sheet_prefix, value_key, MAX_CELL_CHARS};
use super::layout::{filled_by_key, KeyIndex, Layout};
use super::{MAX_CELLS, NEW_TAB_COLUMNS, NEW_TAB_ROWS};
use crate::destinations::http::CallError;
use crate::destinations::{partial, DestinationError, Op, RowOp, RowOutcome, Target, Writer};
use crate::project::Mode;
use crate::value::Value;

/// Duplicate keys named per run; more are counted.
const DUPLICATES_SHOWN: usize = 10;

/// What a run knows of its tab: read when the run starts, kept current as it writes.
pub struct Tab {
    pub title: String,
    /// `None` until the tab exists.
    sheet_id: Option<i64>,
    grid: GridProperties,
    /// Cells of the whole spreadsheet, every tab's grid counted.
    cells: u64,
    layout: Layout,
    index: KeyIndex,
    /// For syncs with `write = "if_empty"` fields: by key text, which fields' cells hold a value.
    filled: HashMap<String, Vec<bool>>,
}

impl Tab {
    /// Reads the tab: spreadsheet metadata, row 1, and (except in insert mode) the key columns.
    pub async fn read(client: &SheetsClient, title: &str, target: &Target) -> Result<Tab, CallError> {
        let meta = client.metadata().await?;
        let cells = meta.sheets.iter().map(|s| s.properties.grid_properties.row_count * s.properties.grid_properties.column_count).sum();
        // Sheets titles clash whatever their case ("A sheet with the name ... already exists"):
        // a tab of the same name in another case is this sync's tab, under its own title.
        let found = match meta.sheets.iter().position(|s| s.properties.title == title) {
            Some(at) => Some(at),
            None => meta.sheets.iter().position(|s| s.properties.title.to_lowercase() == title.to_lowercase()),
        };
        let Some(sheet) = found.and_then(|at| meta.sheets.into_iter().nth(at)) else {
            let layout = Layout::align(&[], &target.fields);
            return Ok(Tab {
                title: title.into(),
                sheet_id: None,
                grid: GridProperties::default(),
                cells,
                layout,
                index: KeyIndex::default(),
                filled: HashMap::new(),
            });
        };
        let title = sheet.properties.title.as_str();
        let header = client.batch_get(&[format!("{}1:1", sheet_prefix(title))], "ROWS").await?;
        let row1 = header.into_iter().next().and_then(|r| r.values.into_iter().next()).unwrap_or_default();
        let layout = Layout::align(&row1, &target.fields);
        let key_columns: Vec<usize> = target.key_fields.iter().flatten().map(|&f| layout.field_columns[f]).collect();
        let key_headers_present = key_columns.iter().all(|c| !layout.missing.iter().any(|(m, _)| m == c));
        // With `if_empty` fields, their columns are read with the keys: which cells hold a value.
        let if_empty: Vec<usize> = (0..target.fields.len()).filter(|&f| target.if_empty.get(f).copied().unwrap_or(false)).collect();
        let (index, filled) = if target.mode == Mode::Insert || key_columns.is_empty() || !key_headers_present {
            (KeyIndex::default(), HashMap::new())
        } else {
            let mut ranges: Vec<String> = key_columns.iter().map(|&c| column_range(title, c)).collect();
            ranges.extend(if_empty.iter().map(|&f| column_range(title, layout.field_columns[f])));
            let mut columns: Vec<Vec<J>> =
                client.batch_get(&ranges, "COLUMNS").await?.into_iter().map(|r| r.values.into_iter().next().unwrap_or_default()).collect();
            columns.resize(ranges.len(), Vec::new());
            let values = columns.split_off(key_columns.len());
            let filled = filled_by_key(&columns, &values, &if_empty, target.fields.len());
            (KeyIndex::from_columns(&columns), filled)
        };
        let title = title.to_string();
        let p = sheet.properties;
        Ok(Tab { title, sheet_id: Some(p.sheet_id), grid: p.grid_properties, cells, layout, index, filled })
    }

    /// Whether the tab can be created and its headers added within Google's limits.
    pub fn check_fits(&self, target: &Target) -> Result<(), String> {
        let columns = (self.layout.last_column() as u64 + 1).max(target.fields.len() as u64);
        let extra = match self.sheet_id {
            None => NEW_TAB_ROWS * columns.max(NEW_TAB_COLUMNS),
            Some(_) => self.grid.row_count * columns.saturating_sub(self.grid.column_count),
        };
        self.fits(extra)
    }

    fn fits(&self, extra_cells: u64) -> Result<(), String> {
        if self.cells + extra_cells > MAX_CELLS {
            return Err(format!(
                "writing to tab '{}' would take the spreadsheet to {} cells, past Google's limit of {MAX_CELLS}: \
                 delete unused tabs, rows or columns, or use another spreadsheet (nothing was sent)",
                self.title,
                self.cells + extra_cells
            ));
        }
        Ok(())
    }

    fn duplicate_warnings(&self) -> Vec<String> {
        let mut dups: Vec<(&str, &[u32])> = self.index.duplicates().collect();
        dups.sort_by_key(|(_, rows)| rows[0]);
        let mut out: Vec<String> = dups
            .iter()
            .take(DUPLICATES_SHOWN)
            .map(|(key, rows)| {
                let rows: Vec<String> = rows.iter().map(u32::to_string).collect();
                format!(
                    "key {} is in rows {} of tab '{}': sluice updates row {} only (delete the other rows)",
                    key.replace('\u{1f}', ", "),
                    rows.join(", "),
                    self.title,
                    rows[0]
                )
            })
            .collect();
        if dups.len() > DUPLICATES_SHOWN {
            out.push(format!("... and {} more keys found in several rows of tab '{}'", dups.len() - DUPLICATES_SHOWN, self.title));
        }
        out
    }
}

pub struct SheetsWriter {
    client: Arc<SheetsClient>,
    target: Target,
    tab: Tab,
    max_request_bytes: usize,
    /// A request went unanswered: the sheet may hold some of it, so re-read the tab first.
    stale: bool,
    /// The batch whose in-place updates went through before a later request of it failed,
    /// with the rows those updates rejected: a retry of that batch does not send them again.
    updated: Option<(crate::value::Hash128, HashMap<usize, String>)>,
    /// Set when appends stopped part-way through a batch: the error, for `partial`.
    cut: Option<DestinationError>,
    warnings: Vec<String>,
    /// `[target] formulas`: text starting with `=` may become a formula (USER_ENTERED only).
    formulas: bool,
}

impl SheetsWriter {
    pub async fn open(
        client: Arc<SheetsClient>,
        title: String,
        target: Target,
        max_request_bytes: usize,
        formulas: bool,
    ) -> Result<Self, DestinationError> {
        let tab = Tab::read(&client, &title, &target).await.map_err(DestinationError::from)?;
        let warnings = tab.duplicate_warnings();
        Ok(SheetsWriter { client, target, tab, max_request_bytes, stale: false, updated: None, cut: None, warnings, formulas })
    }

    /// The tab exists and row 1 holds every field's header.
    async fn prepare(&mut self) -> Result<(), CallError> {
        let needed_columns = self.tab.layout.last_column() as u64 + 1;
        if self.tab.sheet_id.is_none() {
            let columns = needed_columns.max(NEW_TAB_COLUMNS);
            self.tab.fits(NEW_TAB_ROWS * columns).map_err(|m| CallError::Failed(DestinationError::fatal(m)))?;
            let reply = self
                .client
                .batch_update(vec![json!({ "addSheet": { "properties": {
                    "title": self.tab.title, "gridProperties": { "rowCount": NEW_TAB_ROWS, "columnCount": columns } } } })])
                .await?;
            let props = &reply["replies"][0]["addSheet"]["properties"];
            self.tab.sheet_id = Some(props["sheetId"].as_i64().unwrap_or_default());
            self.tab.grid = GridProperties { row_count: NEW_TAB_ROWS, column_count: columns };
            self.tab.cells += NEW_TAB_ROWS * columns;
        }
        if needed_columns > self.tab.grid.column_count {
            let extra = needed_columns - self.tab.grid.column_count;
            self.tab.fits(extra * self.tab.grid.row_count).map_err(|m| CallError::Failed(DestinationError::fatal(m)))?;
            self.client
                .batch_update(vec![json!({ "appendDimension": { "sheetId": self.tab.sheet_id, "dimension": "COLUMNS", "length": extra } })])
                .await?;
            self.tab.grid.column_count = needed_columns;
            self.tab.cells += extra * self.tab.grid.row_count;
        }
        if let (Some((first, _)), Some((last, _))) = (self.tab.layout.missing.first(), self.tab.layout.missing.last()) {
            let names: Vec<J> = self.tab.layout.missing.iter().map(|(_, name)| J::String(name.clone())).collect();
            self.client.values_update(&row_range(&self.tab.title, 1, *first, *last), vec![names]).await?;
            self.tab.layout.missing.clear();
        }
        Ok(())
    }

    /// A field's cell. With USER_ENTERED, Sheets parses text as if a person typed it; a leading
    /// `'` keeps it the text it is (and is not stored): in key columns always ("00042" must not
    /// become 42, or the row is never found again), elsewhere where it would start a formula
    /// (data never becomes a formula unless `[target] formulas = true`) or lose its own `'`.
    fn cell(&self, field: usize, value: &Value) -> J {
        let c = cell(value);
        if self.client.value_input != ValueInput::UserEntered {
            return c;
        }
        let is_key = self.target.key_fields.contains(&Some(field));
        match c {
            J::String(s) if is_key && !s.is_empty() => J::String(format!("'{s}")),
            J::String(s) if super::encoding::typed_as_formula(&s, self.formulas) => J::String(format!("'{s}")),
            c => c,
        }
    }

    /// Rows that cannot be sent as they are, with the reason.
    fn too_long(&self, op: &RowOp) -> Option<String> {
        self.target.fields.iter().zip(&op.fields).find_map(|(name, value)| {
            let text = match value {
                Value::Text(s) | Value::Json(s) => s.chars().count(),
                Value::Array(_) | Value::Bytes(_) => value.to_text().chars().count(),
                _ => 0,
            };
            (text > MAX_CELL_CHARS).then(|| {
                format!(
                    "field `{name}` holds {text} characters; a Google Sheets cell holds at most {MAX_CELL_CHARS} (shorten it in the model)"
                )
            })
        })
    }

    /// Splits items into requests of at most `max_request_bytes` of JSON.
    fn chunks<T: serde::Serialize>(&self, items: Vec<(usize, T)>) -> Vec<Vec<(usize, T)>> {
        let mut chunks: Vec<Vec<(usize, T)>> = vec![Vec::new()];
        let mut size = 0;
        for (i, item) in items {
            let len = serde_json::to_vec(&item).map(|v| v.len()).unwrap_or(0) + 1;
            if size + len > self.max_request_bytes && chunks.last().is_some_and(|c| !c.is_empty()) {
                chunks.push(Vec::new());
                size = 0;
            }
            size += len;
            if let Some(chunk) = chunks.last_mut() {
                chunk.push((i, item));
            }
        }
        chunks.retain(|c| !c.is_empty());
        chunks
    }

    /// Writes the mapped cells of rows already in the sheet, one values:batchUpdate per chunk.
    async fn update(
        &self,
        batch: &[RowOp],
        rows: &[(usize, u32)],
        outcomes: &mut [RowOutcome],
    ) -> Result<HashMap<usize, String>, CallError> {
        let columns = &self.tab.layout.field_columns;
        let field_at: HashMap<usize, usize> = columns.iter().enumerate().map(|(f, &c)| (c, f)).collect();
        let mut ranges: Vec<(usize, ValueRange)> = Vec::new();
        for &(i, row) in rows {
            // The cells this row writes: not a skipped NULL, not an `if_empty` cell with a value.
            let op = &batch[i];
            let filled = self.tab.filled.get(&self.tab.index.key_of(&op.key));
            let written: Vec<usize> = (0..columns.len())
                .filter(|&f| !self.target.keeps_current(op, f, !filled.is_some_and(|v| v.get(f).copied().unwrap_or(false))))
                .map(|f| columns[f])
                .collect();
            for (first, last) in column_runs(&written) {
                let values: Vec<J> = (first..=last).map(|c| self.cell(field_at[&c], &batch[i].fields[field_at[&c]])).collect();
                let range = row_range(&self.tab.title, row, first, last);
                ranges.push((i, ValueRange { range, major_dimension: Some("ROWS".into()), values: vec![values] }));
            }
        }
        let mut rejected = HashMap::new();
        for chunk in self.chunks(ranges) {
            let (ops, data): (Vec<usize>, Vec<ValueRange>) = chunk.into_iter().unzip();
            match self.client.values_batch_update(&data).await {
                Ok(()) => {}
                Err(CallError::Refused(reason)) => ops.into_iter().for_each(|i| {
                    rejected.insert(i, reason.clone());
                }),
                Err(e) => return Err(e),
            }
        }
        for (&i, reason) in &rejected {
            outcomes[i] = RowOutcome::Rejected(reason.clone());
        }
        Ok(rejected)
    }

    /// Deletes rows (all rows of each removed key), bottom first, in one atomic batchUpdate.
    async fn delete(&mut self, mut rows: Vec<u32>) -> Result<(), CallError> {
        rows.sort_unstable_by(|a, b| b.cmp(a));
        rows.dedup();
        let mut spans: Vec<(u32, u32)> = Vec::new(); // (first, last), descending
        for r in &rows {
            match spans.last_mut() {
                Some((first, _)) if *first == r + 1 => *first = *r,
                _ => spans.push((*r, *r)),
            }
        }
        let requests = spans
            .iter()
            .map(|(first, last)| {
                json!({ "deleteDimension": { "range": {
                    "sheetId": self.tab.sheet_id, "dimension": "ROWS", "startIndex": first - 1, "endIndex": last } } })
            })
            .collect();
        self.client.batch_update(requests).await?;
        self.tab.index.remove_rows(&rows);
        let n = rows.len() as u64;
        self.tab.grid.row_count = self.tab.grid.row_count.saturating_sub(n);
        self.tab.cells = self.tab.cells.saturating_sub(n * self.tab.grid.column_count);
        Ok(())
    }

    /// Appends new rows (INSERT_ROWS) and records where they landed.
    async fn append(&mut self, batch: &[RowOp], ops: &[usize], outcomes: &mut [RowOutcome]) -> Result<(), CallError> {
        let added = ops.len() as u64 * self.tab.grid.column_count;
        self.tab.fits(added).map_err(|m| CallError::Failed(DestinationError::fatal(m)))?;
        let columns = &self.tab.layout.field_columns;
        // Anchored at the first mapped column: Google appends "starting with the first column of
        // the table" it finds in the range, so a range starting at an empty column A would put
        // every value one column right of its header.
        let first = columns.iter().copied().min().unwrap_or(0);
        let last = self.tab.layout.last_column();
        let rows: Vec<(usize, Vec<J>)> = ops
            .iter()
            .map(|&i| {
                // `null` leaves a cell alone: columns between mapped ones stay empty.
                let mut row = vec![J::Null; last - first + 1];
                for (f, &c) in columns.iter().enumerate() {
                    if self.target.writes(&batch[i], f) {
                        row[c - first] = self.cell(f, &batch[i].fields[f]);
                    }
                }
                (i, row)
            })
            .collect();
        let range = row_range(&self.tab.title, 1, first, last);
        let mut chunks = self.chunks(rows).into_iter();
        let mut appended = false;
        while let Some(chunk) = chunks.next() {
            let (ids, values): (Vec<usize>, Vec<Vec<J>>) = chunk.into_iter().unzip();
            match self.client.values_append(&range, values).await {
                Ok(landed) if landed.first_column != first => {
                    // Written, but under other headers: stop before more land there.
                    return Err(CallError::Failed(DestinationError::fatal(format!(
                        "Sheets appended rows {} to {} of tab '{}' from column {}, not from column {} where the sync's first header is: \
                         it found another table in row 1; move those rows under their headers (or delete them) and check row 1",
                        landed.first_row,
                        landed.last_row,
                        self.tab.title,
                        super::encoding::column_letters(landed.first_column),
                        super::encoding::column_letters(first)
                    ))));
                }
                Ok(landed) => {
                    let first = landed.first_row;
                    let n = ids.len() as u64;
                    // INSERT_ROWS lands after the table Google finds, which may be above rows
                    // the index knows (a blank row splits the data): those move down.
                    self.tab.index.insert_rows(first, n as u32);
                    for (j, &i) in ids.iter().enumerate() {
                        if self.target.mode != Mode::Insert {
                            self.tab.index.insert(value_key(&batch[i].key), first + j as u32);
                        }
                    }
                    self.tab.grid.row_count += n;
                    self.tab.cells += n * self.tab.grid.column_count;
                    appended = true;
                }
                Err(CallError::Refused(reason)) => ids.into_iter().for_each(|i| outcomes[i] = RowOutcome::Rejected(reason.clone())),
                // Earlier chunks landed: sending the whole batch again would append them twice
                // (in insert mode nothing would notice), so only the rest is left to retry.
                Err(e) if appended => {
                    self.stale = matches!(e, CallError::Unanswered(_));
                    let error = DestinationError::from(e);
                    for i in ids.into_iter().chain(chunks.flatten().map(|(i, _)| i)) {
                        outcomes[i] = RowOutcome::Retryable(error.message.clone());
                    }
                    self.cut = Some(error);
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Which rows of the tab a batch writes to, by the index as it stands: rows updated in
    /// place (op, row), rows appended (op), rows deleted.
    fn plan(&self, batch: &[RowOp]) -> Plan {
        let mut plan = Plan { outcomes: vec![RowOutcome::written(); batch.len()], ..Plan::default() };
        for (i, op) in batch.iter().enumerate() {
            if let Some(reason) = (op.op != Op::Delete).then(|| self.too_long(op)).flatten() {
                plan.outcomes[i] = RowOutcome::Rejected(reason);
                continue;
            }
            let rows = self.tab.index.rows(&self.tab.index.key_of(&op.key));
            match (op.op, rows.first()) {
                (Op::Insert, _) | (Op::Upsert, None) => plan.appends.push(i),
                (Op::Upsert | Op::Update | Op::Clear, Some(&row)) => plan.updates.push((i, row)),
                // Nothing to clear: the row is not in the tab (any more).
                (Op::Clear, None) => {}
                (Op::Update, None) => {
                    plan.outcomes[i] = RowOutcome::Rejected(format!(
                        "no row of tab '{}' has this key; update mode changes existing rows only",
                        self.tab.title
                    ))
                }
                (Op::Delete, _) => {
                    plan.deletes.extend_from_slice(rows);
                    plan.deleted.push(i);
                }
            }
        }
        plan
    }

    /// Rows the plan appends whose key a person seems to have typed into another row, where
    /// Sheets turned it into a number (`007` became 7): not the same key, so a row is added;
    /// says which, and how to keep keys as text.
    fn warn_typed_keys(&mut self, batch: &[RowOp], plan: &Plan) {
        for &i in plan.appends.iter().filter(|&&i| batch[i].op == Op::Upsert) {
            if let Some((row, number)) = self.tab.index.as_number(&batch[i].key) {
                self.warnings.push(format!(
                    "row ({}) is added to tab '{}' although row {row} holds {number}: a key typed by hand becomes a number in Sheets; \
                     type keys as text (a leading ') or format the key column as Plain text, then delete one of the two rows",
                    batch[i].key_label(&self.target),
                    self.tab.title
                ));
            }
        }
    }

    /// Whether the rows `plan` writes to still hold its keys. Row numbers were read when the run
    /// opened, minutes ago perhaps; a person who sorted the tab or inserted or deleted rows
    /// since would get other rows overwritten or deleted. One read of the key columns, right
    /// before the writes (within the read quota: the client paces it).
    async fn still_in_place(&self, batch: &[RowOp], plan: &Plan) -> Result<bool, CallError> {
        let key_columns: Vec<usize> = self.target.key_fields.iter().flatten().map(|&f| self.tab.layout.field_columns[f]).collect();
        let ranges: Vec<String> = key_columns.iter().map(|&c| column_range(&self.tab.title, c)).collect();
        // A read that failed changed nothing in the sheet: not a reason to read it all again.
        let read = self.client.batch_get(&ranges, "COLUMNS").await.map_err(|e| match e {
            CallError::Unanswered(e) => CallError::Failed(e),
            e => e,
        })?;
        let mut columns: Vec<Vec<J>> = read.into_iter().map(|r| r.values.into_iter().next().unwrap_or_default()).collect();
        columns.resize(ranges.len(), Vec::new());
        let now = KeyIndex::from_columns(&columns);
        let updates_hold = plan.updates.iter().all(|&(i, row)| now.rows(&now.key_of(&batch[i].key)).first() == Some(&row));
        let deletes_hold = plan
            .deleted
            .iter()
            .all(|&i| now.rows(&now.key_of(&batch[i].key)) == self.tab.index.rows(&self.tab.index.key_of(&batch[i].key)));
        Ok(updates_hold && deletes_hold)
    }

    /// `fresh`: the tab was read just now, so the rows are where the index says.
    async fn write_batch(&mut self, batch: &[RowOp], fresh: bool) -> Result<Vec<RowOutcome>, CallError> {
        let batch_id = crate::value::hash_values(batch.iter().flat_map(|op| op.key.iter()));
        let mut plan = self.plan(batch);
        self.warn_typed_keys(batch, &plan);
        let targets_rows = !plan.updates.is_empty() || !plan.deletes.is_empty();
        // (A retry of a batch whose updates went through already has nothing to verify.)
        let retried = self.updated.as_ref().is_some_and(|(id, _)| *id == batch_id);
        if targets_rows && !retried && !fresh && !self.still_in_place(batch, &plan).await? {
            self.tab = Tab::read(&self.client, &self.tab.title, &self.target).await?;
            self.warnings.push(format!(
                "tab '{}' changed while the run was writing (rows sorted, inserted or deleted by hand): sluice read it again \
                 and wrote each row where its key is now",
                self.tab.title
            ));
            plan = self.plan(batch);
        }
        let Plan { mut outcomes, updates, appends, deletes, .. } = plan;
        if !updates.is_empty() || !appends.is_empty() {
            self.prepare().await?;
        }
        if !updates.is_empty() {
            match self.updated.take() {
                // A retry of a batch whose updates already went through.
                Some((id, rejected)) if id == batch_id => {
                    for (i, reason) in &rejected {
                        outcomes[*i] = RowOutcome::Rejected(reason.clone());
                    }
                    self.updated = Some((id, rejected));
                }
                _ => {
                    let rejected = self.update(batch, &updates, &mut outcomes).await?;
                    self.updated = Some((batch_id, rejected));
                }
            }
        }
        if !deletes.is_empty() {
            self.delete(deletes).await?;
        }
        if !appends.is_empty() {
            self.append(batch, &appends, &mut outcomes).await?;
        }
        Ok(outcomes)
    }
}

/// Where a batch goes in the tab (`SheetsWriter::plan`).
#[derive(Default)]
struct Plan {
    outcomes: Vec<RowOutcome>,
    /// (op, row) of rows written in place.
    updates: Vec<(usize, u32)>,
    appends: Vec<usize>,
    /// Rows to delete, and the ops that delete them.
    deletes: Vec<u32>,
    deleted: Vec<usize>,
}

#[async_trait]
impl Writer for SheetsWriter {
    async fn write(&mut self, batch: &[RowOp]) -> Result<Vec<RowOutcome>, DestinationError> {
        let fresh = self.stale;
        if self.stale {
            self.tab = Tab::read(&self.client, &self.tab.title, &self.target).await.map_err(DestinationError::from)?;
            self.stale = false;
        }
        match self.write_batch(batch, fresh).await {
            Ok(outcomes) => {
                self.updated = None;
                match self.cut.take() {
                    // Appends stopped part-way: the rows left `Retryable` there are the undone ones.
                    Some(error) => {
                        partial(outcomes.into_iter().map(|o| (!matches!(o, RowOutcome::Retryable(_))).then_some(o)).collect(), error)
                    }
                    None => Ok(outcomes),
                }
            }
            Err(e) => {
                // Only a request that may have been carried out leaves the sheet unknown.
                self.stale = matches!(e, CallError::Unanswered(_));
                Err(DestinationError::from(e))
            }
        }
    }

    fn holds(&self, key: &[Value]) -> Option<bool> {
        (self.target.mode != Mode::Insert).then(|| self.tab.index.contains(&self.tab.index.key_of(key)))
    }

    fn reads_keys(&self) -> bool {
        self.target.mode != Mode::Insert
    }

    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}
