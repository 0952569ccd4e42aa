//! The canonical type of a model column: which [`Value`] variant its cells hold. Sources say it
//! from their own column types; a destination that creates its own storage (a database table)
//! picks column types from it.

use super::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueType {
    Bool,
    Int,
    Float,
    /// Exact numerics, with the source's precision and scale when it has them (Postgres'
    /// `numeric` without a modifier has neither; DuckDB's `DECIMAL(18,3)` has both). Cells may
    /// be `Value::Int` too (DuckDB's HUGEINT in range).
    Decimal {
        precision: Option<u32>,
        scale: Option<u32>,
    },
    Text,
    Bytes,
    Date,
    Time,
    Timestamp,
    Uuid,
    Json,
    Array(Box<ValueType>),
    /// The source's type says nothing sluice can use (a NULL literal, a union): a destination
    /// that must declare a type asks for a cast in the model.
    Unknown,
}

impl ValueType {
    /// The type of a static value (a mapping's constant).
    pub fn of(value: &Value) -> ValueType {
        match value {
            Value::Null => ValueType::Unknown,
            Value::Bool(_) => ValueType::Bool,
            Value::Int(_) => ValueType::Int,
            Value::Float(_) => ValueType::Float,
            Value::Decimal(_) => ValueType::Decimal { precision: None, scale: None },
            Value::Text(_) => ValueType::Text,
            Value::Bytes(_) => ValueType::Bytes,
            Value::Date(_) => ValueType::Date,
            Value::Time(_) => ValueType::Time,
            Value::Timestamp(_) => ValueType::Timestamp,
            Value::Uuid(_) => ValueType::Uuid,
            Value::Json(_) => ValueType::Json,
            Value::Array(items) => {
                ValueType::Array(Box::new(items.iter().find(|v| !v.is_null()).map_or(ValueType::Unknown, ValueType::of)))
            }
        }
    }

    /// A short name for messages: `decimal(18,3)`, `array of int`.
    pub fn name(&self) -> String {
        match self {
            ValueType::Bool => "boolean".into(),
            ValueType::Int => "integer".into(),
            ValueType::Float => "floating point".into(),
            ValueType::Decimal { precision: Some(p), scale: Some(s) } => format!("decimal({p},{s})"),
            ValueType::Decimal { .. } => "decimal".into(),
            ValueType::Text => "text".into(),
            ValueType::Bytes => "bytes".into(),
            ValueType::Date => "date".into(),
            ValueType::Time => "time".into(),
            ValueType::Timestamp => "timestamp".into(),
            ValueType::Uuid => "uuid".into(),
            ValueType::Json => "json".into(),
            ValueType::Array(e) => format!("array of {}", e.name()),
            ValueType::Unknown => "unknown".into(),
        }
    }
}
