//! The lines on the program's stdin and stdout.

use crate::destinations::results::{RowJson, RowResult};
use crate::destinations::{RowOp, Target};

/// One stdin line per row: `{"op", "key", "fields", "destination_id"?}` and a newline.
pub fn row_line(target: &Target, op: &RowOp) -> Vec<u8> {
    // Strings, numbers and maps with string keys: serialising them cannot fail.
    let mut line = serde_json::to_vec(&RowJson { target, op }).unwrap_or_default();
    line.push(b'\n');
    line
}

/// One stdout line: a row's result, or why the line is not one.
pub fn result_line(line: &str) -> Result<RowResult, String> {
    serde_json::from_str(line).map_err(|e| {
        let shown: String = line.chars().take(120).collect();
        format!("a stdout line is not a result ({e}): {shown}")
    })
}
