//! The lines on the program's stdin and stdout.

use serde_json::{json, Value as J};

use crate::destinations::results::RowResult;
use crate::destinations::{RowOp, Target};

/// One stdin line per row: `{"op", "key", "fields", "destination_id"?}` and a newline.
pub fn row_line(target: &Target, op: &RowOp) -> Vec<u8> {
    let fields: serde_json::Map<String, J> = target.fields.iter().cloned().zip(op.fields.iter().map(|v| v.to_json())).collect();
    let mut row = json!({ "op": op.op.as_str(), "key": op.key_json(target), "fields": fields });
    if let Some(id) = &op.destination_id {
        row["destination_id"] = J::String(id.clone());
    }
    let mut line = row.to_string().into_bytes();
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
