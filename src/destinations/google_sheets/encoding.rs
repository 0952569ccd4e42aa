//! Values as cells, keys as text, and A1 notation. No I/O.

use serde_json::Value as J;

use crate::value::Value;

/// Google's limit on the characters in one cell.
pub const MAX_CELL_CHARS: usize = 50_000;
/// Integers a spreadsheet (a double) holds exactly; larger ones are sent as text.
const MAX_EXACT_INT: i64 = 1 << 53;

/// One value as a cell: numbers as numbers, booleans as booleans, NULL as `""` (which clears
/// the cell: JSON `null` would leave the old value), everything else as text (dates and
/// timestamps ISO-8601, JSON as JSON text).
pub fn cell(value: &Value) -> J {
    match value {
        Value::Null => J::String(String::new()),
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) if i.unsigned_abs() <= MAX_EXACT_INT as u64 => J::from(*i),
        Value::Float(_) | Value::Decimal(_) => match value.to_json() {
            n @ J::Number(_) => n,
            _ => J::String(value.to_text()),
        },
        other => J::String(other.to_text()),
    }
}

/// Whether text sent with USER_ENTERED needs a leading `'` to stay the text it is: it would
/// start a formula (`=`; `+`, `-` or `@` before anything but a plain number, as in "+A1",
/// "-B2*2" or "@SUM(...)"), or begins with a `'` that Sheets would take as that marker. With
/// `formulas`, text starting with `=` is left to become one.
pub fn typed_as_formula(text: &str, formulas: bool) -> bool {
    match text.chars().next() {
        Some('=') => !formulas,
        Some('\'') => true,
        Some('+' | '-' | '@') => text.trim().parse::<f64>().is_err(),
        _ => false,
    }
}

/// The text a key cell is matched by. Cells are read back unformatted, so a number sent as
/// `42` comes back as `42` and a string as the same string.
pub fn cell_key(cell: &J) -> String {
    match cell {
        J::String(s) => s.clone(),
        J::Number(n) => match n.as_f64() {
            // Sheets stores numbers as doubles: 42.0 and 42 are the same cell.
            Some(f) if f.fract() == 0.0 && f.abs() < MAX_EXACT_INT as f64 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        J::Bool(true) => "TRUE".into(),
        J::Bool(false) => "FALSE".into(),
        J::Null => String::new(),
        other => other.to_string(),
    }
}

/// The text of a composite key: its cells' texts joined by a separator no cell holds.
pub fn key_text<'a>(parts: impl IntoIterator<Item = &'a J>) -> String {
    let texts: Vec<String> = parts.into_iter().map(cell_key).collect();
    texts.join("\u{1f}")
}

/// The key text of a model row's key values, as they would read back from the sheet.
pub fn value_key(key: &[Value]) -> String {
    let cells: Vec<J> = key.iter().map(cell).collect();
    key_text(&cells)
}

/// A date as Sheets stores one typed into a cell: its serial number, days since 1899-12-30,
/// which is what reading the cell unformatted gives.
pub fn date_serial(d: chrono::NaiveDate) -> i64 {
    chrono::NaiveDate::from_ymd_opt(1899, 12, 30).map_or(0, |epoch| (d - epoch).num_days())
}

/// The key text of a model row's key as a person may have typed it by hand: its dates as the
/// serial numbers Sheets turns typed dates into. `None` when the key has no date.
pub fn typed_key(key: &[Value]) -> Option<String> {
    key.iter().any(|v| matches!(v, Value::Date(_))).then(|| {
        let cells: Vec<J> = key.iter().map(|v| if let Value::Date(d) = v { J::from(date_serial(*d)) } else { cell(v) }).collect();
        key_text(&cells)
    })
}

/// The key text of a model row's key whose text parts read as numbers, as those numbers: what a
/// key typed by hand becomes (`007` typed into a cell is the number 7). Not the same key, so
/// never matched; only named in a warning. `None` when no text part reads as a number.
pub fn numeric_key(key: &[Value]) -> Option<String> {
    let mut changed = false;
    let cells: Vec<J> = key
        .iter()
        .map(|v| match v {
            Value::Text(t) => match t.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => {
                    changed = true;
                    serde_json::Number::from_f64(n).map(J::Number).unwrap_or_else(|| cell(v))
                }
                _ => cell(v),
            },
            other => cell(other),
        })
        .collect();
    changed.then(|| key_text(&cells))
}

/// Column letters for a 0-based index: 0 -> A, 25 -> Z, 26 -> AA.
pub fn column_letters(index: usize) -> String {
    let mut n = index + 1;
    let mut letters = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        letters.push(b'A' + rem as u8);
        n = (n - 1) / 26;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

/// A sheet title as an A1 prefix: always quoted, inner quotes doubled (`'Q1 ''24'!`).
pub fn sheet_prefix(title: &str) -> String {
    format!("'{}'!", title.replace('\'', "''"))
}

/// `'Tab'!B5:D5` for 0-based columns `first..=last` of 1-based row `row`.
pub fn row_range(title: &str, row: u32, first: usize, last: usize) -> String {
    let (a, b) = (column_letters(first), column_letters(last));
    if first == last {
        format!("{}{a}{row}", sheet_prefix(title))
    } else {
        format!("{}{a}{row}:{b}{row}", sheet_prefix(title))
    }
}

/// `'Tab'!C2:C`: a whole column below the header row.
pub fn column_range(title: &str, column: usize) -> String {
    let c = column_letters(column);
    format!("{}{c}2:{c}", sheet_prefix(title))
}

/// The 0-based first column of an A1 range as the API returns it (`Tab!B10:D12` -> 1).
pub fn range_first_column(range: &str) -> Option<usize> {
    let cells = range.rsplit_once('!').map(|(_, c)| c).unwrap_or(range);
    let letters: String = cells.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    if letters.is_empty() {
        return None;
    }
    Some(letters.to_ascii_uppercase().bytes().fold(0usize, |n, b| n * 26 + (b - b'A' + 1) as usize) - 1)
}

/// The 1-based first and last rows of an A1 range as the API returns it (`Tab!A10:C12`,
/// `'My tab'!A10`).
pub fn range_rows(range: &str) -> Option<(u32, u32)> {
    let cells = range.rsplit_once('!').map(|(_, c)| c).unwrap_or(range);
    let row_of = |cell: &str| cell.trim_start_matches(|c: char| c.is_ascii_alphabetic()).parse::<u32>().ok();
    match cells.split_once(':') {
        Some((a, b)) => Some((row_of(a)?, row_of(b)?)),
        None => {
            let r = row_of(cells)?;
            Some((r, r))
        }
    }
}

/// Groups sorted 0-based column indexes into runs of adjacent columns: [0,1,3] -> [0..=1, 3..=3].
pub fn column_runs(columns: &[usize]) -> Vec<(usize, usize)> {
    let mut sorted = columns.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for c in sorted {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == c => *end = c,
            _ => runs.push((c, c)),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_typed_by_hand_as_dates_and_numbers() {
        let d = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        assert_eq!(date_serial(d), 46082);
        assert_eq!(typed_key(&[Value::Date(d)]), Some("46082".to_string()));
        assert_eq!(typed_key(&[Value::Text("x".into())]), None);
        assert_eq!(numeric_key(&[Value::Text("007".into())]), Some("7".to_string()));
        assert_eq!(numeric_key(&[Value::Text("abc".into())]), None);
    }

    #[test]
    fn text_that_would_be_typed_as_a_formula_is_quoted() {
        for text in ["=HYPERLINK(\"http://x\")", "+A1", "-B2*2", "@SUM(A1)", "'quoted", "-"] {
            assert!(typed_as_formula(text, false), "{text}");
        }
        for text in ["-5", "+3.25", "1e3", "plain", "", "a=b"] {
            assert!(!typed_as_formula(text, false), "{text}");
        }
        assert!(!typed_as_formula("=1+2", true), "a sync that opts in writes formulas");
        assert!(typed_as_formula("+A1", true), "only `=` opts in");
    }

    #[test]
    fn cells_keep_numbers_exact_or_send_text() {
        assert_eq!(cell(&Value::Int(42)), J::from(42));
        assert_eq!(cell(&Value::Int(9_007_199_254_740_993)), J::from("9007199254740993"));
        assert_eq!(cell(&Value::Null), J::from(""));
        assert_eq!(cell(&Value::Bool(true)), J::Bool(true));
        assert_eq!(cell(&Value::Decimal("12.5".into())), serde_json::json!(12.5));
        let d = chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(cell(&Value::Date(d)), J::from("2024-02-29"));
    }

    #[test]
    fn keys_match_what_reads_back() {
        assert_eq!(value_key(&[Value::Int(42)]), cell_key(&serde_json::json!(42.0)));
        assert_eq!(value_key(&[Value::Text("00042".into())]), cell_key(&J::from("00042")));
        assert_ne!(value_key(&[Value::Text("a".into()), Value::Int(1)]), value_key(&[Value::Text("a1".into())]));
    }

    #[test]
    fn a1_notation() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(701), "ZZ");
        assert_eq!(column_letters(702), "AAA");
        assert_eq!(row_range("Q1 '24", 5, 1, 3), "'Q1 ''24'!B5:D5");
        assert_eq!(row_range("T", 7, 2, 2), "'T'!C7");
        assert_eq!(column_range("T", 2), "'T'!C2:C");
        assert_eq!(range_rows("Customers!A10:C12"), Some((10, 12)));
        assert_eq!(range_first_column("Customers!B10:D12"), Some(1));
        assert_eq!(range_first_column("'My tab'!AA7"), Some(26));
        assert_eq!(range_rows("'My tab'!B7"), Some((7, 7)));
        assert_eq!(column_runs(&[3, 0, 1, 5, 6]), vec![(0, 1), (3, 3), (5, 6)]);
    }
}
