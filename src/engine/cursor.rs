//! Cursor-incremental syncs (`cursor = "updated_at"` in the header): a run reads only the
//! model's rows at or past the stored high-water mark, and the mark moves on only after a run that
//! committed every row it read. Rows read are still diffed, so a row touched but unchanged
//! sends nothing; rows not read are not "removed" (mirror mode is refused with a cursor).
//!
//! The mark is stored with a *basis*: a fingerprint of the sync's definition, model and cursor
//! column. When the basis changes (the model was edited, say), the next run reads everything
//! once, because the old mark says nothing about what the new model returns.

use std::cmp::Ordering;

use bigdecimal::BigDecimal;
use serde::Serialize;

use super::RunOptions;
use crate::project::SyncSpec;
use crate::source::After;
use crate::state::StoredCursor;
use crate::value::{hash_values, Value};

/// What a run did with its cursor, for the report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CursorReport {
    pub column: String,
    /// The mark this run read past; `None` when it read the whole model.
    pub after: Option<String>,
    /// Why it read the whole model, when it did.
    pub full_read: Option<&'static str>,
    /// The mark the next run reads past, once this run has committed (`None`: unchanged or none).
    pub next: Option<String>,
}

/// The cursor work of one run: the read it asks for and the largest value it has seen.
pub struct RunCursor {
    pub basis: String,
    pub after: Option<After>,
    /// The read decided, for the run's report.
    pub report: CursorReport,
    /// The stored mark, kept when this run reads nothing new.
    stored: Option<Value>,
    max: Option<Value>,
}

impl RunCursor {
    /// Decides the read: from the stored mark on, or the whole model (first run, `--full-resync`,
    /// `sluice retry`, a rejected row due for a retry, a changed definition). `None` for a sync
    /// without a cursor.
    /// `column`: the sync's `cursor`, or for a sync over a stream the stream's event order.
    pub fn plan(
        sync: &SyncSpec,
        column: Option<String>,
        config_fp: &str,
        stored: Option<StoredCursor>,
        opts: &RunOptions,
        hold_ended: bool,
    ) -> Option<RunCursor> {
        let column = column?;
        let basis = basis(sync, &column, config_fp);
        let stored = stored.filter(|s| s.basis == basis).map(|s| s.value);
        let full_read = if opts.full_resync {
            Some("--full-resync")
        } else if opts.retry_rejected {
            Some("retrying rejected rows")
        } else if hold_ended {
            Some("a rejected row's retry_rejected_after ran out")
        } else if stored.is_none() {
            Some("no cursor stored yet, or the sync's definition or model changed")
        } else {
            None
        };
        let after = match (full_read, &stored) {
            (None, Some(value)) => Some(After { column: column.clone(), value: value.clone() }),
            _ => None,
        };
        let report = CursorReport { after: after.as_ref().map(|a| a.value.to_text()), column, full_read, next: None };
        Some(RunCursor { basis, after, report, stored, max: None })
    }

    /// Notes a row's cursor value. NULLs and NaNs are skipped: neither compares as larger, and
    /// a NaN mark would hide every later row.
    pub fn see(&mut self, value: &Value) {
        if value.is_null() || matches!(value, Value::Float(f) if f.is_nan()) {
            return;
        }
        if self.max.as_ref().is_none_or(|m| compare(value, m) == Some(Ordering::Greater)) {
            self.max = Some(value.clone());
        }
    }

    /// The mark to store after the run committed everything it read: the largest value seen,
    /// or, when an incremental read returned nothing, the mark it read past.
    pub fn next(&self) -> Option<StoredCursor> {
        let value = self.max.clone().or_else(|| self.after.as_ref().and(self.stored.clone()))?;
        Some(StoredCursor { basis: self.basis.clone(), value })
    }
}

/// What a stored mark is valid for: the sync's definition, its model and the cursor column.
fn basis(sync: &SyncSpec, column: &str, config_fp: &str) -> String {
    let parts = [Value::Text(config_fp.to_string()), Value::Text(sync.file.model.clone()), Value::Text(column.to_string())];
    format!("{:032x}", hash_values(&parts))
}

/// The order of two cursor values of the kinds a cursor column can hold; `None` for values
/// that do not compare (different kinds, or kinds a cursor cannot be).
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    let decimal = |v: &Value| -> Option<BigDecimal> {
        match v {
            Value::Int(i) => Some(BigDecimal::from(*i)),
            Value::Decimal(d) => d.parse().ok(),
            _ => None,
        }
    };
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::Timestamp(x), Value::Timestamp(y)) => Some(x.cmp(y)),
        (Value::Int(_) | Value::Decimal(_), Value::Int(_) | Value::Decimal(_)) => Some(decimal(a)?.cmp(&decimal(b)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_compare_by_value_not_by_text() {
        let d = |s: &str| Value::Decimal(s.into());
        assert_eq!(compare(&d("10"), &d("9.5")), Some(Ordering::Greater));
        assert_eq!(compare(&d("-1"), &Value::Int(0)), Some(Ordering::Less));
        assert_eq!(compare(&Value::Int(3), &Value::Text("4".into())), None);
    }
}
