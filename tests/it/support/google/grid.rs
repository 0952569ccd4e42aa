//! The emulator's spreadsheet: tabs of cells with a grid size, A1 ranges, and the value and
//! structural operations of Sheets v4, with Google's error texts. No HTTP here.

use serde_json::{json, Value as J};

/// An API error: HTTP status, message and Google's status name.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub message: String,
    pub status: &'static str,
}

impl ApiError {
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError { code: 400, message: message.into(), status: "INVALID_ARGUMENT" }
    }
    pub fn body(&self) -> J {
        json!({ "error": { "code": self.code, "message": self.message, "status": self.status } })
    }
}

#[derive(Clone, Debug)]
pub struct Tab {
    pub sheet_id: i64,
    pub title: String,
    pub row_count: usize,
    pub column_count: usize,
    /// Cells by row, then column; rows and columns past the data are absent. `None` is empty.
    pub cells: Vec<Vec<Option<J>>>,
}

impl Tab {
    pub fn new(sheet_id: i64, title: &str, rows: usize, columns: usize) -> Tab {
        Tab { sheet_id, title: title.to_string(), row_count: rows, column_count: columns, cells: Vec::new() }
    }

    pub fn get(&self, row: usize, col: usize) -> Option<&J> {
        self.cells.get(row).and_then(|r| r.get(col)).and_then(Option::as_ref)
    }

    fn set(&mut self, row: usize, col: usize, value: Option<J>) {
        if value.is_none() && self.get(row, col).is_none() {
            return;
        }
        if self.cells.len() <= row {
            self.cells.resize(row + 1, Vec::new());
        }
        let r = &mut self.cells[row];
        if r.len() <= col {
            r.resize(col + 1, None);
        }
        r[col] = value;
    }

    /// The last row (0-based) holding any value, if any.
    pub fn last_used_row(&self) -> Option<usize> {
        self.cells.iter().rposition(|r| r.iter().any(Option::is_some))
    }

    /// Sorts the rows below the header by the text of column `col`, as Data > Sort range does.
    pub fn sort_by_column(&mut self, col: usize, descending: bool) {
        if self.cells.len() < 2 {
            return;
        }
        let mut body = self.cells.split_off(1);
        let key = |r: &Vec<Option<J>>| r.get(col).cloned().flatten().map(|c| text(&c)).unwrap_or_default();
        body.sort_by(|a, b| if descending { key(b).cmp(&key(a)) } else { key(a).cmp(&key(b)) });
        self.cells.extend(body);
    }

    /// Every row as text cells, trailing empties trimmed (what a test compares against).
    pub fn rows_text(&self) -> Vec<Vec<String>> {
        let mut rows: Vec<Vec<String>> = self
            .cells
            .iter()
            .map(|r| {
                let mut texts: Vec<String> = r.iter().map(|c| c.as_ref().map(text).unwrap_or_default()).collect();
                while texts.last().is_some_and(String::is_empty) {
                    texts.pop();
                }
                texts
            })
            .collect();
        while rows.last().is_some_and(Vec::is_empty) {
            rows.pop();
        }
        rows
    }
}

/// A cell as text: numbers without a needless `.0`, booleans as TRUE/FALSE.
pub fn text(cell: &J) -> String {
    match cell {
        J::String(s) => s.clone(),
        J::Object(f) if f.contains_key("formula") => format!("<formula {}>", f["formula"].as_str().unwrap_or_default()),
        J::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        J::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// A resolved rectangle, 0-based and inclusive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    pub r0: usize,
    pub r1: usize,
    pub c0: usize,
    pub c1: usize,
}

/// A parsed A1 range: sheet title (if given) and cell bounds (each open if absent).
#[derive(Clone, Debug, PartialEq)]
pub struct A1 {
    pub sheet: Option<String>,
    start: (Option<usize>, Option<usize>),
    end: Option<(Option<usize>, Option<usize>)>,
}

pub fn column_letters(index: usize) -> String {
    let mut n = index + 1;
    let mut s = Vec::new();
    while n > 0 {
        s.push(b'A' + ((n - 1) % 26) as u8);
        n = (n - 1) / 26;
    }
    s.reverse();
    String::from_utf8(s).unwrap()
}

/// `(col, row)` of `B7`, `B`, `7` (0-based), or `None` if it is not a cell reference.
fn parse_cell(s: &str) -> Option<(Option<usize>, Option<usize>)> {
    let letters: String = s.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    let digits = &s[letters.len()..];
    if letters.is_empty() && digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let col = (!letters.is_empty()).then(|| letters.to_ascii_uppercase().bytes().fold(0usize, |n, b| n * 26 + (b - b'A' + 1) as usize) - 1);
    let row = if digits.is_empty() {
        None
    } else {
        let r: usize = digits.parse().ok()?;
        if r == 0 {
            return None;
        }
        Some(r - 1)
    };
    Some((col, row))
}

impl A1 {
    /// Parses `'Tab'!A1:B2`, `Tab!A:A`, `Tab!1:1`, `Tab`, `A1:B2`. Titles that are known are
    /// recognised without `!` (a bare `Customers` is the whole tab).
    pub fn parse(range: &str, titles: &[&str]) -> Result<A1, ApiError> {
        let unparsable = || ApiError::bad(format!("Unable to parse range: {range}"));
        let (sheet, cells) = if let Some(rest) = range.strip_prefix('\'') {
            // Quoted title: '' is a quote inside it.
            let mut title = String::new();
            let mut chars = rest.char_indices().peekable();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == '\'' {
                    if chars.peek().map(|(_, n)| *n) == Some('\'') {
                        title.push('\'');
                        chars.next();
                    } else {
                        end = Some(i + 1);
                        break;
                    }
                } else {
                    title.push(c);
                }
            }
            let after = &rest[end.ok_or_else(unparsable)?..];
            match after.strip_prefix('!') {
                Some(cells) => (Some(title), Some(cells)),
                None if after.is_empty() => (Some(title), None),
                None => return Err(unparsable()),
            }
        } else if let Some((title, cells)) = range.split_once('!') {
            (Some(title.to_string()), Some(cells))
        } else if titles.contains(&range) {
            (Some(range.to_string()), None)
        } else {
            (None, Some(range))
        };
        let Some(cells) = cells else { return Ok(A1 { sheet, start: (None, None), end: Some((None, None)) }) };
        let (a, b) = match cells.split_once(':') {
            Some((a, b)) => (parse_cell(a).ok_or_else(unparsable)?, Some(parse_cell(b).ok_or_else(unparsable)?)),
            None => (parse_cell(cells).ok_or_else(unparsable)?, None),
        };
        // A lone `B` or `7` is not a range; `B:B` and `7:7` are.
        if b.is_none() && (a.0.is_none() || a.1.is_none()) {
            return Err(unparsable());
        }
        Ok(A1 { sheet, start: a, end: b })
    }

    /// The rectangle on a tab, open ends clamped to its grid. Bounds past the grid are an error.
    pub fn rect(&self, tab: &Tab) -> Result<Rect, ApiError> {
        self.rect_in(&tab.title, tab.row_count, tab.column_count)
    }

    /// The rectangle in a grid of `rows` x `columns`.
    pub fn rect_in(&self, title: &str, rows: usize, columns: usize) -> Result<Rect, ApiError> {
        let (c0, r0) = (self.start.0.unwrap_or(0), self.start.1.unwrap_or(0));
        let (c1, r1) = match self.end {
            None => (c0, r0),
            Some((c, r)) => (c.unwrap_or(columns.saturating_sub(1)), r.unwrap_or(rows.saturating_sub(1))),
        };
        let (r0, r1, c0, c1) = (r0.min(r1), r0.max(r1), c0.min(c1), c0.max(c1));
        if r1 >= rows || c1 >= columns {
            return Err(ApiError::bad(format!(
                "Range ({}) exceeds grid limits. Max rows: {rows}, max columns: {columns}",
                range_text(title, Rect { r0, r1, c0, c1 })
            )));
        }
        Ok(Rect { r0, r1, c0, c1 })
    }

    /// The top-left cell, wherever it is.
    fn origin(&self) -> Rect {
        let (c, r) = (self.start.0.unwrap_or(0), self.start.1.unwrap_or(0));
        Rect { r0: r, r1: r, c0: c, c1: c }
    }

    /// Whether the range names a single cell (an anchor that values may extend from).
    pub fn is_single_cell(&self) -> bool {
        self.end.is_none()
    }
}

/// `Sheet1!A1:B2`, or `'My tab'!A1:B2` when the title needs quoting.
pub fn range_text(title: &str, r: Rect) -> String {
    let t = if title.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        title.to_string()
    } else {
        format!("'{}'", title.replace('\'', "''"))
    };
    let a = format!("{}{}", column_letters(r.c0), r.r0 + 1);
    let b = format!("{}{}", column_letters(r.c1), r.r1 + 1);
    if a == b {
        format!("{t}!{a}")
    } else {
        format!("{t}!{a}:{b}")
    }
}

/// One input cell: `null` leaves the cell, `""` clears it. USER_ENTERED parses text as typing
/// in the UI does (developers.google.com/sheets/api/reference/rest/v4/ValueInputOption): a
/// leading `'` keeps text as text (and is not stored: ExtendedValue.stringValue in the
/// discovery document), numbers and booleans are parsed, and `=` (or `+`, `-`, `@` before
/// anything but a number) starts a formula, stored as one (`{"formula": ...}`: this emulator
/// does not compute it).
fn input(cell: &J, user_entered: bool) -> Result<Option<Option<J>>, ApiError> {
    Ok(match cell {
        J::Null => None,
        J::String(s) if s.is_empty() => Some(None),
        J::String(s) if user_entered => Some(Some(if let Some(t) = s.strip_prefix('\'') {
            J::String(t.to_string())
        } else if let Ok(n) = s.trim().parse::<f64>() {
            json!(n)
        } else if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") {
            J::Bool(s.eq_ignore_ascii_case("true"))
        } else if s.starts_with(['=', '+', '-', '@']) {
            json!({ "formula": s })
        } else {
            J::String(s.clone())
        })),
        J::String(_) | J::Number(_) | J::Bool(_) => Some(Some(cell.clone())),
        other => return Err(ApiError::bad(format!("Invalid values[0][0]: {other}"))),
    })
}

pub struct Spreadsheet {
    pub id: String,
    pub tabs: Vec<Tab>,
    pub next_sheet_id: i64,
    pub max_cells: usize,
    /// Whether a value write past the grid grows it (Google's behaviour here is unverified).
    pub writes_grow_grid: bool,
}

impl Spreadsheet {
    pub fn new(id: &str) -> Spreadsheet {
        Spreadsheet {
            id: id.into(),
            tabs: vec![Tab::new(0, "Sheet1", 1000, 26)],
            next_sheet_id: 1,
            max_cells: 10_000_000,
            writes_grow_grid: false,
        }
    }

    pub fn cells(&self) -> usize {
        self.tabs.iter().map(|t| t.row_count * t.column_count).sum()
    }

    fn check_cells(&self) -> Result<(), ApiError> {
        if self.cells() > self.max_cells {
            return Err(ApiError::bad(format!(
                "This action would increase the number of cells in the workbook above the limit of {} cells.",
                self.max_cells
            )));
        }
        Ok(())
    }

    pub fn tab(&self, title: &str) -> Option<&Tab> {
        self.tabs.iter().find(|t| t.title == title)
    }

    /// The tab and parsed range an A1 string refers to (no title: the first tab).
    pub fn resolve(&self, range: &str) -> Result<(usize, A1), ApiError> {
        let titles: Vec<&str> = self.tabs.iter().map(|t| t.title.as_str()).collect();
        let a1 = A1::parse(range, &titles)?;
        let index = match &a1.sheet {
            None => 0,
            Some(title) => {
                self.tabs.iter().position(|t| &t.title == title).ok_or_else(|| ApiError::bad(format!("Unable to parse range: {range}")))?
            }
        };
        Ok((index, a1))
    }

    /// `values.get`: the range's values, trailing empty rows and cells trimmed.
    pub fn read(&self, range: &str, columns: bool, formatted: bool) -> Result<J, ApiError> {
        let (i, a1) = self.resolve(range)?;
        let tab = &self.tabs[i];
        let r = a1.rect(tab)?;
        let cell = |row: usize, col: usize| match tab.get(row, col) {
            None => J::String(String::new()),
            // A formula reads as its value, which this emulator does not compute.
            Some(J::Object(_)) => J::String("#ERROR!".into()),
            Some(v) if formatted => J::String(text(v)),
            Some(v) => v.clone(),
        };
        let (outer, inner) = if columns {
            ((r.c0..=r.c1).collect::<Vec<_>>(), (r.r0..=r.r1).collect::<Vec<_>>())
        } else {
            ((r.r0..=r.r1).collect(), (r.c0..=r.c1).collect())
        };
        let mut values: Vec<Vec<J>> = outer
            .iter()
            .map(|&o| {
                let mut line: Vec<J> = inner.iter().map(|&n| if columns { cell(n, o) } else { cell(o, n) }).collect();
                while line.last().is_some_and(|c| c == &J::String(String::new())) {
                    line.pop();
                }
                line
            })
            .collect();
        while values.last().is_some_and(Vec::is_empty) {
            values.pop();
        }
        let mut out = json!({ "range": range_text(&tab.title, r), "majorDimension": if columns { "COLUMNS" } else { "ROWS" } });
        if !values.is_empty() {
            out["values"] = json!(values);
        }
        Ok(out)
    }

    /// `values.update`: writes `values` (rows) into the range; a single cell is an anchor.
    pub fn write(&mut self, range: &str, values: &[Vec<J>], user_entered: bool) -> Result<J, ApiError> {
        let (i, a1) = self.resolve(range)?;
        let height = values.len();
        let width = values.iter().map(Vec::len).max().unwrap_or(0);
        let tab = &self.tabs[i];
        let origin = a1.origin();
        if !a1.is_single_cell() {
            let bounds = a1.rect_in(&tab.title, usize::MAX / 2, usize::MAX / 2)?;
            if height > 0 && origin.r0 + height - 1 > bounds.r1 || width > 0 && origin.c0 + width - 1 > bounds.c1 {
                return Err(ApiError::bad(format!(
                    "Requested writing within range [{}], but tried writing {} rows and {} columns",
                    range, height, width
                )));
            }
        }
        let (rows_needed, cols_needed) = (origin.r0 + height, origin.c0 + width);
        if rows_needed > tab.row_count || cols_needed > tab.column_count {
            if !self.writes_grow_grid {
                let r = Rect { r0: origin.r0, r1: rows_needed.max(1) - 1, c0: origin.c0, c1: cols_needed.max(1) - 1 };
                return Err(ApiError::bad(format!(
                    "Range ({}) exceeds grid limits. Max rows: {}, max columns: {}",
                    range_text(&tab.title, r),
                    tab.row_count,
                    tab.column_count
                )));
            }
            let tab = &mut self.tabs[i];
            tab.row_count = tab.row_count.max(rows_needed);
            tab.column_count = tab.column_count.max(cols_needed);
            self.check_cells()?;
        }
        let parsed: Vec<Vec<Option<Option<J>>>> =
            values.iter().map(|row| row.iter().map(|c| input(c, user_entered)).collect::<Result<_, _>>()).collect::<Result<_, _>>()?;
        let tab = &mut self.tabs[i];
        for (dr, row) in parsed.into_iter().enumerate() {
            for (dc, cell) in row.into_iter().enumerate() {
                if let Some(value) = cell {
                    tab.set(origin.r0 + dr, origin.c0 + dc, value);
                }
            }
        }
        let written = Rect { r0: origin.r0, r1: origin.r0 + height.max(1) - 1, c0: origin.c0, c1: origin.c0 + width.max(1) - 1 };
        Ok(json!({
            "spreadsheetId": self.id,
            "updatedRange": range_text(&tab.title, written),
            "updatedRows": height,
            "updatedColumns": width,
            "updatedCells": values.iter().map(Vec::len).sum::<usize>(),
        }))
    }

    /// `values.append`: finds the table within the range (from the range's first row to the
    /// tab's last used row) and writes after it, starting at the table's first column (Google:
    /// "Values will be appended to the next row of the table, starting with the first column of
    /// the table", whatever column the range starts at); INSERT_ROWS inserts new rows there first.
    pub fn append(&mut self, range: &str, values: &[Vec<J>], user_entered: bool, insert_rows: bool) -> Result<J, ApiError> {
        let (i, a1) = self.resolve(range)?;
        let tab = &self.tabs[i];
        let anchor = a1.origin();
        let last_column = a1.end.and_then(|(c, _)| c).unwrap_or(usize::MAX);
        let in_range = |row: &Vec<Option<J>>, c: usize| c >= anchor.c0 && c <= last_column && row.get(c).is_some_and(Option::is_some);
        // The "table" is the run of non-empty rows from the range's first row: a blank row ends
        // it, and the values go right after it (like Google, which appends to the first table).
        let used = |r: usize| tab.cells.get(r).is_some_and(|row| (0..row.len()).any(|c| in_range(row, c)));
        let mut at = anchor.r0;
        while used(at) {
            at += 1;
        }
        let first_column = (anchor.r0..at)
            .filter_map(|r| tab.cells.get(r))
            .filter_map(|row| (0..row.len()).find(|&c| in_range(row, c)))
            .min()
            .unwrap_or(anchor.c0);
        let anchor = Rect { c0: first_column, c1: first_column, ..anchor };
        let width = values.iter().map(Vec::len).max().unwrap_or(0);
        let table = Rect { r0: anchor.r0, r1: at.saturating_sub(1).max(anchor.r0), c0: anchor.c0, c1: anchor.c0 + width.max(1) - 1 };
        let n = values.len();
        let before = (self.tabs[i].row_count, self.tabs[i].column_count, self.tabs[i].cells.clone());
        {
            let tab = &mut self.tabs[i];
            if insert_rows {
                if tab.cells.len() > at {
                    tab.cells.splice(at..at, std::iter::repeat_n(Vec::new(), n));
                }
                tab.row_count += n;
            } else {
                tab.row_count = tab.row_count.max(at + n);
            }
            tab.column_count = tab.column_count.max(anchor.c0 + width);
        }
        let cell = format!("{}!{}{}", quoted(&self.tabs[i].title), column_letters(anchor.c0), at + 1);
        let result = self.check_cells().and_then(|_| self.write(&cell, values, user_entered));
        let updates = match result {
            Ok(u) => u,
            Err(e) => {
                let tab = &mut self.tabs[i];
                (tab.row_count, tab.column_count, tab.cells) = before;
                return Err(e);
            }
        };
        let title = self.tabs[i].title.clone();
        Ok(json!({ "spreadsheetId": self.id, "tableRange": range_text(&title, table), "updates": updates }))
    }

    /// `values.clear`.
    pub fn clear(&mut self, range: &str) -> Result<J, ApiError> {
        let (i, a1) = self.resolve(range)?;
        let r = a1.rect(&self.tabs[i])?;
        let tab = &mut self.tabs[i];
        for row in r.r0..=r.r1 {
            for col in r.c0..=r.c1 {
                tab.set(row, col, None);
            }
        }
        Ok(json!({ "spreadsheetId": self.id, "clearedRange": range_text(&tab.title, r) }))
    }

    fn tab_by_id(&mut self, id: i64, at: &str) -> Result<&mut Tab, ApiError> {
        self.tabs
            .iter_mut()
            .find(|t| t.sheet_id == id)
            .ok_or_else(|| ApiError::bad(format!("Invalid requests[{at}]: No grid with id: {id}")))
    }

    /// One `spreadsheets:batchUpdate` request. The caller applies a batch to a copy, so a
    /// failing request leaves the spreadsheet as it was.
    pub fn apply(&mut self, n: usize, request: &J) -> Result<J, ApiError> {
        let (kind, body) = request
            .as_object()
            .and_then(|o| o.iter().next())
            .ok_or_else(|| ApiError::bad(format!("Invalid requests[{n}]: empty request")))?;
        let at = format!("{n}].{kind}");
        let dim = |b: &J| b["dimension"].as_str().or(b["range"]["dimension"].as_str()).unwrap_or("").to_string();
        match kind.as_str() {
            "addSheet" => {
                let p = &body["properties"];
                let title = p["title"].as_str().map(str::to_string).unwrap_or_else(|| format!("Sheet{}", self.tabs.len() + 1));
                // Titles clash whatever their case.
                if self.tabs.iter().any(|t| t.title.to_lowercase() == title.to_lowercase()) {
                    return Err(ApiError::bad(format!(
                        "Invalid requests[{at}]: A sheet with the name \"{title}\" already exists. Please enter another name."
                    )));
                }
                let rows = p["gridProperties"]["rowCount"].as_u64().unwrap_or(1000) as usize;
                let cols = p["gridProperties"]["columnCount"].as_u64().unwrap_or(26) as usize;
                let id = p["sheetId"].as_i64().unwrap_or(self.next_sheet_id);
                self.next_sheet_id = self.next_sheet_id.max(id) + 1;
                self.tabs.push(Tab::new(id, &title, rows, cols));
                self.check_cells()?;
                Ok(json!({ "addSheet": { "properties": {
                    "sheetId": id, "title": title, "index": self.tabs.len() - 1, "sheetType": "GRID",
                    "gridProperties": { "rowCount": rows, "columnCount": cols } } } }))
            }
            "deleteSheet" => {
                let id = body["sheetId"].as_i64().unwrap_or(-1);
                let Some(at_tab) = self.tabs.iter().position(|t| t.sheet_id == id) else {
                    return Err(ApiError::bad(format!("Invalid requests[{at}]: No grid with id: {id}")));
                };
                if self.tabs.len() == 1 {
                    return Err(ApiError::bad(format!("Invalid requests[{at}]: You can't remove all the sheets in a document.")));
                }
                self.tabs.remove(at_tab);
                Ok(json!({}))
            }
            "appendDimension" => {
                let length = body["length"].as_u64().unwrap_or(0) as usize;
                let d = dim(body);
                let tab = self.tab_by_id(body["sheetId"].as_i64().unwrap_or(-1), &at)?;
                match d.as_str() {
                    "ROWS" => tab.row_count += length,
                    "COLUMNS" => tab.column_count += length,
                    _ => return Err(ApiError::bad(format!("Invalid requests[{at}]: dimension must be ROWS or COLUMNS"))),
                }
                self.check_cells()?;
                Ok(json!({}))
            }
            "insertDimension" | "deleteDimension" => {
                let range = &body["range"];
                let (start, end) = (range["startIndex"].as_u64().unwrap_or(0) as usize, range["endIndex"].as_u64().unwrap_or(0) as usize);
                let d = dim(body);
                let inherit = body["inheritFromBefore"].as_bool().unwrap_or(false);
                let tab = self.tab_by_id(range["sheetId"].as_i64().unwrap_or(-1), &at)?;
                let size = if d == "ROWS" { tab.row_count } else { tab.column_count };
                if end <= start || (kind == "deleteDimension" && end > size) || start > size || (inherit && start == 0) {
                    return Err(ApiError::bad(format!(
                        "Invalid requests[{at}]: Invalid dimension range: start {start}, end {end}, size {size}"
                    )));
                }
                if kind == "deleteDimension" && start == 0 && end == size {
                    return Err(ApiError::bad(format!("Invalid requests[{at}]: You can't delete all the rows on the sheet.")));
                }
                let n = end - start;
                match (kind.as_str(), d.as_str()) {
                    ("deleteDimension", "ROWS") => {
                        if tab.cells.len() > start {
                            tab.cells.drain(start..end.min(tab.cells.len()));
                        }
                        tab.row_count -= n;
                    }
                    ("deleteDimension", "COLUMNS") => {
                        for row in &mut tab.cells {
                            if row.len() > start {
                                row.drain(start..end.min(row.len()));
                            }
                        }
                        tab.column_count -= n;
                    }
                    ("insertDimension", "ROWS") => {
                        if tab.cells.len() > start {
                            tab.cells.splice(start..start, std::iter::repeat_n(Vec::new(), n));
                        }
                        tab.row_count += n;
                    }
                    ("insertDimension", "COLUMNS") => {
                        for row in &mut tab.cells {
                            if row.len() > start {
                                row.splice(start..start, std::iter::repeat_n(None, n));
                            }
                        }
                        tab.column_count += n;
                    }
                    _ => return Err(ApiError::bad(format!("Invalid requests[{at}]: dimension must be ROWS or COLUMNS"))),
                }
                self.check_cells()?;
                Ok(json!({}))
            }
            other => Err(ApiError::bad(format!(
                "Invalid JSON payload received. Unknown name \"{other}\" at 'requests[{n}]': Cannot find field."
            ))),
        }
    }

    pub fn metadata(&self) -> J {
        let sheets: Vec<J> = self
            .tabs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                json!({ "properties": { "sheetId": t.sheet_id, "title": t.title, "index": i, "sheetType": "GRID",
                "gridProperties": { "rowCount": t.row_count, "columnCount": t.column_count } } })
            })
            .collect();
        json!({ "spreadsheetId": self.id, "properties": { "title": "Emulated spreadsheet" }, "sheets": sheets })
    }
}

impl Clone for Spreadsheet {
    fn clone(&self) -> Self {
        Spreadsheet {
            id: self.id.clone(),
            tabs: self.tabs.clone(),
            next_sheet_id: self.next_sheet_id,
            max_cells: self.max_cells,
            writes_grow_grid: self.writes_grow_grid,
        }
    }
}

fn quoted(title: &str) -> String {
    format!("'{}'", title.replace('\'', "''"))
}
