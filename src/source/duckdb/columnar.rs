//! The fast read: the columns of a DuckDB Arrow chunk, kept as Arrow arrays (typed once per
//! chunk), for the plain types models mostly return (numbers, text, decimals, dates,
//! timestamps). A cell becomes a `Value` only when asked for; hashing reads text and JSON
//! straight from the Arrow buffers. Most rows of most runs are unchanged, so most cells are
//! only ever hashed: building a `Value` per cell (a copied string each) and freeing it again
//! was most of a no-change run. A query with any other column type (lists, structs, enums,
//! blobs, ...) takes the per-cell path, which knows every DuckDB type. Both paths give the
//! same `Value`s and the same encodings (tested below), so fingerprints do not depend on which
//! one read a row.

use std::sync::Arc;

use duckdb::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, Decimal32Array, Decimal64Array, Float32Array, Float64Array,
    GenericStringArray, Int16Array, Int32Array, Int64Array, Int8Array, StructArray, UInt16Array, UInt32Array, UInt64Array, UInt8Array,
};
use duckdb::arrow::buffer::NullBuffer;
use duckdb::arrow::datatypes::{self as dt, DataType, Schema, TimeUnit as Unit};
use duckdb::types::TimeUnit;

use super::{timestamp, wide_int, Kind};
use crate::source::SourceError;
use crate::value::{normalize_decimal, Encoder, Value};

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

/// One Arrow chunk of a model result: see [`crate::source::Chunk`].
pub struct Columns {
    len: usize,
    cols: Vec<Col>,
    names: Arc<[String]>,
}

struct Col {
    nulls: Option<NullBuffer>,
    data: Data,
}

/// A column's array, downcast once per chunk (not once per cell).
enum Data {
    Bool(BooleanArray),
    I8(Int8Array),
    I16(Int16Array),
    I32(Int32Array),
    I64(Int64Array),
    U8(UInt8Array),
    U16(UInt16Array),
    U32(UInt32Array),
    U64(UInt64Array),
    F32(Float32Array),
    F64(Float64Array),
    Text(GenericStringArray<i32>, Kind),
    LargeText(GenericStringArray<i64>, Kind),
    Decimal32(Decimal32Array, u8, u8),
    Decimal64(Decimal64Array, u8, u8),
    Decimal128(Decimal128Array, u8, u8),
    Date(Date32Array),
    /// Every unit's values are i64s: read as such, with the unit beside them.
    Timestamp(Int64Array, TimeUnit),
}

impl Columns {
    pub(super) fn new(chunk: &StructArray, plan: &[Fast], names: Arc<[String]>) -> Result<Columns, SourceError> {
        let cols = plan
            .iter()
            .zip(chunk.columns())
            .enumerate()
            .map(|(i, (fast, array))| {
                let data = typed(array, *fast).ok_or_else(|| SourceError::Decode {
                    column: names[i].clone(),
                    // The plan comes from the result's schema: a mismatch is DuckDB's error.
                    message: format!("DuckDB returned a {} column where its schema said {fast:?}", array.data_type()),
                })?;
                Ok(Col { nulls: array.logical_nulls(), data })
            })
            .collect::<Result<_, SourceError>>()?;
        Ok(Columns { len: chunk.len(), cols, names })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Columns per row.
    pub fn width(&self) -> usize {
        self.cols.len()
    }

    pub fn is_null(&self, row: usize, col: usize) -> bool {
        self.cols[col].nulls.as_ref().is_some_and(|n| n.is_null(row))
    }

    pub fn value(&self, row: usize, col: usize) -> Result<Value, SourceError> {
        self.convert(row, col).map_err(|message| self.decode_err(col, message))
    }

    /// What `value(row, col)` encodes to; text and JSON without building the value.
    pub fn encode(&self, row: usize, col: usize, e: &mut Encoder<'_>) -> Result<(), SourceError> {
        if self.is_null(row, col) {
            e.value(&Value::Null);
            return Ok(());
        }
        match self.text_at(row, col) {
            Some((s, Kind::Plain)) => e.text(s),
            Some((s, Kind::Json)) => e.json(s).map_err(|err| self.decode_err(col, format!("invalid JSON: {err}")))?,
            _ => e.value(&self.value(row, col)?),
        }
        Ok(())
    }

    /// A text cell (not NULL) and how it reads, whichever offset width its array has.
    fn text_at(&self, row: usize, col: usize) -> Option<(&str, Kind)> {
        match &self.cols[col].data {
            Data::Text(a, kind) => Some((a.value(row), *kind)),
            Data::LargeText(a, kind) => Some((a.value(row), *kind)),
            _ => None,
        }
    }

    fn decode_err(&self, col: usize, message: String) -> SourceError {
        SourceError::Decode { column: self.names[col].clone(), message }
    }

    fn convert(&self, r: usize, col: usize) -> Result<Value, String> {
        if self.is_null(r, col) {
            return Ok(Value::Null);
        }
        Ok(match &self.cols[col].data {
            Data::Bool(a) => Value::Bool(a.value(r)),
            Data::I8(a) => Value::Int(a.value(r).into()),
            Data::I16(a) => Value::Int(a.value(r).into()),
            Data::I32(a) => Value::Int(a.value(r).into()),
            Data::I64(a) => Value::Int(a.value(r)),
            Data::U8(a) => Value::Int(a.value(r).into()),
            Data::U16(a) => Value::Int(a.value(r).into()),
            Data::U32(a) => Value::Int(a.value(r).into()),
            Data::U64(a) => wide_int(a.value(r).into()),
            Data::F32(a) => Value::Float(a.value(r).into()),
            Data::F64(a) => Value::Float(a.value(r)),
            Data::Text(a, kind) => text(a.value(r), *kind)?,
            Data::LargeText(a, kind) => text(a.value(r), *kind)?,
            Data::Decimal32(a, w, s) => decimal(*w, *s, a.value(r).into())?,
            Data::Decimal64(a, w, s) => decimal(*w, *s, a.value(r).into())?,
            Data::Decimal128(a, w, s) => decimal(*w, *s, a.value(r))?,
            Data::Date(a) => super::date(a.value(r))?,
            Data::Timestamp(a, unit) => timestamp(*unit, a.value(r))?,
        })
    }
}

/// The array as the plan says it is typed, or `None` if it is not.
fn typed(array: &ArrayRef, fast: Fast) -> Option<Data> {
    let a = array;
    Some(match fast {
        Fast::Bool => Data::Bool(a.as_boolean_opt()?.clone()),
        Fast::I8 => Data::I8(a.as_primitive_opt::<dt::Int8Type>()?.clone()),
        Fast::I16 => Data::I16(a.as_primitive_opt::<dt::Int16Type>()?.clone()),
        Fast::I32 => Data::I32(a.as_primitive_opt::<dt::Int32Type>()?.clone()),
        Fast::I64 => Data::I64(a.as_primitive_opt::<dt::Int64Type>()?.clone()),
        Fast::U8 => Data::U8(a.as_primitive_opt::<dt::UInt8Type>()?.clone()),
        Fast::U16 => Data::U16(a.as_primitive_opt::<dt::UInt16Type>()?.clone()),
        Fast::U32 => Data::U32(a.as_primitive_opt::<dt::UInt32Type>()?.clone()),
        Fast::U64 => Data::U64(a.as_primitive_opt::<dt::UInt64Type>()?.clone()),
        Fast::F32 => Data::F32(a.as_primitive_opt::<dt::Float32Type>()?.clone()),
        Fast::F64 => Data::F64(a.as_primitive_opt::<dt::Float64Type>()?.clone()),
        Fast::Text(kind) => Data::Text(a.as_string_opt::<i32>()?.clone(), kind),
        Fast::LargeText(kind) => Data::LargeText(a.as_string_opt::<i64>()?.clone(), kind),
        Fast::Decimal32(w, s) => Data::Decimal32(a.as_primitive_opt::<dt::Decimal32Type>()?.clone(), w, s),
        Fast::Decimal64(w, s) => Data::Decimal64(a.as_primitive_opt::<dt::Decimal64Type>()?.clone(), w, s),
        Fast::Decimal128(w, s) => Data::Decimal128(a.as_primitive_opt::<dt::Decimal128Type>()?.clone(), w, s),
        Fast::Date => Data::Date(a.as_primitive_opt::<dt::Date32Type>()?.clone()),
        Fast::Timestamp(unit) => {
            let values = match unit {
                TimeUnit::Second => a.as_primitive_opt::<dt::TimestampSecondType>()?.reinterpret_cast::<dt::Int64Type>(),
                TimeUnit::Millisecond => a.as_primitive_opt::<dt::TimestampMillisecondType>()?.reinterpret_cast(),
                TimeUnit::Microsecond => a.as_primitive_opt::<dt::TimestampMicrosecondType>()?.reinterpret_cast(),
                TimeUnit::Nanosecond => a.as_primitive_opt::<dt::TimestampNanosecondType>()?.reinterpret_cast(),
            };
            Data::Timestamp(values, unit)
        }
    })
}

fn text(s: &str, kind: Kind) -> Result<Value, String> {
    Ok(match kind {
        Kind::Uuid => Value::Uuid(s.parse().map_err(|e| format!("invalid UUID `{s}`: {e}"))?),
        Kind::Json => Value::json_from_str(s).map_err(|e| format!("invalid JSON: {e}"))?,
        Kind::Plain | Kind::Null => Value::Text(s.to_string()),
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
    use crate::source::Chunk;
    use crate::value::{hash_values, hash_with, Value};

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

    async fn chunks(sql: &str) -> Vec<Chunk> {
        let source = DuckDbSource::new(
            "wh",
            &DuckdbSourceConfig { path: None, allowed_directories: Vec::new(), memory_limit: None, state_directory: None },
            std::path::Path::new("."),
            std::path::Path::new(".sluice"),
        );
        let mut stream = source.stream(sql, None, None).await.expect("the query runs");
        let mut chunks = Vec::new();
        while let Some(chunk) = stream.rows.recv().await {
            chunks.push(chunk.expect("the rows decode"));
        }
        chunks
    }

    async fn read(sql: &str) -> Vec<Vec<Value>> {
        chunks(sql).await.into_iter().flat_map(|c| c.into_rows().expect("the rows convert")).collect()
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

    #[tokio::test]
    async fn cells_hash_from_arrow_as_their_values_hash() {
        let select = format!(
            "SELECT id, CASE WHEN id % 5 = 0 THEN NULL ELSE COLUMNS(* EXCLUDE (id)) END FROM (SELECT {COLUMNS} FROM range(1, 5000) AS r(i))"
        );
        let chunks = chunks(&select).await;
        assert!(chunks.len() > 1 && chunks.iter().all(|c| matches!(c, Chunk::Columns(_))), "read as Arrow chunks");
        let mut rows = 0;
        for chunk in &chunks {
            for r in 0..chunk.len() {
                let row = chunk.row(r).expect("the row converts");
                for c in 0..row.len() {
                    let one = hash_with(|e| chunk.encode(r, c, e)).expect("the cell encodes");
                    assert_eq!(one, hash_values([&row[c]]), "row {:?} column {c}", row[0]);
                    assert_eq!(chunk.is_null(r, c), row[c].is_null());
                }
                let whole = hash_with(|e| (0..row.len()).try_for_each(|c| chunk.encode(r, c, e))).expect("the row encodes");
                assert_eq!(whole, hash_values(row.iter()));
                rows += 1;
            }
        }
        assert_eq!(rows, 4999);
    }
}
