//! The per-row JSON shapes the webhook and the command destination share: a row as sent,
//! `{"op", "key", "fields", "destination_id"?}` ([`RowJson`]), and a row's result as the receiver
//! answers, `{"key", "ok", "error"?, "retry"?, "destination_id"?}` ([`RowResult`]).

use std::collections::HashMap;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value as J;

use crate::destinations::{RowOp, RowOutcome, Target};
use crate::value::{AsJson, Value};

/// One row as sent, serialised straight from the row: no JSON tree is built per row (a full
/// sync sends millions).
pub struct RowJson<'a> {
    pub target: &'a Target,
    pub op: &'a RowOp,
}

impl Serialize for RowJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("op", self.op.op.as_str())?;
        map.serialize_entry("key", &Named(&self.target.key_columns, &self.op.key))?;
        map.serialize_entry("fields", &Fields(self.target, self.op))?;
        if let Some(id) = &self.op.destination_id {
            map.serialize_entry("destination_id", id)?;
        }
        map.end()
    }
}

/// A batch of rows as a JSON array.
pub struct RowsJson<'a> {
    pub target: &'a Target,
    pub batch: &'a [RowOp],
}

impl Serialize for RowsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.batch.len()))?;
        for op in self.batch {
            seq.serialize_element(&RowJson { target: self.target, op })?;
        }
        seq.end()
    }
}

/// The fields a row writes as a JSON object, in order: under `nulls = "skip"` a NULL field is
/// left out, so a receiver that merges leaves its value alone.
struct Fields<'a>(&'a Target, &'a RowOp);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (target, op) = (self.0, self.1);
        let mut map = s.serialize_map(None)?;
        for (j, (name, value)) in target.fields.iter().zip(&op.fields).enumerate() {
            if target.writes(op, j) {
                map.serialize_entry(name, &AsJson(value))?;
            }
        }
        map.end()
    }
}

/// Names and values as a JSON object, in order.
struct Named<'a>(&'a [String], &'a [Value]);

impl Serialize for Named<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.1.len()))?;
        for (name, value) in self.0.iter().zip(self.1) {
            map.serialize_entry(name, &AsJson(value))?;
        }
        map.end()
    }
}

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
    pub fn outcome(self, op: &RowOp) -> RowOutcome {
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

/// Each row's [`key_text`] -> its position in the batch.
pub fn key_index(target: &Target, batch: &[RowOp]) -> HashMap<String, usize> {
    batch.iter().enumerate().map(|(i, op)| (key_text(target, &op.key_json(target)), i)).collect()
}

/// Matches results to the batch's rows by key: one outcome per row, `None` where no result
/// names the row (the caller decides what that means).
pub fn match_results(target: &Target, batch: &[RowOp], results: impl IntoIterator<Item = RowResult>) -> Vec<Option<RowOutcome>> {
    let index = key_index(target, batch);
    let mut out: Vec<Option<RowOutcome>> = vec![None; batch.len()];
    for result in results {
        if let Some(&i) = index.get(&key_text(target, &result.key)) {
            out[i] = Some(result.outcome(&batch[i]));
        }
    }
    out
}
