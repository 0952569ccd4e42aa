//! Matching a sync's header (key, mapping) against the columns its model actually returned.

use crate::destinations::Target;
use crate::project::{did_you_mean, ProjectError, Sync};
use crate::source::Column;
use crate::value::{hash_values, Value};

/// Where each key column and each destination field comes from in a model row.
#[derive(Clone, Debug)]
pub struct Shape {
    pub key_columns: Vec<String>,
    pub key_idx: Vec<usize>,
    pub fields: Vec<String>,
    pub field_idx: Vec<usize>,
    /// The cursor column of a cursor sync.
    pub cursor_idx: Option<usize>,
}

impl Shape {
    pub fn new(sync: &Sync, columns: &[Column]) -> Result<Shape, ProjectError> {
        let f = &sync.file;
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let find = |col: &str, line: usize, what: &str| {
            names.iter().position(|n| *n == col).ok_or_else(|| {
                ProjectError::at(&f.path, line, format!("{what} `{col}` is not a column of the model (its columns: {})", names.join(", ")))
                    .with_hint(did_you_mean(col, names.iter().copied()).map(|s| format!("did you mean `{s}`?")))
            })
        };
        let key_idx =
            f.primary_key.value.iter().map(|k| find(k, f.primary_key.line, "primary_key column")).collect::<Result<Vec<_>, _>>()?;
        let (fields, field_idx) = if f.mapping.is_empty() {
            (names.iter().map(|s| s.to_string()).collect(), (0..names.len()).collect())
        } else {
            let idx = f.mapping.iter().map(|m| find(&m.column, m.line, "mapped column")).collect::<Result<Vec<_>, _>>()?;
            (f.mapping.iter().map(|m| m.field.clone()).collect(), idx)
        };
        let cursor_idx = match &f.cursor {
            None => None,
            Some(c) => {
                let i = find(&c.value, c.line, "cursor column")?;
                if !columns[i].cursor_ok {
                    return Err(ProjectError::at(
                        &f.path,
                        c.line,
                        format!(
                            "cursor column `{}` has type {}: a cursor must be a number, date or timestamp that grows whenever the row \
                             changes (cast it in the model if it is stored as text)",
                            c.value, columns[i].type_name
                        ),
                    ));
                }
                Some(i)
            }
        };
        Ok(Shape { key_columns: f.primary_key.value.clone(), key_idx, fields, field_idx, cursor_idx })
    }

    pub fn target(&self, sync: &Sync, run_id: &str) -> Target {
        let key_fields = self.key_idx.iter().map(|k| self.field_idx.iter().position(|f| f == k)).collect();
        Target {
            sync: sync.name().to_string(),
            run_id: run_id.to_string(),
            mode: sync.file.mode,
            settings: sync.file.target.clone(),
            key_columns: self.key_columns.clone(),
            fields: self.fields.clone(),
            key_fields,
        }
    }
}

/// The fingerprint of everything in a sync's definition that shapes what is sent: mode, key,
/// mapping, target and destination. Mixed into every row fingerprint, so a change to any of
/// these makes every row "changed" and re-sends it (a full resync that survives a kill).
pub fn config_fingerprint(sync: &Sync, destination_kind: &str) -> String {
    let f = &sync.file;
    let mapping: Vec<String> = f.mapping.iter().map(|m| format!("{}={}", m.field, m.column)).collect();
    let parts = [
        f.mode.as_str().to_string(),
        f.primary_key.value.join("\u{1f}"),
        mapping.join("\u{1f}"),
        f.target.to_string(),
        sync.destination.clone(),
        destination_kind.to_string(),
    ];
    let values: Vec<Value> = parts.into_iter().map(Value::Text).collect();
    format!("{:032x}", hash_values(&values))
}
