//! Postgres through sqlx: the model's column types are read once (`describe`), each column gets
//! a decoder, and rows stream from the server as they arrive.

use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use secrecy::ExposeSecret;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow, PgTypeKind, PgValueFormat};
use sqlx::{Column as _, Executor, Row as _, TypeInfo};
use tokio::sync::mpsc;

use super::warehouse::{self, DiffSpec, WarehouseState};
use super::{chunk_rows, After, Column, ModelStream, SourceError, CHUNKS_IN_FLIGHT};
use crate::project::config::PostgresSourceConfig;
use crate::value::{normalize_decimal, Value, ValueType};

pub struct PostgresSource {
    name: String,
    pool: PgPool,
    /// Boxed: connect options are large and sources live in a map.
    options: Box<sqlx::postgres::PgConnectOptions>,
    /// `host:port`: what errors show of the URL (never the password).
    shown: String,
    /// sluice's own tables here, for syncs with `diff = "warehouse"` (connected when used).
    state: WarehouseState,
}

/// How to decode one column.
#[derive(Clone, Copy, Debug)]
enum Dec {
    Bool,
    I16,
    I32,
    I64,
    Oid,
    F32,
    F64,
    Numeric,
    Text,
    Uuid,
    Json,
    Jsonb,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Bytes,
    /// Enums and text-like extension types (citext): their binary form is the text.
    TextLike,
    Array(Elem),
}

#[derive(Clone, Copy, Debug)]
enum Elem {
    Bool,
    I16,
    I32,
    I64,
    F32,
    F64,
    Numeric,
    Text,
    Uuid,
    Json,
    Date,
    Timestamp,
    TimestampTz,
}

impl Elem {
    fn value_type(self) -> ValueType {
        match self {
            Elem::Bool => ValueType::Bool,
            Elem::I16 | Elem::I32 | Elem::I64 => ValueType::Int,
            Elem::F32 | Elem::F64 => ValueType::Float,
            Elem::Numeric => ValueType::Decimal { precision: None, scale: None },
            Elem::Text => ValueType::Text,
            Elem::Uuid => ValueType::Uuid,
            Elem::Json => ValueType::Json,
            Elem::Date => ValueType::Date,
            Elem::Timestamp | Elem::TimestampTz => ValueType::Timestamp,
        }
    }
}

impl Dec {
    fn value_type(self) -> ValueType {
        match self {
            Dec::Bool => ValueType::Bool,
            Dec::I16 | Dec::I32 | Dec::I64 | Dec::Oid => ValueType::Int,
            Dec::F32 | Dec::F64 => ValueType::Float,
            // `describe` does not give numeric's modifier.
            Dec::Numeric => ValueType::Decimal { precision: None, scale: None },
            Dec::Text | Dec::TextLike => ValueType::Text,
            Dec::Uuid => ValueType::Uuid,
            Dec::Json | Dec::Jsonb => ValueType::Json,
            Dec::Date => ValueType::Date,
            Dec::Time => ValueType::Time,
            Dec::Timestamp | Dec::TimestampTz => ValueType::Timestamp,
            Dec::Bytes => ValueType::Bytes,
            Dec::Array(e) => ValueType::Array(Box::new(e.value_type())),
        }
    }
}

fn decoder(type_info: &sqlx::postgres::PgTypeInfo) -> Option<Dec> {
    let name = type_info.name();
    if let Some(elem) = name.strip_suffix("[]") {
        let e = match elem {
            "BOOL" => Elem::Bool,
            "INT2" => Elem::I16,
            "INT4" => Elem::I32,
            "INT8" => Elem::I64,
            "FLOAT4" => Elem::F32,
            "FLOAT8" => Elem::F64,
            "NUMERIC" => Elem::Numeric,
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => Elem::Text,
            "UUID" => Elem::Uuid,
            "JSON" | "JSONB" => Elem::Json,
            "DATE" => Elem::Date,
            "TIMESTAMP" => Elem::Timestamp,
            "TIMESTAMPTZ" => Elem::TimestampTz,
            _ => return None,
        };
        return Some(Dec::Array(e));
    }
    Some(match name {
        "BOOL" => Dec::Bool,
        "INT2" => Dec::I16,
        "INT4" => Dec::I32,
        "INT8" => Dec::I64,
        "OID" => Dec::Oid,
        "FLOAT4" => Dec::F32,
        "FLOAT8" => Dec::F64,
        "NUMERIC" => Dec::Numeric,
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" => Dec::Text,
        "UUID" => Dec::Uuid,
        "JSON" => Dec::Json,
        "JSONB" => Dec::Jsonb,
        "DATE" => Dec::Date,
        "TIME" => Dec::Time,
        "TIMESTAMP" => Dec::Timestamp,
        "TIMESTAMPTZ" => Dec::TimestampTz,
        "BYTEA" => Dec::Bytes,
        "CITEXT" => Dec::TextLike,
        _ if matches!(type_info.kind(), PgTypeKind::Enum(_)) => Dec::TextLike,
        _ => return None,
    })
}

fn numeric(d: BigDecimal) -> Value {
    Value::Decimal(normalize_decimal(&d.to_plain_string()))
}

fn naive_ts(t: NaiveDateTime) -> Value {
    Value::Timestamp(t.and_utc())
}

/// Unchecked: the decoder was chosen from the column's type (`decoder`), so sqlx's per-cell
/// type check would only repeat that, a million times per column. Decoding still checks the
/// bytes.
fn get<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(row: &'r PgRow, i: usize) -> Result<Option<T>, String> {
    row.try_get_unchecked::<Option<T>, _>(i).map_err(|e| e.to_string())
}

fn array<'r, T, F>(row: &'r PgRow, i: usize, f: F) -> Result<Value, String>
where
    Vec<Option<T>>: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    F: Fn(T) -> Value,
{
    Ok(match get::<Vec<Option<T>>>(row, i)? {
        None => Value::Null,
        Some(items) => Value::Array(items.into_iter().map(|v| v.map(&f).unwrap_or(Value::Null)).collect()),
    })
}

/// A JSON cell canonicalised from the wire text, without a `serde_json::Value` tree in between
/// (binary `jsonb` is a version byte, 1, then the text).
fn json(row: &PgRow, i: usize, jsonb: bool) -> Result<Value, String> {
    use sqlx::ValueRef;
    let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let bytes = raw.as_bytes().map_err(|e| e.to_string())?;
    let text = match (jsonb, raw.format()) {
        (true, PgValueFormat::Binary) => match bytes.split_first() {
            Some((1, rest)) => rest,
            _ => return Err("unsupported jsonb format version".into()),
        },
        _ => bytes,
    };
    let text = std::str::from_utf8(text).map_err(|e| format!("JSON is not UTF-8: {e}"))?;
    Value::json_from_str(text).map_err(|e| format!("invalid JSON: {e}"))
}

fn decode(row: &PgRow, i: usize, dec: Dec) -> Result<Value, String> {
    fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
        v.map(f).unwrap_or(Value::Null)
    }
    Ok(match dec {
        Dec::Bool => opt(get::<bool>(row, i)?, Value::Bool),
        Dec::I16 => opt(get::<i16>(row, i)?, |v| Value::Int(v.into())),
        Dec::I32 => opt(get::<i32>(row, i)?, |v| Value::Int(v.into())),
        Dec::I64 => opt(get::<i64>(row, i)?, Value::Int),
        Dec::Oid => opt(get::<sqlx::postgres::types::Oid>(row, i)?, |v| Value::Int(v.0.into())),
        Dec::F32 => opt(get::<f32>(row, i)?, |v| Value::Float(v.into())),
        Dec::F64 => opt(get::<f64>(row, i)?, Value::Float),
        Dec::Numeric => opt(get::<BigDecimal>(row, i)?, numeric),
        Dec::Text => opt(get::<String>(row, i)?, Value::Text),
        Dec::Uuid => opt(get::<uuid::Uuid>(row, i)?, Value::Uuid),
        Dec::Json => json(row, i, false)?,
        Dec::Jsonb => json(row, i, true)?,
        Dec::Date => opt(get::<NaiveDate>(row, i)?, Value::Date),
        Dec::Time => opt(get::<NaiveTime>(row, i)?, Value::Time),
        Dec::Timestamp => opt(get::<NaiveDateTime>(row, i)?, naive_ts),
        Dec::TimestampTz => opt(get::<DateTime<Utc>>(row, i)?, Value::Timestamp),
        Dec::Bytes => opt(get::<Vec<u8>>(row, i)?, Value::Bytes),
        Dec::TextLike => opt(row.try_get_unchecked::<Option<String>, _>(i).map_err(|e| e.to_string())?, Value::Text),
        Dec::Array(e) => match e {
            Elem::Bool => array::<bool, _>(row, i, Value::Bool)?,
            Elem::I16 => array::<i16, _>(row, i, |v| Value::Int(v.into()))?,
            Elem::I32 => array::<i32, _>(row, i, |v| Value::Int(v.into()))?,
            Elem::I64 => array::<i64, _>(row, i, Value::Int)?,
            Elem::F32 => array::<f32, _>(row, i, |v| Value::Float(v.into()))?,
            Elem::F64 => array::<f64, _>(row, i, Value::Float)?,
            Elem::Numeric => array::<BigDecimal, _>(row, i, numeric)?,
            Elem::Text => array::<String, _>(row, i, Value::Text)?,
            Elem::Uuid => array::<uuid::Uuid, _>(row, i, Value::Uuid)?,
            Elem::Json => array::<serde_json::Value, _>(row, i, |v| Value::json(&v))?,
            Elem::Date => array::<NaiveDate, _>(row, i, Value::Date)?,
            Elem::Timestamp => array::<NaiveDateTime, _>(row, i, naive_ts)?,
            Elem::TimestampTz => array::<DateTime<Utc>, _>(row, i, Value::Timestamp)?,
        },
    })
}

impl PostgresSource {
    /// `runs`: how many runs may read at once: each holds a connection while it streams.
    pub fn new(name: &str, config: &PostgresSourceConfig, runs: usize) -> Result<Self, SourceError> {
        let connect_err = |message: String| SourceError::Connect { source_name: name.to_string(), message };
        let options: sqlx::postgres::PgConnectOptions =
            config.url.expose_secret().parse().map_err(|_| connect_err("`url` is not a valid postgres:// URL".into()))?;
        // Each model runs in a READ ONLY transaction of its own (`stream`); the session default
        // is read-only too, for whatever else runs on these connections (`describe`).
        let state = WarehouseState::Postgres(warehouse::PgState::new(
            options.clone(),
            config.state_schema.as_deref().unwrap_or(warehouse::DEFAULT_SCHEMA),
        ));
        let options = options.application_name("sluice").options([("default_transaction_read_only", "on")]);
        let shown = format!("{}:{}", options.get_host(), options.get_port());
        // A run holds a connection while it streams, and `describe` takes one for a moment.
        let size = config.max_connections.unwrap_or(u32::try_from(runs).unwrap_or(u32::MAX).saturating_add(1)).max(1);
        let pool = PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(std::time::Duration::from_secs(15))
            .connect_lazy_with(options.clone());
        Ok(PostgresSource { name: name.to_string(), pool, options: Box::new(options), shown, state })
    }

    /// Before the pool's first connection, one direct attempt: a refused or unknown host fails
    /// at once with the reason, instead of the pool's "timed out" after 15 s.
    async fn check_reachable(&self) -> Result<(), SourceError> {
        use sqlx::Connection;
        if self.pool.size() > 0 {
            return Ok(());
        }
        let Some(why) = crate::probe::why_unreachable(sqlx::postgres::PgConnection::connect_with(&self.options)).await else {
            return Ok(());
        };
        Err(SourceError::Connect {
            source_name: self.name.clone(),
            message: format!("{}: {}", self.shown, why.explain("the source's `url`")),
        })
    }

    fn map_err(&self, e: sqlx::Error) -> SourceError {
        match e {
            sqlx::Error::Database(db) => SourceError::Query(db.to_string()),
            other @ (sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Configuration(_)) => {
                SourceError::Connect { source_name: self.name.clone(), message: other.to_string() }
            }
            other => SourceError::Query(other.to_string()),
        }
    }

    async fn columns(&self, sql: &str) -> Result<(Vec<Column>, Vec<Dec>), SourceError> {
        self.check_reachable().await?;
        let described = (&self.pool).describe(sql).await.map_err(|e| self.map_err(e))?;
        let mut cols = Vec::new();
        let mut decs = Vec::new();
        for c in described.columns() {
            let type_name = c.type_info().name().to_string();
            let dec = decoder(c.type_info())
                .ok_or_else(|| SourceError::UnsupportedType { column: c.name().to_string(), type_name: type_name.clone() })?;
            let cursor_ok = matches!(
                dec,
                Dec::I16 | Dec::I32 | Dec::I64 | Dec::F32 | Dec::F64 | Dec::Numeric | Dec::Date | Dec::Timestamp | Dec::TimestampTz
            );
            let floating = matches!(dec, Dec::F32 | Dec::F64);
            cols.push(Column { name: c.name().to_string(), type_name, cursor_ok, floating, value_type: dec.value_type() });
            decs.push(dec);
        }
        Ok((cols, decs))
    }

    pub async fn describe(&self, sql: &str) -> Result<Vec<Column>, SourceError> {
        Ok(self.columns(sql).await?.0)
    }

    pub fn warehouse(&self) -> &WarehouseState {
        &self.state
    }

    /// Runs the model in a `READ ONLY` transaction of its own, rolled back at the end: nothing a
    /// model does (`set_config` included) outlives it or reaches the next model on the pooled
    /// connection. Prepared, so the server takes exactly one statement. `timeout` is the
    /// transaction's `statement_timeout`.
    ///
    /// With `diff`, the rows are the warehouse diff's (`warehouse::postgres::sql`): each carries
    /// the [`warehouse::EXTRA`] columns after the model's (`columns` names the model's only).
    pub async fn stream(
        &self,
        sql: &str,
        after: Option<&After>,
        timeout: Option<std::time::Duration>,
        diff: Option<&DiffSpec>,
    ) -> Result<ModelStream, SourceError> {
        let (columns, mut decs) = self.columns(sql).await?;
        let mut names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let (sql, param) = match after {
            None => (sql.to_string(), None),
            Some(a) => (a.wrap(sql, "$1"), Some(cursor_param(a, &columns, &decs)?)),
        };
        let sql = match diff {
            None => sql,
            Some(spec) => {
                let sql = warehouse::postgres_sql(&sql, &names, spec, self.state.schema());
                // The query itself, for people timing it on the database (scripts/bench_warehouse.py).
                tracing::debug!(source = %self.name, sql = %sql, "warehouse diff query");
                decs.extend([Dec::Text, Dec::Text, Dec::I64, Dec::Text, Dec::Text, Dec::Text]);
                names.extend(warehouse::EXTRA.iter().map(|e| e.to_string()));
                sql
            }
        };
        let settings: &[&str] = if diff.is_some() { &warehouse::POSTGRES_SETTINGS } else { &[] };
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let pool = self.pool.clone();
        let source_name = self.name.clone();
        let shown_timeout = timeout.map(|t| humantime::format_duration(t).to_string());
        let failed = move |e: sqlx::Error, source_name: String| match e {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") && shown_timeout.is_some() => SourceError::Query(format!(
                "the model's query ran longer than statement_timeout ({}) and was cancelled",
                shown_timeout.clone().unwrap_or_default()
            )),
            sqlx::Error::Database(db) => SourceError::Query(db.to_string()),
            other => SourceError::Connect { source_name, message: other.to_string() },
        };
        tokio::spawn(async move {
            let mut txn = match pool.begin_with("BEGIN TRANSACTION READ ONLY").await {
                Ok(txn) => txn,
                Err(e) => {
                    let _ = tx.send(Err(failed(e, source_name))).await;
                    return;
                }
            };
            let limit = timeout.map(|t| format!("SET LOCAL statement_timeout = {}", t.as_millis().clamp(1, i32::MAX as u128)));
            for set in limit.iter().map(String::as_str).chain(settings.iter().copied()) {
                if let Err(e) = sqlx::query(set).execute(&mut *txn).await {
                    let _ = tx.send(Err(failed(e, source_name))).await;
                    return;
                }
            }
            let mut query = sqlx::query(&sql);
            query = match param {
                None => query,
                Some(Param::Int(v)) => query.bind(v),
                Some(Param::Float(v)) => query.bind(v),
                Some(Param::Numeric(v)) => query.bind(v),
                Some(Param::Date(v)) => query.bind(v),
                Some(Param::Timestamp(v)) => query.bind(v),
                Some(Param::TimestampTz(v)) => query.bind(v),
            };
            let rows = query.fetch(&mut *txn);
            let decode = |row: &_, i: usize| decode(row, i, decs[i]);
            if !chunk_rows(rows, &names, decode, |e| failed(e, source_name), &tx).await {
                return;
            }
            // (Dropped early, the transaction rolls back all the same.)
            let _ = txn.rollback().await;
        });
        Ok(ModelStream { columns, rows: rx, _stop: None })
    }
}

/// A cursor value, typed for the column it is compared with: Postgres has no `>` between
/// `timestamp` and text, and a `timestamp` column must get a zone-less value.
enum Param {
    Int(i64),
    Float(f64),
    Numeric(BigDecimal),
    Date(NaiveDate),
    Timestamp(NaiveDateTime),
    TimestampTz(DateTime<Utc>),
}

fn cursor_param(after: &After, columns: &[Column], decs: &[Dec]) -> Result<Param, SourceError> {
    let Some(i) = columns.iter().position(|c| c.name == after.column) else {
        return Err(SourceError::Query(format!("the cursor column `{}` is not a column of the model", after.column)));
    };
    Ok(match (decs[i], &after.value) {
        (Dec::I16 | Dec::I32 | Dec::I64, Value::Int(v)) => Param::Int(*v),
        (Dec::F32 | Dec::F64, Value::Float(v)) => Param::Float(*v),
        (Dec::Numeric, Value::Decimal(d) | Value::Text(d)) => Param::Numeric(d.parse().map_err(|_| after.mismatch(&columns[i]))?),
        (Dec::Numeric, Value::Int(v)) => Param::Numeric(BigDecimal::from(*v)),
        (Dec::Date, Value::Date(d)) => Param::Date(*d),
        (Dec::Timestamp, Value::Timestamp(t)) => Param::Timestamp(t.naive_utc()),
        (Dec::TimestampTz, Value::Timestamp(t)) => Param::TimestampTz(*t),
        _ => return Err(after.mismatch(&columns[i])),
    })
}
