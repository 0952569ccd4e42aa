//! The fast read: each Arrow column of a DuckDB chunk is converted in one typed loop, for the
//! plain types models mostly return (numbers, text, decimals, dates, timestamps). Reading cell
//! by cell (`Row::get_ref`, then `convert`) finds each cell's array and type again and copies
//! it into a `duckdb::types::Value` first; that was most of a no-change run. A query with any
//! other column type (lists, structs, enums, blobs, ...) takes the per-cell path, which knows
//! every DuckDB type. Both paths give the same `Value`s (tested below), so fingerprints do not
//! depend on which one read a row.

use duckdb::arrow::array::{Array, ArrayRef, AsArray, StructArray};
use duckdb::arrow::datatypes::{self as dt, DataType, Schema, TimeUnit as Unit};
use duckdb::types::TimeUnit;

use super::{timestamp, wide_int, Kind};
use crate::source::{Row, SourceError};
use crate::value::{normalize_decimal, Value};

/// How one column converts.
#[derive(Clone, Copy, Debug)]
pub(super) enum Fast {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
    Text(Kind),
    LargeText(Kind),
    Decimal32(u8, u8),
    Decimal64(u8, u8),
    Decimal128(u8, u8),
    Date,
    Timestamp(TimeUnit),
}

/// The fast conversion of every column, or `None` when any column needs the per-cell path.
pub(super) fn plan(schema: &Schema, kinds: &[Kind]) -> Option<Vec<Fast>> {
    let scale = |s: i8| u8::try_from(s).ok();
    schema
        .fields()
        .iter()
        .zip(kinds)
        .map(|(field, kind)| {
            Some(match field.data_type() {
                DataType::Boolean => Fast::Bool,
                DataType::Int8 => Fast::I8,
                DataType::Int16 => Fast::I16,
                DataType::Int32 => Fast::I32,
                DataType::Int64 => Fast::I64,
                DataType::UInt8 => Fast::U8,
                DataType::UInt16 => Fast::U16,
                DataType::UInt32 => Fast::U32,
                DataType::UInt64 => Fast::U64,
                DataType::Float32 => Fast::F32,
                DataType::Float64 => Fast::F64,
                DataType::Utf8 => Fast::Text(*kind),
                DataType::LargeUtf8 => Fast::LargeText(*kind),
                DataType::Decimal32(w, s) => Fast::Decimal32(*w, scale(*s)?),
                DataType::Decimal64(w, s) => Fast::Decimal64(*w, scale(*s)?),
                // HUGEINT and UHUGEINT arrive as DECIMAL(38, 0) too: only the per-cell path,
                // which asks the result's logical types, tells them apart.
                DataType::Decimal128(38, 0) => return None,
                DataType::Decimal128(w, s) => Fast::Decimal128(*w, scale(*s)?),
                DataType::Date32 => Fast::Date,
                DataType::Timestamp(unit, _) => Fast::Timestamp(match unit {
                    Unit::Second => TimeUnit::Second,
                    Unit::Millisecond => TimeUnit::Millisecond,
                    Unit::Microsecond => TimeUnit::Microsecond,
                    Unit::Nanosecond => TimeUnit::Nanosecond,
                }),
                _ => return None,
            })
        })
        .collect()
}

/// Appends the rows of one chunk to `out`.
pub(super) fn rows(chunk: &StructArray, plan: &[Fast], names: &[String], out: &mut Vec<Row>) -> Result<(), SourceError> {
    let first = out.len();
    out.extend((0..chunk.len()).map(|_| Vec::with_capacity(plan.len())));
    let rows = &mut out[first..];
    for (i, (fast, array)) in plan.iter().zip(chunk.columns()).enumerate() {
        column(array, *fast, rows).map_err(|message| SourceError::Decode { column: names[i].clone(), message })?;
    }
    Ok(())
}

fn column(array: &ArrayRef, fast: Fast, rows: &mut [Row]) -> Result<(), String> {
    // The plan comes from the result's schema, so a mismatch is DuckDB's error, not the model's.
    let mismatch = || format!("DuckDB returned a {} column where its schema said {fast:?}", array.data_type());
    macro_rules! each {
        ($array:expr, |$v:ident| $value:expr) => {{
            let a = $array.ok_or_else(mismatch)?;
            for (r, row) in rows.iter_mut().enumerate() {
                row.push(if a.is_null(r) {
                    Value::Null
                } else {
                    let $v = a.value(r);
                    $value
                });
            }
        }};
    }
    macro_rules! primitive {
        ($t:ty, |$v:ident| $value:expr) => {
            each!(array.as_primitive_opt::<$t>(), |$v| $value)
        };
    }
    match fast {
        Fast::Bool => each!(array.as_boolean_opt(), |v| Value::Bool(v)),
        Fast::I8 => primitive!(dt::Int8Type, |v| Value::Int(v.into())),
        Fast::I16 => primitive!(dt::Int16Type, |v| Value::Int(v.into())),
        Fast::I32 => primitive!(dt::Int32Type, |v| Value::Int(v.into())),
        Fast::I64 => primitive!(dt::Int64Type, |v| Value::Int(v)),
        Fast::U8 => primitive!(dt::UInt8Type, |v| Value::Int(v.into())),
        Fast::U16 => primitive!(dt::UInt16Type, |v| Value::Int(v.into())),
        Fast::U32 => primitive!(dt::UInt32Type, |v| Value::Int(v.into())),
        Fast::U64 => primitive!(dt::UInt64Type, |v| wide_int(v.into())),
        Fast::F32 => primitive!(dt::Float32Type, |v| Value::Float(v.into())),
        Fast::F64 => primitive!(dt::Float64Type, |v| Value::Float(v)),
        Fast::Text(kind) => each!(array.as_string_opt::<i32>(), |v| text(v, kind)?),
        Fast::LargeText(kind) => each!(array.as_string_opt::<i64>(), |v| text(v, kind)?),
        Fast::Decimal32(w, s) => primitive!(dt::Decimal32Type, |v| decimal(w, s, v.into())?),
        Fast::Decimal64(w, s) => primitive!(dt::Decimal64Type, |v| decimal(w, s, v.into())?),
        Fast::Decimal128(w, s) => primitive!(dt::Decimal128Type, |v| decimal(w, s, v)?),
        Fast::Date => primitive!(dt::Date32Type, |v| super::date(v)?),
        Fast::Timestamp(unit) => match unit {
            TimeUnit::Second => primitive!(dt::TimestampSecondType, |v| timestamp(unit, v)?),
            TimeUnit::Millisecond => primitive!(dt::TimestampMillisecondType, |v| timestamp(unit, v)?),
            TimeUnit::Microsecond => primitive!(dt::TimestampMicrosecondType, |v| timestamp(unit, v)?),
            TimeUnit::Nanosecond => primitive!(dt::TimestampNanosecondType, |v| timestamp(unit, v)?),
        },
    }
    Ok(())
}

fn text(s: &str, kind: Kind) -> Result<Value, String> {
    Ok(match kind {
        Kind::Uuid => Value::Uuid(s.parse().map_err(|e| format!("invalid UUID `{s}`: {e}"))?),
        Kind::Json => Value::json_from_str(s).map_err(|e| format!("invalid JSON: {e}"))?,
        Kind::Plain => Value::Text(s.to_string()),
    })
}

/// Through `duckdb::types::Decimal`'s own formatting, as the per-cell path does.
fn decimal(width: u8, scale: u8, v: i128) -> Result<Value, String> {
    let d = duckdb::types::Decimal::new(width, scale, v).map_err(|e| e.to_string())?;
    Ok(Value::Decimal(normalize_decimal(&d.to_string())))
}

#[cfg(test)]
mod tests {
    use super::super::DuckDbSource;
    use crate::project::config::DuckdbSourceConfig;
    use crate::value::Value;

    /// Every fast type, with edge values. The test reads 4,999 rows: several Arrow chunks
    /// (DuckDB's hold 2,048 rows), so the conversion is checked past the first one.
    const COLUMNS: &str = "i::BIGINT AS id, (i % 2 = 0) AS b, (i % 127)::TINYINT AS t, (-i)::SMALLINT AS s, (i * 1000)::INTEGER AS n,
        (i % 255)::UTINYINT AS ut, i::USMALLINT AS us, i::UINTEGER AS ui, (i * 4294967296)::UBIGINT AS ub,
        (i / 3.0)::REAL AS r, (i / -7.0)::DOUBLE AS d, 'row ' || i AS label,
        ('{\"k\": [' || i || ', \"x\"], \"a\": 1.50}')::JSON AS doc, '0190b7c6-4f1e-7c3a-9d6e-' || lpad(i::VARCHAR, 12, '0') AS uid_text,
        ('0190b7c6-4f1e-7c3a-9d6e-' || lpad(i::VARCHAR, 12, '0'))::UUID AS uid,
        ((i - 2500) / 100.0)::DECIMAL(4,2) AS d4, ((i - 2500) / 1000.0)::DECIMAL(18,3) AS d18, (i * 1e15 + 0.00001)::DECIMAL(30,5) AS d30,
        (DATE '1969-12-25' + i::INTEGER) AS day, TIMESTAMP '1969-12-31 23:59:59.123456' + to_seconds(i) AS ts,
        to_timestamp(1709280000 + i * 60) AS tstz, (TIMESTAMP '2024-01-01 00:00:00' + to_seconds(i))::TIMESTAMP_S AS ts_s,
        (TIMESTAMP '2024-01-01' + to_milliseconds(i))::TIMESTAMP_MS AS ts_ms, (TIMESTAMP '2024-01-01' + to_microseconds(i))::TIMESTAMP_NS AS ts_ns";

    async fn read(sql: &str) -> Vec<Vec<Value>> {
        let source = DuckDbSource::new("wh", &DuckdbSourceConfig { path: None }, std::path::Path::new("."));
        let mut stream = source.stream(sql, None).await.expect("the query runs");
        let mut rows = Vec::new();
        while let Some(chunk) = stream.rows.recv().await {
            rows.extend(chunk.expect("the rows decode"));
        }
        rows
    }

    #[tokio::test]
    async fn the_columnar_read_gives_the_values_the_per_cell_read_gives() {
        // Every column but the key is NULL in one row in five.
        let select = |extra: &str| {
            format!(
                "SELECT id, CASE WHEN id % 5 = 0 THEN NULL ELSE COLUMNS(* EXCLUDE (id)) END{extra} FROM \
                 (SELECT {COLUMNS} FROM range(1, 5000) AS r(i)) ORDER BY id"
            )
        };
        let fast = read(&select("")).await;
        // A LIST column sends the whole query down the per-cell path.
        let cells = read(&select(", [1, 2] AS forces_cells")).await;
        assert_eq!(fast.len(), 4999);
        assert_eq!(cells.len(), fast.len());
        for (f, c) in fast.iter().zip(&cells) {
            assert_eq!(f.as_slice(), &c[..c.len() - 1], "row {:?}", f[0]);
        }
        assert!(fast.iter().any(|r| r[1] == Value::Null), "NULLs were read");
        // The logical types (JSON, UUID) still decide how text columns read.
        let first = &fast[0];
        assert!(matches!(first[12], Value::Json(_)) && matches!(first[14], Value::Uuid(_)), "{first:?}");
        assert!(matches!(first[13], Value::Text(_)) && matches!(first[15], Value::Decimal(_)), "{first:?}");
    }
}
