//! Matching a sync's header (key, mapping) against the columns its model actually returned,
//! and against what its destination can do.

use std::sync::Arc;

use crate::destinations::{Capabilities, Target};
use crate::project::{did_you_mean, FieldSource, Nulls, OnRemove, ProjectError, SyncSpec, WriteMode};
use crate::source::Column;
use crate::template::{self, Templates};
use crate::value::{hash_values, Value, ValueType};

/// A field not read from a column.
#[derive(Clone, Debug)]
enum Computed {
    Value(Value),
    /// The name of its compiled template.
    Template(String),
}

/// Where each key column and each destination field comes from in a model row.
#[derive(Clone, Debug)]
pub struct Shape {
    pub key_columns: Vec<String>,
    pub key_idx: Vec<usize>,
    pub fields: Vec<String>,
    /// For each field filled from a column, its index in the row (`usize::MAX` for a computed
    /// field: see [`Shape::computed`]).
    pub field_idx: Vec<usize>,
    /// Static values and templates, for the fields not filled from a column.
    computed: Vec<(usize, Computed)>,
    templates: Arc<Templates>,
    column_names: Vec<String>,
    /// The cursor column of a cursor sync.
    pub cursor_idx: Option<usize>,
    /// The key columns (indexes into `key_idx`) that are floating point: their cells are
    /// checked for NaN and infinities, which cannot be keys.
    pub float_keys: Vec<usize>,
    /// The canonical type of each key column and each field (a template's is text).
    key_types: Vec<ValueType>,
    field_types: Vec<ValueType>,
}

impl Shape {
    pub fn new(sync: &SyncSpec, columns: &[Column]) -> Result<Shape, ProjectError> {
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
        let mut computed = Vec::new();
        let mut templates = Templates::new();
        let (fields, field_idx): (Vec<String>, Vec<usize>) = if f.mapping.is_empty() {
            (names.iter().map(|s| s.to_string()).collect(), (0..names.len()).collect())
        } else {
            let mut idx = Vec::new();
            for (j, m) in f.mapping.iter().enumerate() {
                idx.push(match &m.source {
                    FieldSource::Column(c) => find(c, m.line, "mapped column")?,
                    FieldSource::Value(v) => {
                        computed.push((j, Computed::Value(v.clone())));
                        usize::MAX
                    }
                    FieldSource::Template(t) => {
                        let name = format!("mapping:{}", m.field);
                        templates
                            .add(&name, t, &names)
                            .map_err(|e| ProjectError::at(&f.path, m.line, format!("mapping `{}`: {e}", m.field)))?;
                        computed.push((j, Computed::Template(name)));
                        usize::MAX
                    }
                });
            }
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
        let field_types = (0..fields.len())
            .map(|j| match computed.iter().find(|(c, _)| *c == j) {
                Some((_, Computed::Value(v))) => ValueType::of(v),
                Some((_, Computed::Template(_))) => ValueType::Text,
                None => columns[field_idx[j]].value_type.clone(),
            })
            .collect();
        Ok(Shape {
            key_types: key_idx.iter().map(|&i| columns[i].value_type.clone()).collect(),
            field_types,
            key_columns: f.primary_key.value.clone(),
            key_idx: key_idx.clone(),
            fields,
            field_idx,
            computed,
            templates: Arc::new(templates),
            column_names: names.iter().map(|n| n.to_string()).collect(),
            cursor_idx,
            float_keys: (0..key_idx.len()).filter(|&k| columns[key_idx[k]].floating).collect(),
        })
    }

    /// The primary key values of a model row, copied (for messages and the rows sent).
    pub fn key_of(&self, row: &[Value]) -> Vec<Value> {
        self.key_idx.iter().map(|&i| row[i].clone()).collect()
    }

    /// Whether some field is a static value or a template: then the fields of a row come from
    /// [`Shape::field_values`], not straight from its columns.
    pub fn computed(&self) -> bool {
        !self.computed.is_empty()
    }

    /// The field values of a model row, static values and templates filled in.
    pub fn field_values(&self, row: &[Value]) -> Result<Vec<Value>, String> {
        let mut out: Vec<Value> = self.field_idx.iter().map(|&i| row.get(i).cloned().unwrap_or(Value::Null)).collect();
        let mut context = None;
        for (j, c) in &self.computed {
            out[*j] = match c {
                Computed::Value(v) => v.clone(),
                Computed::Template(name) => {
                    let ctx = context.get_or_insert_with(|| template::context(&template::row_context(&self.column_names, row)));
                    let text =
                        self.templates.render(name, ctx).map_err(|e| format!("mapping `{}`: the template failed: {e}", self.fields[*j]))?;
                    // Nothing rendered is a NULL, so `nulls = "skip"` applies to it too.
                    if text.is_empty() {
                        Value::Null
                    } else {
                        Value::Text(text)
                    }
                }
            };
        }
        Ok(out)
    }

    pub fn target(&self, sync: &SyncSpec, run_id: &str) -> Target {
        let key_fields = self.key_idx.iter().map(|k| self.field_idx.iter().position(|f| f == k)).collect();
        Target {
            sync: sync.name().to_string(),
            run_id: run_id.to_string(),
            mode: sync.file.mode,
            settings: sync.file.target.clone(),
            key_columns: self.key_columns.clone(),
            fields: self.fields.clone(),
            key_fields,
            key_types: self.key_types.clone(),
            field_types: self.field_types.clone(),
            skip_nulls: sync.file.nulls == Nulls::Skip,
            if_empty: if sync.file.mapping.is_empty() {
                vec![false; self.fields.len()]
            } else {
                sync.file.mapping.iter().map(|m| m.write == WriteMode::IfEmpty).collect()
            },
        }
    }
}

/// The fingerprint of everything in a sync's definition that shapes what is sent: mode, key,
/// mapping, target and destination. Mixed into every row fingerprint, so a change to any of
/// these makes every row "changed" and re-sends it (a full resync that survives a kill).
/// `presentation` are `[target]` keys the destination says only change how rows look.
/// `identity` is the destination's identity hash ([`identity_hash`]) when it differs from the
/// first one recorded for the sync: left out otherwise, so fingerprints made before identities
/// were kept stay as they were.
pub fn config_fingerprint(sync: &SyncSpec, destination_kind: &str, presentation: &[&str], identity: Option<&str>) -> String {
    let f = &sync.file;
    let mapping: Vec<String> = f.mapping.iter().map(|m| m.describe()).collect();
    let parts = [
        f.mode.as_str().to_string(),
        f.primary_key.value.join("\u{1f}"),
        mapping.join("\u{1f}"),
        // The same text as ever when nothing is left out: existing syncs keep their fingerprint.
        f.target
            .iter()
            .filter(|(k, _)| !presentation.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<toml::Table>()
            .to_string(),
        sync.destination.clone(),
        destination_kind.to_string(),
    ];
    let mut values: Vec<Value> = parts.into_iter().map(Value::Text).collect();
    values.extend(identity.map(|i| Value::Text(i.to_string())));
    // Only when set, so local syncs keep their fingerprint: switching is a full resync.
    if f.diff.value == crate::project::DiffMode::Warehouse {
        values.push(Value::Text("diff=warehouse".into()));
    }
    format!("{:032x}", hash_values(&values))
}

/// What the store keeps of a destination's identity: a hash, since it may name an endpoint's
/// path (which some services make the credential).
pub fn identity_hash(identity: &str) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(identity.as_bytes()))
}

/// Whether the destination can do what the sync asks (its mode, `write = "if_empty"`,
/// `on_remove = "clear"`); the error points at the sync file. Used by `run` and `check` alike.
pub fn check_capabilities(sync: &SyncSpec, caps: &Capabilities) -> Result<(), ProjectError> {
    let f = &sync.file;
    let at = |line: usize, message: String| Err(ProjectError::at(&f.path, line, message));
    if !caps.modes.contains(&f.mode) {
        return at(f.header_line, format!("destination `{}` does not support mode `{}`", sync.destination, f.mode.as_str()));
    }
    if let Some(m) = f.mapping.iter().find(|m| m.write == WriteMode::IfEmpty).filter(|_| !caps.if_empty) {
        return at(
            m.line,
            format!(
                "mapping `{}`: destination `{}` cannot read the values it holds, so it cannot honour write = \"if_empty\" \
                 (file, google_sheets, hubspot and salesforce can)",
                m.field, sync.destination
            ),
        );
    }
    if f.on_remove == OnRemove::Clear && !caps.clear {
        return at(
            f.header_line,
            format!("destination `{}` cannot clear records: on_remove = \"clear\" needs one that can", sync.destination),
        );
    }
    Ok(())
}
