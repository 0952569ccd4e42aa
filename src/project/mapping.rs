//! A sync's `[mapping]`: destination field -> what fills it. A model column (`email = "email"`),
//! a static value (`lifecyclestage = { value = "customer" }`) or a template over the model's
//! columns (`full_name = { template = "{{ first }} {{ last }}" }`).

use crate::value::Value;

/// What fills one destination field.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldSource {
    Column(String),
    /// The same value in every row.
    Value(Value),
    /// A minijinja template over the model row's columns; renders to text.
    Template(String),
}

/// When a field is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WriteMode {
    #[default]
    Always,
    /// Only where the destination has no value yet: a value someone typed in is kept.
    IfEmpty,
}

/// One destination field and what fills it.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldMapping {
    pub field: String,
    pub source: FieldSource,
    pub write: WriteMode,
    /// Line of this entry in the sync file (0 when the mapping was derived from the model).
    pub line: usize,
}

impl FieldMapping {
    /// The model column, for a field filled from one.
    pub fn column(&self) -> Option<&str> {
        match &self.source {
            FieldSource::Column(c) => Some(c),
            _ => None,
        }
    }

    /// A stable description, for the configuration fingerprint.
    pub fn describe(&self) -> String {
        let source = match &self.source {
            FieldSource::Column(c) => format!("{}={c}", self.field),
            FieldSource::Value(v) => format!("{}:value={}", self.field, v.to_json()),
            FieldSource::Template(t) => format!("{}:template={t}", self.field),
        };
        // Unchanged for an ordinary column: existing syncs keep their fingerprint.
        if self.write == WriteMode::IfEmpty {
            source + ":if_empty"
        } else {
            source
        }
    }
}

/// Reads one `[mapping]` entry; the error says what is allowed.
pub fn parse_entry(field: &str, raw: &toml::Value, line: usize) -> Result<FieldMapping, String> {
    let at = |source| Ok(FieldMapping { field: field.to_string(), source, write: WriteMode::Always, line });
    let table = match raw {
        toml::Value::String(column) if column.trim().is_empty() => return Err(format!("mapping `{field}` names an empty column")),
        toml::Value::String(column) => return at(FieldSource::Column(column.clone())),
        toml::Value::Table(t) => t,
        _ => return Err(usage(field)),
    };
    if let Some(unknown) = table.keys().find(|k| !["column", "value", "template", "write"].contains(&k.as_str())) {
        return Err(format!("mapping `{field}`: unknown key `{unknown}` ({})", usage(field)));
    }
    let write = match table.get("write") {
        None => WriteMode::Always,
        Some(toml::Value::String(w)) if w == "always" => WriteMode::Always,
        Some(toml::Value::String(w)) if w == "if_empty" => WriteMode::IfEmpty,
        Some(other) => return Err(format!("mapping `{field}`: write = {other} is not \"always\" or \"if_empty\"")),
    };
    let mapping = match (table.get("column"), table.get("value"), table.get("template")) {
        (Some(toml::Value::String(c)), None, None) if !c.trim().is_empty() => at(FieldSource::Column(c.clone())),
        (None, Some(v), None) => at(FieldSource::Value(static_value(v))),
        (None, None, Some(toml::Value::String(t))) => at(FieldSource::Template(t.clone())),
        _ => Err(usage(field)),
    };
    mapping.map(|m| FieldMapping { write, ..m })
}

fn usage(field: &str) -> String {
    format!(
        "mapping `{field}` takes one of: a column name (`{field} = \"col\"`), `{{ column = \"col\" }}`, \
         a static value (`{{ value = \"customer\" }}`) or a template (`{{ template = \"{{{{ first }}}} {{{{ last }}}}\" }}`)"
    )
}

/// A TOML value as a canonical value: the same value in every row.
fn static_value(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::Text(s.clone()),
        toml::Value::Integer(i) => Value::Int(*i),
        toml::Value::Float(f) => Value::Float(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::Text(d.to_string()),
        other => serde_json::to_value(other).map(|j| Value::json(&j)).unwrap_or_else(|_| Value::Text(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FieldMapping, String> {
        let table: toml::Table = toml::from_str(&format!("f = {text}")).unwrap();
        parse_entry("f", &table["f"], 1)
    }

    #[test]
    fn columns_values_and_templates() {
        assert_eq!(parse("\"email\"").unwrap().source, FieldSource::Column("email".into()));
        assert_eq!(parse("{ column = \"email\" }").unwrap().source, FieldSource::Column("email".into()));
        assert_eq!(parse("{ value = \"customer\" }").unwrap().source, FieldSource::Value(Value::Text("customer".into())));
        assert_eq!(parse("{ value = 3 }").unwrap().source, FieldSource::Value(Value::Int(3)));
        assert_eq!(parse("{ template = \"{{ a }}\" }").unwrap().source, FieldSource::Template("{{ a }}".into()));
        assert!(parse("{ value = 1, column = \"x\" }").unwrap_err().contains("takes one of"));
        assert!(parse("{ colum = \"x\" }").unwrap_err().contains("unknown key `colum`"));
        assert!(parse("\"  \"").unwrap_err().contains("empty column"));
        assert_eq!(parse("{ column = \"phone\", write = \"if_empty\" }").unwrap().write, WriteMode::IfEmpty);
        assert!(parse("{ column = \"phone\", write = \"sometimes\" }").unwrap_err().contains("is not \"always\" or \"if_empty\""));
    }
}
