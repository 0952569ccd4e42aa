//! A model value as the column it goes to holds it, checked first: a value the column would
//! round, cut or refuse is that row's rejection with the reason, decided before any statement
//! (a database rounds a decimal to the column's scale without a word). No I/O.

use chrono::{NaiveTime, Timelike};

use super::dialect::{Dialect, Kind};
use crate::value::Value;

/// A cell ready to bind (MySQL) or to put in the batch's JSON document (Postgres).
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    /// A Postgres array's items.
    List(Vec<Cell>),
}

impl Cell {
    /// The cell in the Postgres batch document: text the column's type reads (`::numeric`,
    /// `::timestamptz`), an array's items as a JSON array.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Cell::Null => J::Null,
            Cell::Bool(b) => J::String(b.to_string()),
            Cell::Int(i) => J::String(i.to_string()),
            Cell::Float(f) => J::String(float_text(*f)),
            Cell::Text(s) => J::String(s.clone()),
            Cell::Bytes(b) => J::String(format!("\\x{}", hex::encode(b))),
            Cell::List(items) => J::Array(items.iter().map(Cell::to_json).collect()),
        }
    }
}

/// Postgres reads `NaN`, `Infinity`, `-Infinity`; Rust's `{}` of a finite double is its exact
/// shortest form.
fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        format!("{f}")
    }
}

/// `value` for a column of `kind` (declared `declared`), or why it does not fit.
pub fn encode(dialect: Dialect, value: &Value, kind: &Kind, declared: &str) -> Result<Cell, String> {
    let mismatch = || format!("a {} value does not go into a column of type {declared}", type_word(value));
    Ok(match (value, kind) {
        (Value::Null, _) => Cell::Null,
        (Value::Bool(b), Kind::Bool) => Cell::Bool(*b),
        (Value::Int(i), Kind::Int) => Cell::Int(*i),
        (Value::Int(i), Kind::Decimal { precision, scale }) => {
            fits_decimal(&i.to_string(), *precision, *scale, declared)?;
            Cell::Text(i.to_string())
        }
        (Value::Float(f), Kind::Float) => {
            if dialect == Dialect::Mysql && !f.is_finite() {
                return Err(format!("{f} cannot be stored: MySQL's DOUBLE holds no NaN or infinity"));
            }
            Cell::Float(*f)
        }
        (Value::Decimal(d), Kind::Decimal { precision, scale }) => {
            fits_decimal(d, *precision, *scale, declared)?;
            Cell::Text(d.clone())
        }
        (Value::Decimal(d), Kind::Int) if !d.contains('.') => Cell::Text(d.clone()),
        (Value::Text(s), Kind::Text) => Cell::Text(text(dialect, s)?),
        (Value::Bytes(b), Kind::Bytes) => Cell::Bytes(b.clone()),
        (Value::Date(d), Kind::Date) => Cell::Text(d.format("%Y-%m-%d").to_string()),
        (Value::Time(t), Kind::Time { digits }) => {
            fits_fraction(t.nanosecond(), *digits, declared)?;
            Cell::Text(time_text(t))
        }
        (Value::Timestamp(ts), Kind::Timestamp { digits, zoned }) => {
            fits_fraction(ts.timestamp_subsec_nanos(), *digits, declared)?;
            let wall = format!("{} {}", ts.format("%Y-%m-%d"), time_text(&ts.time()));
            // Postgres reads an instant with its offset; MySQL's session runs in UTC (sqlx sets
            // time_zone '+00:00'), so TIMESTAMP columns convert from UTC wall-clock time.
            Cell::Text(if *zoned && dialect == Dialect::Postgres { format!("{wall}+00") } else { wall })
        }
        (Value::Uuid(u), Kind::Uuid | Kind::Text) => Cell::Text(u.hyphenated().to_string()),
        (Value::Json(j), Kind::Json) => Cell::Text(text(dialect, j)?),
        (Value::Json(j), Kind::Text) if dialect == Dialect::Mysql => Cell::Text(j.clone()),
        (Value::Array(_), Kind::Json | Kind::Text) => Cell::Text(text(dialect, &value.to_json().to_string())?),
        (Value::Array(items), Kind::Array(item)) => {
            Cell::List(items.iter().map(|v| encode(dialect, v, item, declared)).collect::<Result<_, _>>()?)
        }
        _ => return Err(mismatch()),
    })
}

fn type_word(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Bool(_) => "boolean",
        Value::Int(_) => "integer",
        Value::Float(_) => "floating-point",
        Value::Decimal(_) => "decimal",
        Value::Text(_) => "text",
        Value::Bytes(_) => "bytes",
        Value::Date(_) => "date",
        Value::Time(_) => "time",
        Value::Timestamp(_) => "timestamp",
        Value::Uuid(_) => "uuid",
        Value::Json(_) => "JSON",
        Value::Array(_) => "array",
    }
}

/// Postgres text holds no NUL character (it would fail the whole batch's statement).
fn text(dialect: Dialect, s: &str) -> Result<String, String> {
    if dialect == Dialect::Postgres && s.contains('\0') {
        return Err("the text holds a NUL character (\\0), which Postgres text cannot store".into());
    }
    Ok(s.to_string())
}

/// `HH:MM:SS[.fffffffff]`, the fraction only as long as it needs to be.
fn time_text(t: &NaiveTime) -> String {
    let base = t.format("%H:%M:%S").to_string();
    match t.nanosecond() % 1_000_000_000 {
        0 => base,
        n => format!("{base}.{}", format!("{n:09}").trim_end_matches('0')),
    }
}

/// A time's fraction fits a column keeping `digits` fractional-second digits (else the
/// database would round it).
fn fits_fraction(nanos: u32, digits: u32, declared: &str) -> Result<(), String> {
    let unit = 10u32.pow(9 - digits.min(9));
    if !(nanos % 1_000_000_000).is_multiple_of(unit) {
        return Err(format!(
            "the value has more fractional-second digits than the column ({declared}) keeps, and would be rounded: widen the \
             column or round it in the model"
        ));
    }
    Ok(())
}

/// A normalised decimal fits `numeric(precision, scale)` exactly (else the database would
/// round its fraction, or refuse it).
fn fits_decimal(d: &str, precision: Option<u32>, scale: Option<u32>, declared: &str) -> Result<(), String> {
    let digits = d.trim_start_matches('-');
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let whole = whole.trim_start_matches('0').len() as u32;
    let fraction = fraction.len() as u32;
    if let Some(scale) = scale {
        if fraction > scale {
            return Err(format!(
                "{d} has {fraction} digits after the point; the column ({declared}) keeps {scale} and would round it: widen the \
                 column or round it in the model"
            ));
        }
    }
    if let (Some(precision), Some(scale)) = (precision, scale) {
        if whole > precision.saturating_sub(scale) {
            return Err(format!("{d} is too large for the column ({declared})"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_a_column_would_round_are_refused_before_sending() {
        let numeric = Kind::Decimal { precision: Some(10), scale: Some(2) };
        assert_eq!(encode(Dialect::Postgres, &Value::Decimal("12.5".into()), &numeric, "numeric(10,2)"), Ok(Cell::Text("12.5".into())));
        assert!(encode(Dialect::Postgres, &Value::Decimal("12.345".into()), &numeric, "numeric(10,2)").unwrap_err().contains("round"));
        assert!(encode(Dialect::Postgres, &Value::Decimal("123456789".into()), &numeric, "numeric(10,2)").is_err());
        assert!(encode(Dialect::Postgres, &Value::Int(12345678), &numeric, "numeric(10,2)").is_ok());
        let t = NaiveTime::from_hms_nano_opt(1, 2, 3, 123_456_700).unwrap();
        assert!(encode(Dialect::Postgres, &Value::Time(t), &Kind::Time { digits: 6 }, "time").is_err());
        let t = NaiveTime::from_hms_micro_opt(1, 2, 3, 120_000).unwrap();
        assert_eq!(encode(Dialect::Mysql, &Value::Time(t), &Kind::Time { digits: 6 }, "time(6)"), Ok(Cell::Text("01:02:03.12".into())));
    }

    #[test]
    fn a_value_of_another_type_is_named_with_the_column_type() {
        let e = encode(Dialect::Postgres, &Value::Text("x".into()), &Kind::Int, "bigint").unwrap_err();
        assert_eq!(e, "a text value does not go into a column of type bigint");
        assert!(encode(Dialect::Mysql, &Value::Float(f64::NAN), &Kind::Float, "double").is_err());
        assert_eq!(Cell::Float(f64::NEG_INFINITY).to_json(), serde_json::json!("-Infinity"));
        assert!(encode(Dialect::Postgres, &Value::Text("a\0b".into()), &Kind::Text, "text").is_err());
    }
}
