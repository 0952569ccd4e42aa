//! Reading and writing the two file formats. Cells are JSON values: strings for CSV (what a
//! CSV file can hold), typed values for JSON lines.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use indexmap::IndexMap;
use serde_json::Value as J;

use super::config::Format;
use crate::value::Value;

/// The file's rows by key, in file order.
pub struct Table {
    pub rows: IndexMap<String, Vec<J>>,
}

pub fn cell(format: Format, v: &Value) -> J {
    match format {
        Format::Csv => J::String(v.to_text()),
        Format::Jsonl => v.to_json(),
    }
}

/// A row's identity inside the file: its key cells, serialised.
pub fn key_of(cells: impl Iterator<Item = J>) -> String {
    J::Array(cells.collect()).to_string()
}

/// Reads the file (missing: empty) and re-keys its rows under `header`; columns that are no
/// longer mapped are dropped, new ones start empty.
pub fn read(path: &Path, format: Format, header: &[String], key_idx: &[usize], escaped: bool) -> Result<Table, String> {
    let mut table = Table { rows: IndexMap::new() };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(table),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut push = |row: Vec<J>| {
        let key = key_of(key_idx.iter().map(|&i| row[i].clone()));
        table.rows.insert(key, row);
    };
    match format {
        Format::Csv => {
            let mut reader = csv::Reader::from_reader(BufReader::new(file));
            let file_header: Vec<String> = reader.headers().map_err(|e| csv_err(path, e))?.iter().map(str::to_string).collect();
            let positions: Vec<Option<usize>> = header.iter().map(|h| file_header.iter().position(|f| f == h)).collect();
            for record in reader.records() {
                let record = record.map_err(|e| csv_err(path, e))?;
                let text = |p: &Option<usize>| p.and_then(|i| record.get(i)).unwrap_or("");
                push(positions.iter().map(|p| J::String(if escaped { unescape(text(p)) } else { text(p) }.to_string())).collect());
            }
        }
        Format::Jsonl => {
            for (n, line) in BufReader::new(file).lines().enumerate() {
                let line = line.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                if line.trim().is_empty() {
                    continue;
                }
                let mut obj: serde_json::Map<String, J> =
                    serde_json::from_str(&line).map_err(|e| format!("{}:{}: not a JSON object: {e}", path.display(), n + 1))?;
                push(header.iter().map(|h| obj.remove(h).unwrap_or(J::Null)).collect());
            }
        }
    }
    Ok(table)
}

fn csv_err(path: &Path, e: csv::Error) -> String {
    format!("cannot read {} as CSV: {e}", path.display())
}

/// The I/O error inside a CSV error, so its kind (a full disk) survives.
fn csv_io(e: csv::Error) -> std::io::Error {
    if !e.is_io_error() {
        return std::io::Error::other(e);
    }
    match e.into_kind() {
        csv::ErrorKind::Io(io) => io,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

/// Characters that make a spreadsheet program read a CSV cell as a formula when they lead it
/// (OWASP, "CSV Injection"; CWE-1236): `=`, `+`, `-`, `@`, tab, carriage return, line feed.
const FORMULA_LEAD: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\n'];

/// Whether a cell's text would be read as a formula: it starts with a formula character (after
/// any `'`s, so that [`unescape`] can undo [`escape`]), and is not a plain number ("-5" is data).
fn formula_like(text: &str) -> bool {
    text.trim_start_matches('\'').starts_with(FORMULA_LEAD) && text.parse::<f64>().is_err()
}

/// A CSV cell as written with `escape_formulas`: a leading `'` where it would read as a formula
/// (OWASP's advice; spreadsheets show the text and drop the quote).
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    match formula_like(text) {
        true => format!("'{text}").into(),
        false => text.into(),
    }
}

/// The data of a cell [`escape`] wrote: read back, so a rewrite matches rows by their keys.
pub fn unescape(text: &str) -> &str {
    match text.strip_prefix('\'') {
        Some(rest) if formula_like(rest) => rest,
        _ => text,
    }
}

/// Writes rows to `out` in `format`; `with_header` only matters for CSV, and so does `escaped`
/// (formula-like text cells get a leading `'`: [`escape`]).
pub fn write_rows<'a>(
    out: &mut impl Write,
    format: Format,
    header: &[String],
    rows: impl Iterator<Item = &'a Vec<J>>,
    with_header: bool,
    escaped: bool,
) -> std::io::Result<()> {
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            if with_header {
                w.write_record(header).map_err(csv_io)?;
            }
            for row in rows {
                w.write_record(row.iter().map(|c| match c {
                    J::String(s) if escaped => escape(s).into_owned(),
                    J::String(s) => s.clone(),
                    J::Null => String::new(),
                    other => other.to_string(),
                }))
                .map_err(csv_io)?;
            }
            w.flush()
        }
        Format::Jsonl => {
            let mut w = BufWriter::new(out);
            for row in rows {
                // In the mapping's order (serde_json's Map would sort the keys).
                let obj: indexmap::IndexMap<&str, &J> = header.iter().map(String::as_str).zip(row.iter()).collect();
                serde_json::to_writer(&mut w, &obj)?;
                w.write_all(b"\n")?;
            }
            w.flush()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_like_cells_are_escaped_and_read_back_as_they_were() {
        for (data, written) in [
            ("=HYPERLINK(\"http://evil\",\"x\")", "'=HYPERLINK(\"http://evil\",\"x\")"),
            ("+1+1", "'+1+1"),
            ("-A1", "'-A1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tcmd", "'\tcmd"),
            ("'=already quoted", "''=already quoted"),
            ("-5", "-5"),
            ("3.5", "3.5"),
            ("plain", "plain"),
            ("'just a quote", "'just a quote"),
            ("", ""),
        ] {
            assert_eq!(escape(data), written, "{data:?}");
            assert_eq!(unescape(&escape(data)), data, "{data:?} round-trips");
        }
    }
}
