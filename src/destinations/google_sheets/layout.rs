//! Where things are in a tab: which column holds each field (header alignment) and which row
//! holds each key (the key index). Rebuilt from the sheet at the start of every run, because
//! people insert, sort and delete rows by hand. No I/O.

use std::collections::HashMap;

use serde_json::Value as J;

use super::encoding::{cell_key, key_text, numeric_key, typed_key, value_key};
use crate::value::Value;

/// Row 1 matched against the sync's fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// 0-based column of each field, in mapping order.
    pub field_columns: Vec<usize>,
    /// Fields row 1 lacks, with the column each goes to: after the last used header, in
    /// mapping order. Existing headers are never moved or renamed.
    pub missing: Vec<(usize, String)>,
}

impl Layout {
    pub fn align(row1: &[J], fields: &[String]) -> Layout {
        let headers: Vec<String> = row1.iter().map(|c| cell_key(c).trim().to_string()).collect();
        let mut next = headers.len();
        let mut missing = Vec::new();
        let mut used = vec![false; headers.len()];
        let field_columns = fields
            .iter()
            .map(|field| match headers.iter().enumerate().position(|(c, h)| h == field.trim() && !used[c]) {
                Some(col) => {
                    used[col] = true;
                    col
                }
                None => {
                    let col = next;
                    next += 1;
                    missing.push((col, field.clone()));
                    col
                }
            })
            .collect();
        Layout { field_columns, missing }
    }

    /// The rightmost column a field uses (0-based).
    pub fn last_column(&self) -> usize {
        self.field_columns.iter().copied().max().unwrap_or(0)
    }
}

/// Key text -> for each of `fields` fields, whether its cell holds a value, from the key
/// columns and the columns of the fields listed in `which` (read from row 2 down).
pub fn filled_by_key(key_columns: &[Vec<J>], values: &[Vec<J>], which: &[usize], fields: usize) -> HashMap<String, Vec<bool>> {
    let height = key_columns.iter().map(Vec::len).max().unwrap_or(0);
    let empty = J::String(String::new());
    let mut out = HashMap::new();
    for i in 0..height {
        let cells: Vec<&J> = key_columns.iter().map(|c| c.get(i).unwrap_or(&empty)).collect();
        if cells.iter().all(|c| cell_key(c).is_empty()) {
            continue;
        }
        let mut filled = vec![false; fields];
        for (column, &f) in values.iter().zip(which) {
            filled[f] = column.get(i).is_some_and(|c| !cell_key(c).is_empty());
        }
        // The first row holding a key is the one sluice updates.
        out.entry(key_text(cells)).or_insert(filled);
    }
    out
}

/// Key text -> the 1-based rows holding it, in sheet order.
#[derive(Debug, Default)]
pub struct KeyIndex {
    rows: HashMap<String, Vec<u32>>,
}

impl KeyIndex {
    /// From the key columns as read (one list of cells per key column, starting at row 2).
    /// Rows whose key cells are all empty hold no key.
    pub fn from_columns(columns: &[Vec<J>]) -> KeyIndex {
        let height = columns.iter().map(Vec::len).max().unwrap_or(0);
        let empty = J::String(String::new());
        let mut rows: HashMap<String, Vec<u32>> = HashMap::new();
        for i in 0..height {
            let cells: Vec<&J> = columns.iter().map(|c| c.get(i).unwrap_or(&empty)).collect();
            if cells.iter().all(|c| cell_key(c).is_empty()) {
                continue;
            }
            rows.entry(key_text(cells)).or_default().push(i as u32 + 2);
        }
        KeyIndex { rows }
    }

    pub fn rows(&self, key: &str) -> &[u32] {
        self.rows.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn contains(&self, key: &str) -> bool {
        self.rows.contains_key(key)
    }

    /// The index's text for a model row's key: as sluice writes it, or, when only that is in the
    /// sheet, as a person typing it would have left it (a date typed into a key cell is stored
    /// as its serial number: the same date, the same row).
    pub fn key_of(&self, key: &[Value]) -> String {
        let written = value_key(key);
        if self.rows.contains_key(&written) {
            return written;
        }
        typed_key(key).filter(|typed| self.rows.contains_key(typed)).unwrap_or(written)
    }

    /// A row holding `key`'s text parts as numbers (`7` for the key "007"): a key someone typed
    /// that Sheets turned into a number. Not the same key: the row and its cell, for a warning.
    pub fn as_number(&self, key: &[Value]) -> Option<(u32, String)> {
        let number = numeric_key(key)?;
        self.rows.get(&number).and_then(|rows| rows.first()).map(|&r| (r, number))
    }

    pub fn insert(&mut self, key: String, row: u32) {
        self.rows.entry(key).or_default().push(row);
    }

    /// Keys found in more than one row, with their rows.
    pub fn duplicates(&self) -> impl Iterator<Item = (&str, &[u32])> {
        self.rows.iter().filter(|(_, r)| r.len() > 1).map(|(k, r)| (k.as_str(), r.as_slice()))
    }

    /// Accounts for `n` rows inserted at row `at` (1-based): rows from there on move down.
    pub fn insert_rows(&mut self, at: u32, n: u32) {
        for rows in self.rows.values_mut() {
            for r in rows.iter_mut().filter(|r| **r >= at) {
                *r += n;
            }
        }
    }

    /// Accounts for rows deleted from the sheet: they go, and the rows below move up.
    pub fn remove_rows(&mut self, deleted: &[u32]) {
        let mut deleted = deleted.to_vec();
        deleted.sort_unstable();
        deleted.dedup();
        self.rows.retain(|_, rows| {
            rows.retain(|r| deleted.binary_search(r).is_err());
            for r in rows.iter_mut() {
                *r -= deleted.partition_point(|d| d < r) as u32;
            }
            !rows.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn existing_headers_stay_and_missing_ones_go_after_the_last() {
        let row1 = vec![json!("Email"), json!("Notes"), json!("Customer ID")];
        let layout = Layout::align(&row1, &fields(&["Customer ID", "Email", "LTV", "Plan"]));
        assert_eq!(layout.field_columns, vec![2, 0, 3, 4]);
        assert_eq!(layout.missing, vec![(3, "LTV".to_string()), (4, "Plan".to_string())]);
        assert_eq!(Layout::align(&[], &fields(&["a", "b"])).missing.len(), 2);
    }

    #[test]
    fn key_index_finds_rows_and_follows_deletions() {
        let col = vec![json!(7), json!(""), json!("x"), json!(7.0), json!(9)];
        let mut idx = KeyIndex::from_columns(&[col]);
        assert_eq!(idx.rows("7"), &[2, 5]);
        assert_eq!(idx.rows("x"), &[4]);
        assert!(!idx.contains(""));
        assert_eq!(idx.duplicates().count(), 1);
        idx.remove_rows(&[2, 4]);
        assert_eq!(idx.rows("7"), &[3]);
        idx.insert_rows(3, 2);
        assert_eq!((idx.rows("7"), idx.rows("9")), (&[5][..], &[6][..]));
        idx.remove_rows(&[3, 4]);
        assert_eq!(idx.rows("9"), &[4]);
        assert!(!idx.contains("x"));
    }

    #[test]
    fn composite_keys_read_across_columns() {
        let idx = KeyIndex::from_columns(&[vec![json!("eu"), json!("us")], vec![json!(1), json!(1)]]);
        assert_eq!(idx.rows(&key_text([&json!("us"), &json!(1)])), &[3]);
    }
}
