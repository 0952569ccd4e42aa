//! MariaDB and MySQL through sqlx (`kind = "mysql"`): the model's column types are read once
//! (`describe`), each column gets a decoder, and rows stream from the server as they arrive.
//!
//! Models only read, three ways over (as for Postgres, by the server's own rules where it has
//! them):
//! - the connection's session is `READ ONLY` (set on connect) and each run reads in a
//!   `READ ONLY` transaction with a consistent snapshot: the server refuses every write, DDL
//!   and temporary tables included (a `START TRANSACTION READ ONLY` alone would not stop DDL:
//!   DDL commits the transaction implicitly and runs outside it);
//! - the model is prepared (sqlx prepares every `query`), so the server takes one statement,
//!   and always wrapped as a derived table, `SELECT * FROM (model) AS sluice_model`, which
//!   cannot hold `INTO OUTFILE` or anything but a query;
//! - before that, `guard` tokenizes the model as MySQL does (sqlparser's MySQL dialect) and
//!   refuses what could break out of the wrapper: unbalanced parentheses, an unterminated
//!   comment (MySQL takes `/*` to the end as a comment, swallowing the wrapper's close),
//!   executable comments (`/*! ... */`, whose text MySQL runs) and `INTO` at the top level.
//!
//! Times: sqlx sets the session `time_zone` to `+00:00`, so TIMESTAMP values (stored in UTC)
//! arrive in UTC; DATETIME has no zone and, like Postgres' `timestamp`, is taken as UTC.

use std::sync::{Arc, OnceLock};

use bigdecimal::BigDecimal;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use secrecy::ExposeSecret;
use sqlparser::dialect::MySqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};
use sqlx::mysql::types::MySqlTime;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::{Column as _, Executor, Row as _, TypeInfo};
use tokio::sync::mpsc;

use super::warehouse::{self, DiffSpec, WarehouseState};
use super::{chunk_rows, After, Column, ModelStream, SourceError, CHUNKS_IN_FLIGHT};
use crate::project::config::MysqlSourceConfig;
use crate::value::{normalize_decimal, Value, ValueType};

pub struct MysqlSource {
    name: String,
    pool: MySqlPool,
    /// Boxed: connect options are large and sources live in a map.
    options: Box<MySqlConnectOptions>,
    /// `host:port`: what errors show of the URL (never the password).
    shown: String,
    /// sluice's own tables here, for syncs with `diff = "warehouse"` (connected when used).
    state: WarehouseState,
    /// The server's family, asked once (`SELECT VERSION()`) by the first run.
    flavour: Arc<OnceLock<Flavour>>,
}

/// How to decode one column.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Dec {
    /// `TINYINT(1)`, MySQL's BOOLEAN: 0 and 1 only (anything else is an error, not a guess).
    Bool,
    Int,
    /// Unsigned integers below 64 bits, and YEAR.
    Uint,
    /// BIGINT UNSIGNED: an integer, a decimal past i64 (as DuckDB's UBIGINT).
    U64,
    /// `BIT(n)`: an unsigned integer (sqlx does not say n, so BIT(1) is 0 or 1 too).
    Bit,
    F32,
    F64,
    Decimal,
    Text,
    Bytes,
    /// MySQL's JSON type (MariaDB's JSON is LONGTEXT and says so: it reads as text).
    Json,
    Date,
    Time,
    Timestamp,
    /// `SELECT NULL`: a column that is only ever NULL.
    Null,
}

impl Dec {
    fn value_type(self) -> ValueType {
        match self {
            Dec::Bool => ValueType::Bool,
            Dec::Int | Dec::Bit => ValueType::Int,
            Dec::Uint => ValueType::Int,
            Dec::U64 => ValueType::Decimal { precision: Some(20), scale: Some(0) },
            Dec::F32 | Dec::F64 => ValueType::Float,
            Dec::Decimal => ValueType::Decimal { precision: None, scale: None },
            Dec::Text => ValueType::Text,
            Dec::Bytes => ValueType::Bytes,
            Dec::Json => ValueType::Json,
            Dec::Date => ValueType::Date,
            Dec::Time => ValueType::Time,
            Dec::Timestamp => ValueType::Timestamp,
            Dec::Null => ValueType::Unknown,
        }
    }
}

/// The decoder for a column, by the name sqlx gives its type (from the column definition's
/// type and flags).
fn decoder(type_name: &str) -> Option<Dec> {
    Some(match type_name {
        "BOOLEAN" => Dec::Bool,
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" => Dec::Int,
        "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED" | "YEAR" => Dec::Uint,
        "BIGINT UNSIGNED" => Dec::U64,
        "BIT" => Dec::Bit,
        "FLOAT" => Dec::F32,
        "DOUBLE" => Dec::F64,
        "DECIMAL" => Dec::Decimal,
        "CHAR" | "VARCHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET" => Dec::Text,
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => Dec::Bytes,
        "JSON" => Dec::Json,
        "DATE" => Dec::Date,
        "TIME" => Dec::Time,
        "DATETIME" | "TIMESTAMP" => Dec::Timestamp,
        "NULL" => Dec::Null,
        _ => return None,
    })
}

/// The text type a binary-flagged string type stands for when its character set is not binary.
fn text_name(binary: &str) -> &str {
    match binary {
        "BINARY" => "CHAR",
        "VARBINARY" => "VARCHAR",
        "TINYBLOB" => "TINYTEXT",
        "BLOB" => "TEXT",
        "MEDIUMBLOB" => "MEDIUMTEXT",
        "LONGBLOB" => "LONGTEXT",
        other => other,
    }
}

/// What to write in the model instead, for a type sluice does not read.
fn cast_hint(column: &str, type_name: &str) -> String {
    match type_name {
        "GEOMETRY" => format!("ST_AsText(`{column}`)"),
        _ => format!("CAST(`{column}` AS CHAR)"),
    }
}

/// Unchecked: the decoder was chosen from the column's type; decoding still checks the bytes.
fn get<'r, T: sqlx::Decode<'r, sqlx::MySql> + sqlx::Type<sqlx::MySql>>(row: &'r MySqlRow, i: usize) -> Result<Option<T>, String> {
    row.try_get_unchecked::<Option<T>, _>(i).map_err(|e| e.to_string())
}

fn unsigned(v: u64) -> Value {
    i64::try_from(v).map(Value::Int).unwrap_or_else(|_| Value::Decimal(v.to_string()))
}

fn decode(row: &MySqlRow, i: usize, dec: Dec) -> Result<Value, String> {
    fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
        v.map(f).unwrap_or(Value::Null)
    }
    Ok(match dec {
        Dec::Bool => match get::<i64>(row, i)? {
            None => Value::Null,
            Some(0) => Value::Bool(false),
            Some(1) => Value::Bool(true),
            Some(n) => {
                return Err(format!(
                    "a TINYINT(1) (BOOLEAN) holds {n}, which is neither true nor false: read it as a number with `col + 0`"
                ))
            }
        },
        Dec::Int => opt(get::<i64>(row, i)?, Value::Int),
        Dec::Uint | Dec::U64 | Dec::Bit => opt(get::<u64>(row, i)?, unsigned),
        Dec::F32 => opt(get::<f32>(row, i)?, |v| Value::Float(v.into())),
        Dec::F64 => opt(get::<f64>(row, i)?, Value::Float),
        Dec::Decimal => opt(get::<BigDecimal>(row, i)?, |d| Value::Decimal(normalize_decimal(&d.to_plain_string()))),
        Dec::Text => opt(get::<String>(row, i)?, Value::Text),
        Dec::Bytes => opt(get::<Vec<u8>>(row, i)?, Value::Bytes),
        Dec::Json => match get::<String>(row, i)? {
            None => Value::Null,
            Some(text) => Value::json_from_str(&text).map_err(|e| format!("invalid JSON: {e}"))?,
        },
        Dec::Date => opt(get::<NaiveDate>(row, i).map_err(zero_date)?, Value::Date),
        // Not through sqlx's NaiveTime, which drops a negative TIME's sign.
        Dec::Time => match get::<MySqlTime>(row, i)? {
            None => Value::Null,
            Some(t) => match t.is_valid_time_of_day().then(|| NaiveTime::from_hms_micro_opt(t.hours(), t.minutes().into(), t.seconds().into(), t.microseconds())) {
                Some(Some(time)) => Value::Time(time),
                _ => {
                    return Err(format!(
                        "TIME {t} is not a time of day (MySQL's TIME is a duration, up to 838 hours either way): read it as text with `CAST(col AS CHAR)`"
                    ))
                }
            },
        },
        Dec::Timestamp => opt(get::<NaiveDateTime>(row, i).map_err(zero_date)?, |t| Value::Timestamp(t.and_utc())),
        Dec::Null => Value::Null,
    })
}

fn zero_date(e: String) -> String {
    format!("{e} (a zero date such as '0000-00-00' is no day at all: `NULLIF(col, '0000-00-00')` reads it as NULL)")
}

/// Refuses a model that could reach past the derived table it is wrapped in (module doc).
fn guard(model: &str) -> Result<(), SourceError> {
    let refuse = |why: &str| Err(SourceError::Query(format!("the model must be one SELECT: {why}")));
    let tokens = match Tokenizer::new(&MySqlDialect {}, model).tokenize() {
        Ok(tokens) => tokens,
        Err(e) => return refuse(&format!("it does not read as MySQL: {e}")),
    };
    let mut depth = 0_i32;
    for token in &tokens {
        match token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth < 0 {
                    return refuse("a `)` closes a parenthesis it never opened");
                }
            }
            Token::Whitespace(Whitespace::MultiLineComment(text)) if text.starts_with('!') || text.starts_with("M!") => {
                return refuse("executable comments (`/*! ... */`) are not allowed in a model: MySQL runs their text");
            }
            Token::Word(w) if depth == 0 && w.quote_style.is_none() && w.keyword == Keyword::INTO => {
                return refuse("`INTO` writes the rows somewhere; a model returns them");
            }
            _ => {}
        }
    }
    if depth != 0 {
        return refuse("a `(` is never closed");
    }
    Ok(())
}

/// The model as a derived table, filtered by the cursor when there is one (`?` its value).
fn wrap(model: &str, after: Option<&After>) -> String {
    let base = format!("SELECT * FROM (\n{model}\n) AS sluice_model");
    match after {
        None => base,
        Some(a) => format!("{base} WHERE sluice_model.`{}` >= ?", a.column.replace('`', "``")),
    }
}

impl MysqlSource {
    /// `runs`: how many runs may read at once: each holds a connection while it streams.
    pub fn new(name: &str, config: &MysqlSourceConfig, runs: usize) -> Result<Self, SourceError> {
        let connect_err = |message: String| SourceError::Connect { source_name: name.to_string(), message };
        let url = config.url.expose_secret();
        // sqlx reads any scheme as MySQL's: a postgres:// URL here is a mistake to name.
        let options: MySqlConnectOptions = match url.starts_with("mysql://") || url.starts_with("mariadb://") {
            true => url.parse().ok(),
            false => None,
        }
        .ok_or_else(|| connect_err("`url` is not a valid mysql:// URL".into()))?;
        let shown = format!("{}:{}", options.get_host(), options.get_port());
        let size = config.max_connections.unwrap_or(u32::try_from(runs).unwrap_or(u32::MAX).saturating_add(1)).max(1);
        let pool = MySqlPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(std::time::Duration::from_secs(15))
            // Every connection reads only, whatever runs on it (`describe` included).
            .after_connect(|conn, _| Box::pin(async move { conn.execute("SET SESSION TRANSACTION READ ONLY").await.map(|_| ()) }))
            .connect_lazy_with(options.clone());
        let schema = config.state_schema.as_deref().unwrap_or(warehouse::DEFAULT_SCHEMA);
        let state = WarehouseState::Mysql(warehouse::MysqlState::new(options.clone(), schema));
        Ok(MysqlSource { name: name.to_string(), pool, options: Box::new(options), shown, state, flavour: Arc::default() })
    }

    /// Before the pool's first connection, one direct attempt: a refused or unknown host fails
    /// at once with the reason, instead of the pool's "timed out" after 15 s.
    async fn check_reachable(&self) -> Result<(), SourceError> {
        use sqlx::Connection;
        if self.pool.size() > 0 {
            return Ok(());
        }
        let Some(why) = crate::probe::why_unreachable(sqlx::mysql::MySqlConnection::connect_with(&self.options)).await else {
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

    async fn columns(&self, model: &str) -> Result<(Vec<Column>, Vec<Dec>), SourceError> {
        guard(model)?;
        self.check_reachable().await?;
        let described = (&self.pool).describe(&wrap(model, None)).await.map_err(|e| self.map_err(e))?;
        if described.columns().is_empty() {
            return Err(SourceError::Query("the model returns no columns: a model is one SELECT that returns rows".into()));
        }
        let names: Vec<&str> = described.columns().iter().map(|c| c.name()).collect();
        let mut type_names: Vec<String> = described.columns().iter().map(|c| c.type_info().name().to_string()).collect();
        self.text_not_bytes(model, &names, &mut type_names).await?;
        let mut cols = Vec::new();
        let mut decs = Vec::new();
        for (c, type_name) in described.columns().iter().zip(type_names) {
            let dec = decoder(&type_name).ok_or_else(|| SourceError::Query(unsupported(c.name(), &type_name)))?;
            let cursor_ok =
                matches!(dec, Dec::Int | Dec::Uint | Dec::U64 | Dec::F32 | Dec::F64 | Dec::Decimal | Dec::Date | Dec::Timestamp);
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

    /// The wire marks text with a binary collation (`utf8mb4_bin`, MariaDB's JSON) as binary,
    /// like BLOBs; only the column's character set tells them apart, and sqlx does not pass it
    /// on. So for the columns that look binary, one more statement asks the server with
    /// `CHARSET()`, over the model limited to no rows (one row of NULLs comes back: a column's
    /// character set is its type's), and renames the text ones (`VARBINARY` -> `VARCHAR`).
    async fn text_not_bytes(&self, model: &str, names: &[&str], type_names: &mut [String]) -> Result<(), SourceError> {
        let binary: Vec<usize> = (0..type_names.len()).filter(|&i| decoder(&type_names[i]) == Some(Dec::Bytes)).collect();
        if binary.is_empty() {
            return Ok(());
        }
        let asks: Vec<String> = binary.iter().map(|&i| format!("CAST(CHARSET(m.`{}`) AS CHAR(64))", names[i].replace('`', "``"))).collect();
        let sql =
            format!("SELECT {} FROM (SELECT 1) AS sluice_one LEFT JOIN ({} LIMIT 0) AS m ON TRUE", asks.join(", "), wrap(model, None));
        let row = sqlx::query(&sql).fetch_one(&self.pool).await.map_err(|e| self.map_err(e))?;
        for (n, &i) in binary.iter().enumerate() {
            let charset: Option<String> = row.try_get(n).map_err(|e| self.map_err(e))?;
            if charset.as_deref().is_some_and(|c| c != "binary") {
                type_names[i] = text_name(&type_names[i]).to_string();
            }
        }
        Ok(())
    }

    /// Runs the model in a `READ ONLY` transaction with a consistent snapshot, rolled back at
    /// the end. `timeout` is the server's own statement limit (MariaDB's `max_statement_time`,
    /// MySQL's `max_execution_time`).
    ///
    /// With `diff`, the rows are the warehouse diff's (`warehouse::mysql::sql`): each carries
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
        let param = after.map(|a| cursor_param(a, &columns, &decs)).transpose()?;
        let sql = match diff {
            None => wrap(sql, after),
            Some(spec) => {
                let sql = warehouse::mysql_sql(sql, &names, spec, self.state.schema());
                tracing::debug!(source = %self.name, sql = %sql, "warehouse diff query");
                decs.extend([Dec::Text, Dec::Text, Dec::Int, Dec::Text, Dec::Text, Dec::Text]);
                names.extend(warehouse::EXTRA.iter().map(|e| e.to_string()));
                sql
            }
        };
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let pool = self.pool.clone();
        let flavour = self.flavour.clone();
        let source_name = self.name.clone();
        let shown_timeout = timeout.map(|t| humantime::format_duration(t).to_string());
        let failed = move |e: sqlx::Error, source_name: String| match e {
            // MariaDB's ER_STATEMENT_TIMEOUT, MySQL's ER_QUERY_TIMEOUT.
            sqlx::Error::Database(db) if timed_out(db.as_ref()) => SourceError::Query(format!(
                "the model's query ran longer than the sync's statement_timeout ({}) and was stopped",
                shown_timeout.clone().unwrap_or_default()
            )),
            sqlx::Error::Database(db) => SourceError::Query(db.to_string()),
            other => SourceError::Connect { source_name, message: other.to_string() },
        };
        tokio::spawn(async move {
            let mut txn = match pool.begin_with("START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT").await {
                Ok(txn) => txn,
                Err(e) => {
                    let _ = tx.send(Err(failed(e, source_name))).await;
                    return;
                }
            };
            // The limit is per session: set on every run (0 is none), so a pooled connection
            // never keeps another sync's.
            let known = match flavour.get() {
                Some(known) => Ok(*known),
                None => sqlx::query_scalar::<_, String>("SELECT VERSION()")
                    .fetch_one(&mut *txn)
                    .await
                    .map(|v| *flavour.get_or_init(|| Flavour::of(&v))),
            };
            let limit = match known {
                Ok(Flavour::MariaDb) => format!("SET SESSION max_statement_time = {}", timeout.map_or(0.0, |t| t.as_secs_f64())),
                Ok(Flavour::Mysql) => {
                    format!("SET SESSION max_execution_time = {}", timeout.map_or(0, |t| t.as_millis().clamp(1, u32::MAX as u128)))
                }
                Err(e) => {
                    let _ = tx.send(Err(failed(e, source_name))).await;
                    return;
                }
            };
            if let Err(e) = sqlx::query(&limit).execute(&mut *txn).await {
                let _ = tx.send(Err(failed(e, source_name))).await;
                return;
            }
            let mut query = sqlx::query(&sql);
            query = match param {
                None => query,
                Some(Param::Int(v)) => query.bind(v),
                Some(Param::Float(v)) => query.bind(v),
                Some(Param::Decimal(v)) => query.bind(v),
                Some(Param::Date(v)) => query.bind(v),
                Some(Param::Timestamp(v)) => query.bind(v),
            };
            let rows = query.fetch(&mut *txn);
            let decode = |row: &_, i: usize| decode(row, i, decs[i]);
            if !chunk_rows(rows, &names, decode, |e| failed(e, source_name), &tx).await {
                return;
            }
            let _ = txn.rollback().await;
        });
        Ok(ModelStream { columns, rows: rx, _stop: None })
    }
}

fn unsupported(column: &str, type_name: &str) -> String {
    format!(
        "column `{column}` has type {type_name}, which sluice cannot read: cast it in the model, e.g. `{}`",
        cast_hint(column, type_name)
    )
}

/// MariaDB 1969 (ER_STATEMENT_TIMEOUT) or MySQL 3024 (ER_QUERY_TIMEOUT).
fn timed_out(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().is_some_and(|e| matches!(e.number(), 1969 | 3024))
}

/// The server's family: the statement time limit has a different name in each.
#[derive(Clone, Copy)]
enum Flavour {
    MariaDb,
    Mysql,
}

impl Flavour {
    /// From `SELECT VERSION()`: MariaDB names itself there (`10.11.19-MariaDB-0+deb12u1`).
    fn of(version: &str) -> Flavour {
        if version.to_ascii_lowercase().contains("mariadb") {
            Flavour::MariaDb
        } else {
            Flavour::Mysql
        }
    }
}

/// A cursor value, typed for the column it is compared with: MySQL compares a DECIMAL with a
/// string as floating point, so a decimal mark must be bound as a decimal.
enum Param {
    Int(i64),
    Float(f64),
    Decimal(BigDecimal),
    Date(NaiveDate),
    Timestamp(NaiveDateTime),
}

fn cursor_param(after: &After, columns: &[Column], decs: &[Dec]) -> Result<Param, SourceError> {
    let Some(i) = columns.iter().position(|c| c.name == after.column) else {
        return Err(SourceError::Query(format!("the cursor column `{}` is not a column of the model", after.column)));
    };
    let decimal = |d: &str| d.parse::<BigDecimal>().map(Param::Decimal).map_err(|_| after.mismatch(&columns[i]));
    Ok(match (decs[i], &after.value) {
        (Dec::Int | Dec::Uint | Dec::U64, Value::Int(v)) => Param::Int(*v),
        (Dec::U64, Value::Decimal(d)) => decimal(d)?,
        (Dec::F32 | Dec::F64, Value::Float(v)) => Param::Float(*v),
        (Dec::Decimal, Value::Decimal(d) | Value::Text(d)) => decimal(d)?,
        (Dec::Decimal, Value::Int(v)) => Param::Decimal(BigDecimal::from(*v)),
        (Dec::Date, Value::Date(d)) => Param::Date(*d),
        (Dec::Timestamp, Value::Timestamp(t)) => Param::Timestamp(t.naive_utc()),
        _ => return Err(after.mismatch(&columns[i])),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_admits_queries_and_refuses_ways_out_of_the_wrapper() {
        for ok in [
            "SELECT 1 AS id",
            "WITH a AS (SELECT 1 AS id) SELECT * FROM a",
            "SELECT id, ')' AS p, \"(\" AS q, `x)` FROM t -- a (comment\n",
            "SELECT id FROM t /* a ( comment */ WHERE (a + (b)) > 0",
            "SELECT 'it''s' AS s, 'a\\'b' AS t # hash comment (\n",
            "SELECT x FROM t WHERE id IN (SELECT id FROM u)",
        ] {
            assert!(guard(ok).is_ok(), "{ok}: {:?}", guard(ok));
        }
        for (bad, why) in [
            ("SELECT 1 AS id) AS a INTO OUTFILE '/tmp/x' /*", "not read"),
            ("SELECT 1 AS id) AS a UNION SELECT * FROM (SELECT 2 AS id", "never opened"),
            // MySQL runs an executable comment's text: sqlparser lexes it as code (and finds the
            // stray `)`); MariaDB's `/*M!` form it leaves a comment, refused as such.
            ("SELECT 1 AS id /*!) AS a INTO OUTFILE '/tmp/x' */", "one SELECT"),
            ("SELECT 1 AS id /*M!) AS a INTO OUTFILE '/tmp/x' */", "executable"),
            ("SELECT 1 AS id /*!50000 INTO OUTFILE '/tmp/x' */", "INTO"),
            ("SELECT 1 AS id INTO OUTFILE '/tmp/x'", "INTO"),
            ("SELECT (1 AS id", "never closed"),
            // MySQL takes `--x` as minus minus x, not as a comment: the `)` counts.
            ("SELECT 1 AS id --x) AS a INTO OUTFILE '/tmp/x' #", "never opened"),
        ] {
            let err = guard(bad).expect_err(bad).to_string();
            assert!(err.contains(why) && err.contains("one SELECT"), "{bad}: {err}");
        }
    }

    #[test]
    fn decoders_cover_the_common_types() {
        assert_eq!(decoder("BOOLEAN"), Some(Dec::Bool));
        assert_eq!(decoder("BIGINT UNSIGNED"), Some(Dec::U64));
        assert_eq!(decoder("LONGTEXT"), Some(Dec::Text));
        assert_eq!(decoder("VARBINARY"), Some(Dec::Bytes));
        assert_eq!(decoder("GEOMETRY"), None);
        assert!(unsupported("shape", "GEOMETRY").contains("ST_AsText(`shape`)"));
        assert_eq!(unsigned(u64::MAX), Value::Decimal("18446744073709551615".into()));
        assert_eq!(unsigned(7), Value::Int(7));
    }
}
