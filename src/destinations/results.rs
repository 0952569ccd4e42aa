//! Per-row results as receivers write them: the webhook's `results` array and the command
//! destination's stdout lines share this shape, `{"key", "ok", "error"?, "retry"?,
//! "destination_id"?}`, and this matching.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value as J;

use crate::destinations::{RowOp, RowOutcome, Target};

#[derive(Debug, Deserialize)]
pub struct RowResult {
    pub key: J,
    pub ok: bool,
    #[serde(default)]
    pub error: Option<String>,
    /// A failed row is a data problem (rejected) unless the receiver says `"retry": true`.
    #[serde(default)]
    pub retry: Option<bool>,
    #[serde(default)]
    pub destination_id: Option<String>,
}

impl RowResult {
    fn outcome(self, op: &RowOp) -> RowOutcome {
        if self.ok {
            return RowOutcome::Written { destination_id: self.destination_id.or_else(|| op.destination_id.clone()) };
        }
        let reason = self.error.unwrap_or_else(|| "the receiver reported a failure without a reason".into());
        if self.retry == Some(true) {
            RowOutcome::Retryable(reason)
        } else {
            RowOutcome::Rejected(reason)
        }
    }
}

/// A key object as text, its columns in key order, so a receiver may echo the key's fields in
/// any order.
pub fn key_text(target: &Target, key: &J) -> String {
    let values: Vec<&J> = target.key_columns.iter().map(|c| key.get(c).unwrap_or(&J::Null)).collect();
    serde_json::to_string(&values).unwrap_or_default()
}

/// Matches results to the batch's rows by key: one outcome per row, `None` where no result
/// names the row (the caller decides what that means).
pub fn match_results(target: &Target, batch: &[RowOp], results: impl IntoIterator<Item = RowResult>) -> Vec<Option<RowOutcome>> {
    let mut index: HashMap<String, usize> = HashMap::with_capacity(batch.len());
    for (i, op) in batch.iter().enumerate() {
        index.insert(key_text(target, &op.key_json(target)), i);
    }
    let mut out: Vec<Option<RowOutcome>> = vec![None; batch.len()];
    for result in results {
        if let Some(&i) = index.get(&key_text(target, &result.key)) {
            out[i] = Some(result.outcome(&batch[i]));
        }
    }
    out
}
