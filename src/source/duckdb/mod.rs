//! DuckDB: the duckdb crate is synchronous, so each query runs on a blocking thread and sends
//! chunks of rows back over a bounded channel. When every column has a plain type, DuckDB's
//! Arrow chunks travel as they are (`columnar`); otherwise rows are read cell by cell.

mod columnar;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta};
use duckdb::core::LogicalTypeId;
use duckdb::types::{TimeUnit, Value as D};
use duckdb::{AccessMode, Config, Connection};
use tokio::sync::{mpsc, oneshot};

use super::warehouse::{self, DiffSpec, DuckState, WarehouseState};
use super::{After, Chunk, Column, ModelStream, Row, SourceError, StopOnDrop, CHUNKS_IN_FLIGHT, CHUNK_ROWS};
use crate::project::config::DuckdbSourceConfig;
use crate::value::{normalize_decimal, Value, ValueType};

pub use columnar::Columns;

pub struct DuckDbSource {
    name: String,
    path: Option<PathBuf>,
    root: PathBuf,
    /// Where models may read files: the project, and the source's `allowed_directories`.
    readable: Vec<PathBuf>,
    /// SQL run on each new connection before it is locked down (a command source's `input`).
    prelude: Option<String>,
    /// DuckDB's `memory_limit`, when the config sets one.
    memory_limit: Option<String>,
    /// sluice's own files for this source (`diff = "warehouse"`, spill files).
    state: WarehouseState,
    /// Where DuckDB spills: `tmp` in the state directory.
    temp_directory: PathBuf,
    /// `[writeback]` to this source: its file, attached read-only under the schema's name
    /// (once written) so models can join the run history and the change log.
    log: Option<(PathBuf, String)>,
}

/// How to read one result column: DuckDB hands UUID and JSON over as text, so the logical
/// type decides.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Plain,
    Uuid,
    Json,
    /// DuckDB's untyped NULL (`NULL AS x`, a JSON field null in every line): every cell is NULL,
    /// and is not read (duckdb-rs cannot read a cell of that type).
    Null,
}

impl DuckDbSource {
    /// `local_dir`: sluice's local directory (`StateConfig::local_dir`), under which the
    /// source's own files go unless it says where.
    pub fn new(name: &str, config: &DuckdbSourceConfig, root: &Path, local_dir: &Path) -> Self {
        let mut readable = vec![root.to_path_buf()];
        readable.extend(config.allowed_directories.iter().map(|d| root.join(d)));
        // DuckDB checks a relative path (`read_csv('data/x.csv')`) against the process's
        // working directory before it finds the file through `file_search_path`. The CLI and
        // the daemon work in the project directory (`cli::start`); a program embedding sluice
        // elsewhere lets its models read under its working directory too, or they could not
        // read the project's files by relative path.
        if let Ok(cwd) = std::env::current_dir() {
            let same = |a: &Path, b: &Path| std::fs::canonicalize(a).ok().zip(std::fs::canonicalize(b).ok()).is_some_and(|(a, b)| a == b);
            if !same(&cwd, root) {
                tracing::debug!(cwd = %cwd.display(), "DuckDB models may read under the working directory too (it is not the project's)");
                readable.push(cwd);
            }
        }
        let state_dir = match &config.state_directory {
            Some(dir) => root.join(dir),
            None => local_dir.join("warehouse").join(name),
        };
        DuckDbSource {
            name: name.to_string(),
            path: config.path.as_ref().map(|p| root.join(p)),
            root: root.to_path_buf(),
            readable,
            prelude: None,
            memory_limit: config.memory_limit.clone(),
            temp_directory: state_dir.join("tmp"),
            state: WarehouseState::Duckdb(DuckState::new(state_dir, config.memory_limit.clone())),
            log: None,
        }
    }

    /// An in-memory database where `prelude` (SQL: a view over files a program wrote) runs
    /// before the connection is locked down; models read under `readable` only.
    pub fn in_memory(name: &str, root: &Path, readable: Vec<PathBuf>, prelude: String) -> Self {
        let state_dir = root.join(".sluice").join("warehouse").join(name);
        DuckDbSource {
            name: name.to_string(),
            path: None,
            root: root.to_path_buf(),
            readable,
            prelude: Some(prelude),
            memory_limit: None,
            temp_directory: state_dir.join("tmp"),
            state: WarehouseState::Duckdb(DuckState::new(state_dir, None)),
            log: None,
        }
    }

    /// sluice's own files for this source, for `diff = "warehouse"`.
    pub fn warehouse(&self) -> &WarehouseState {
        &self.state
    }

    /// Models see `[writeback]`'s tables as `schema.sluice_runs` and `schema.sluice_changes`.
    pub fn read_log(&mut self, schema: &str) {
        if let WarehouseState::Duckdb(state) = &self.state {
            self.log = Some((state.file(warehouse::writeback::DUCKDB_LOG), schema.to_string()));
        }
    }

    /// [`connect_with`](Self::connect_with), waiting while another connection (of sluice's: a
    /// run writing the file it attaches, in this process or another) holds a file it attaches.
    async fn connect_waiting(&self, before_lock: &str) -> Result<Connection, SourceError> {
        let started = std::time::Instant::now();
        loop {
            match self.connect_with(before_lock) {
                Err(SourceError::Query(m)) if warehouse::duckdb_busy(&m) && started.elapsed() < warehouse::LOCK_WAIT => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(SourceError::Query(m)) if warehouse::duckdb_busy(&m) => {
                    return Err(warehouse::duckdb_held(&format!("a file of sluice's that the model's connection attaches ({m})")))
                }
                other => return other,
            }
        }
    }

    /// A connection that only reads: the database file read-only, no extension installed or
    /// loaded at run time, no network, no file written, files read only under `readable`. The
    /// configuration is then locked, so a model cannot change any of it. `before_lock` (SQL of
    /// sluice's: the warehouse diff's attach and settings) runs before the lock.
    fn connect_with(&self, before_lock: &str) -> Result<Connection, SourceError> {
        let connect_err = |e: duckdb::Error| SourceError::Connect { source_name: self.name.clone(), message: e.to_string() };
        let config = Config::default()
            .with("autoinstall_known_extensions", "false")
            .and_then(|c| c.with("autoload_known_extensions", "false"))
            .and_then(|c| c.with("allow_community_extensions", "false"))
            .map_err(connect_err)?;
        let conn = match &self.path {
            // Read-only: sluice never writes to a source, and a read-only open does not take
            // the write lock another process (a notebook, dbt) may hold.
            Some(path) => {
                if !path.exists() {
                    return Err(SourceError::Connect {
                        source_name: self.name.clone(),
                        message: format!("{} does not exist", path.display()),
                    });
                }
                let config = config.access_mode(AccessMode::ReadOnly).map_err(connect_err)?;
                Connection::open_with_flags(path, config).map_err(connect_err)?
            }
            None => Connection::open_in_memory_with_flags(config).map_err(connect_err)?,
        };
        if let Some(prelude) = &self.prelude {
            conn.execute_batch(prelude).map_err(|e| SourceError::Query(e.to_string()))?;
        }
        if !before_lock.is_empty() {
            conn.execute_batch(before_lock).map_err(|e| SourceError::Query(e.to_string()))?;
        }
        if let Some((file, schema)) = self.log.as_ref().filter(|(file, _)| file.exists()) {
            let attach = format!("ATTACH {} AS \"{schema}\" (READ_ONLY);", warehouse::duckdb_literal(&file.display().to_string()));
            conn.execute_batch(&attach)
                .map_err(|e| SourceError::Query(format!("attaching [writeback]'s file {} as `{schema}`: {e}", file.display())))?;
        }
        let quoted = |p: &Path| {
            format!("'{}'", std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string().replace('\'', "''"))
        };
        let dirs: Vec<String> = self.readable.iter().map(|d| quoted(d)).collect();
        // Relative file paths in models (read_csv('data/x.csv')) resolve against the project.
        // The allowed directories must be set before external access is switched off, and
        // the lock comes last (DuckDB refuses every later SET but the search path).
        let memory = match &self.memory_limit {
            Some(limit) => format!("SET memory_limit = {};", warehouse::duckdb_literal(limit)),
            None => String::new(),
        };
        conn.execute_batch(&format!(
            "{memory} SET temp_directory = {temp}; SET file_search_path = {root}; SET allowed_directories = [{dirs}]; \
             SET enable_external_access = false; SET lock_configuration = true;",
            temp = warehouse::duckdb_literal(&self.temp_directory.display().to_string()),
            root = quoted(&self.root),
            dirs = dirs.join(", ")
        ))
        .map_err(connect_err)?;
        Ok(conn)
    }

    pub async fn describe(&self, sql: &str) -> Result<Vec<Column>, SourceError> {
        let conn = self.connect_waiting("").await?;
        let wrapped = format!("SELECT * FROM (\n{sql}\n) AS sluice_model LIMIT 0");
        tokio::task::spawn_blocking(move || -> Result<Vec<Column>, SourceError> {
            one_select(&conn, &wrapped)?;
            let mut stmt = conn.prepare(&wrapped).map_err(query_err)?;
            stmt.execute([]).map_err(query_err)?;
            Ok(columns(&stmt).into_iter().map(|(c, _)| c).collect())
        })
        .await
        .map_err(|e| SourceError::Query(format!("the DuckDB worker stopped: {e}")))?
    }

    /// The model's rows diffed against the sync's DuckDB file (`warehouse::duckdb`): the file
    /// attached read-only before the connection is locked down, the rows read one by one (only
    /// the changed rows come), each with the [`warehouse::EXTRA`] columns after the model's.
    pub async fn stream_diff(&self, sql: &str, spec: &DiffSpec, timeout: Option<std::time::Duration>) -> Result<ModelStream, SourceError> {
        let names: Vec<String> = self.describe(sql).await?.into_iter().map(|c| c.name).collect();
        let width = names.len();
        let diff = warehouse::duckdb_sql(sql, &names, spec);
        tracing::debug!(source = %self.name, sql = %diff, "warehouse diff query");
        let WarehouseState::Duckdb(state) = &self.state else {
            return Err(SourceError::Query("a DuckDB source without its DuckDB state (a bug)".into()));
        };
        let before = match spec.table_exists {
            true => warehouse::duckdb_attach(&state.file(&spec.table)),
            false => String::new(),
        };
        // Another sluice process (the daemon's run, beside a plan) may be writing the file.
        let conn = self.connect_waiting(&before).await?;
        self.read(conn, diff, Vec::new(), timeout, Some(width)).await
    }

    pub async fn stream(&self, sql: &str, after: Option<&After>, timeout: Option<std::time::Duration>) -> Result<ModelStream, SourceError> {
        let conn = self.connect_waiting("").await?;
        // DuckDB types a parameter from what it is compared with and casts the bound value to
        // it, so text serves dates, timestamps and decimals; numbers go as numbers. The model is
        // always a subquery: a statement that breaks out of it is a second statement, refused.
        let (sql, params) = match after {
            None => (format!("SELECT * FROM (\n{sql}\n) AS sluice_model"), Vec::new()),
            Some(a) => {
                let param = match &a.value {
                    Value::Int(i) => D::BigInt(*i),
                    Value::Float(f) => D::Double(*f),
                    Value::Decimal(_) | Value::Date(_) | Value::Timestamp(_) => D::Text(a.value.to_text()),
                    _ => {
                        return Err(SourceError::Query(format!(
                            "the stored cursor value {} is not a number, date or timestamp",
                            a.value.to_text()
                        )))
                    }
                };
                (a.wrap(sql, "?"), vec![param])
            }
        };
        self.read(conn, sql, params, timeout, None).await
    }

    /// Runs `sql` (one SELECT) on `conn` and streams its rows. `diff_width`: the rows are a
    /// warehouse diff's, the model's columns this many (the rest are sluice's); they are read
    /// row by row, as the engine takes them aside by their class.
    async fn read(
        &self,
        conn: Connection,
        sql: String,
        params: Vec<D>,
        timeout: Option<std::time::Duration>,
        diff_width: Option<usize>,
    ) -> Result<ModelStream, SourceError> {
        let (cols_tx, cols_rx) = oneshot::channel();
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        // The query stops when the stream is dropped (a run cancelled, or past its deadline)
        // and after `timeout`: DuckDB is interrupted, wherever it is.
        let interrupt = conn.interrupt_handle();
        let timer = timeout.map(|t| {
            let interrupt = interrupt.clone();
            tokio::spawn(async move {
                tokio::time::sleep(t).await;
                interrupt.interrupt();
            })
        });
        let stop = StopOnDrop(Box::new(move || {
            interrupt.interrupt();
            if let Some(timer) = timer {
                timer.abort();
            }
        }));
        let shown_timeout = timeout.map(|t| humantime::format_duration(t).to_string());
        tokio::task::spawn_blocking(move || {
            let mut cols_tx = Some(cols_tx);
            let query_err = |e: duckdb::Error| match (&shown_timeout, e.to_string()) {
                (Some(t), m) if m.contains("INTERRUPT") || m.contains("Interrupted") => {
                    SourceError::Query(format!("the model's query stopped: it ran longer than statement_timeout ({t}), or the run ended"))
                }
                (_, m) => SourceError::Query(m),
            };
            let work = std::panic::AssertUnwindSafe(|| -> Result<(), SourceError> {
                one_select(&conn, &sql)?;
                let mut stmt = conn.prepare(&sql).map_err(query_err)?;
                // `stream_arrow` executes with DuckDB's streaming API; the rows are then read by
                // stepping that same streaming result chunk by chunk (`step` for the columnar
                // read, `raw_query` for the per-cell one) instead of materialising it first.
                drop(stmt.stream_arrow(duckdb::params_from_iter(params.iter())).map_err(query_err)?);
                let cols = columns(&stmt);
                let kinds: Vec<Kind> = cols.iter().map(|(_, k)| *k).collect();
                let names: Vec<String> = cols.iter().map(|(c, _)| c.name.clone()).collect();
                if let Some(t) = cols_tx.take() {
                    let width = diff_width.unwrap_or(cols.len()).min(cols.len());
                    let _ = t.send(Ok(cols.into_iter().take(width).map(|(c, _)| c).collect::<Vec<_>>()));
                }
                let plan = if diff_width.is_some() { None } else { columnar::plan(&stmt.schema(), &kinds) };
                if let Some(plan) = plan {
                    // Each Arrow chunk (2,048 rows) goes to the run as it is: cells are converted
                    // there, and only for the rows that changed.
                    let names: Arc<[String]> = names.into();
                    while let Some(arrow) = stmt.step().map_err(query_err)? {
                        let columns = Columns::new(&arrow, &plan, names.clone())?;
                        if !columns.is_empty() && tx.blocking_send(Ok(Chunk::Columns(columns))).is_err() {
                            return Ok(());
                        }
                    }
                    return Ok(());
                }
                let mut chunk: Vec<Row> = Vec::with_capacity(CHUNK_ROWS);
                let mut rows = stmt.raw_query();
                while let Some(row) = rows.next().map_err(query_err)? {
                    let mut out = Vec::with_capacity(kinds.len());
                    for (i, kind) in kinds.iter().enumerate() {
                        if matches!(kind, Kind::Null) {
                            out.push(Value::Null);
                            continue;
                        }
                        let raw = row.get_ref(i).map_err(query_err)?.to_owned();
                        out.push(convert(raw, *kind).map_err(|message| SourceError::Decode { column: names[i].clone(), message })?);
                    }
                    chunk.push(out);
                    // A full chunk goes to the run at once; an error: the run stopped listening.
                    if chunk.len() == CHUNK_ROWS && tx.blocking_send(Ok(Chunk::Rows(std::mem::take(&mut chunk)))).is_err() {
                        return Ok(());
                    }
                }
                if !chunk.is_empty() {
                    let _ = tx.blocking_send(Ok(Chunk::Rows(chunk)));
                }
                Ok(())
            });
            // A panic in the reader must end the run as an error: a closed channel alone would
            // read as the model's end, and the rows not read yet as removed.
            let result = std::panic::catch_unwind(work).unwrap_or_else(|panic| {
                let message = crate::panics::message(panic.as_ref());
                Err(SourceError::Query(format!("DuckDB's reader stopped: {message} (cast the model's columns to plain types)")))
            });
            // An error before the columns were known answers the caller directly; a later one
            // travels down the row channel.
            if let Err(e) = result {
                match cols_tx.take() {
                    Some(t) => {
                        let _ = t.send(Err(e));
                    }
                    None => {
                        let _ = tx.blocking_send(Err(e));
                    }
                }
            }
            // The database closes before the channel does: a run that saw the end of a warehouse
            // diff opens the attached file for writing next.
            drop(conn);
            drop(tx);
        });
        match cols_rx.await {
            Ok(Ok(columns)) => Ok(ModelStream { columns, rows: rx, _stop: Some(stop) }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SourceError::Query("the DuckDB worker stopped before returning columns".into())),
        }
    }
}

fn query_err(e: duckdb::Error) -> SourceError {
    SourceError::Query(e.to_string())
}

/// Whether `sql` is exactly one SELECT, by DuckDB's own parser, without running any of it.
/// (`prepare` runs every statement of a text but the last.) `json_serialize_sql` parses only, and
/// says `"error": true` for anything that is not a SELECT.
fn one_select(conn: &Connection, sql: &str) -> Result<(), SourceError> {
    let parsed: String = conn.query_row("SELECT json_serialize_sql(?::VARCHAR)", [sql], |row| row.get(0)).map_err(query_err)?;
    let parsed: serde_json::Value =
        serde_json::from_str(&parsed).map_err(|e| SourceError::Query(format!("cannot check the model: {e}")))?;
    let statements = parsed["statements"].as_array().map_or(0, Vec::len);
    if parsed["error"].as_bool() == Some(true) || statements != 1 {
        let why = parsed["error_message"].as_str().unwrap_or("");
        let why = if why.is_empty() { String::new() } else { format!(" ({why})") };
        return Err(SourceError::Query(format!(
            "the model must be one SELECT query, and nothing else{why}: sluice only reads (a model cannot write, attach, \
             install or change settings)"
        )));
    }
    Ok(())
}

fn columns(stmt: &duckdb::Statement<'_>) -> Vec<(Column, Kind)> {
    (0..stmt.column_count())
        .map(|i| {
            let name = stmt.column_name(i).cloned().unwrap_or_else(|_| format!("column{i}"));
            let logical = stmt.column_logical_type(i);
            let alias = logical.get_alias();
            let id = logical.id();
            let kind = match (id, alias.as_deref()) {
                (LogicalTypeId::SqlNull, _) => Kind::Null,
                (LogicalTypeId::Uuid, _) => Kind::Uuid,
                (_, Some(a)) if a.eq_ignore_ascii_case("json") => Kind::Json,
                _ => Kind::Plain,
            };
            let type_name = alias.unwrap_or_else(|| format!("{id:?}")).to_uppercase();
            use LogicalTypeId as L;
            let cursor_ok = matches!(
                id,
                L::Tinyint
                    | L::Smallint
                    | L::Integer
                    | L::Bigint
                    | L::Hugeint
                    | L::UTinyint
                    | L::USmallint
                    | L::UInteger
                    | L::UBigint
                    | L::Float
                    | L::Double
                    | L::Decimal
                    | L::Date
                    | L::Timestamp
                    | L::TimestampS
                    | L::TimestampMs
                    | L::TimestampNs
                    | L::TimestampTZ
            );
            let floating = matches!(id, L::Float | L::Double);
            let value_type = value_type(&logical, kind);
            (Column { name, type_name, cursor_ok, floating, value_type }, kind)
        })
        .collect()
}

/// The canonical type of a column's cells: what `convert` (and `columnar`) make of them. List
/// items are converted as plain values (a list of UUIDs is a list of text).
fn value_type(logical: &duckdb::core::LogicalTypeHandle, kind: Kind) -> ValueType {
    use LogicalTypeId as L;
    let decimal = |precision: u32, scale: u32| ValueType::Decimal { precision: Some(precision), scale: Some(scale) };
    match logical.id() {
        L::Boolean => ValueType::Bool,
        L::Tinyint | L::Smallint | L::Integer | L::Bigint | L::UTinyint | L::USmallint | L::UInteger => ValueType::Int,
        // Cells out of i64's range are decimals; in range, `Int`s (a decimal column takes both).
        L::UBigint => decimal(20, 0),
        L::Hugeint | L::UHugeint => decimal(39, 0),
        L::Float | L::Double => ValueType::Float,
        L::Decimal => decimal(logical.decimal_width().into(), logical.decimal_scale().into()),
        L::Varchar => match kind {
            Kind::Uuid => ValueType::Uuid,
            Kind::Json => ValueType::Json,
            Kind::Plain => ValueType::Text,
            Kind::Null => ValueType::Unknown,
        },
        L::Uuid => ValueType::Uuid,
        L::Enum => ValueType::Text,
        L::Blob => ValueType::Bytes,
        L::Date => ValueType::Date,
        L::Time => ValueType::Time,
        L::Timestamp | L::TimestampS | L::TimestampMs | L::TimestampNs | L::TimestampTZ => ValueType::Timestamp,
        // Items are converted as plain values: a UUID (and a JSON-typed text) item is text; a
        // struct or map item is JSON.
        L::List | L::Array => match value_type(&logical.child(0), Kind::Plain) {
            ValueType::Uuid => ValueType::Array(Box::new(ValueType::Text)),
            item => ValueType::Array(Box::new(item)),
        },
        L::Struct | L::Map => ValueType::Json,
        _ => ValueType::Unknown,
    }
}

fn timestamp(unit: TimeUnit, v: i64) -> Result<Value, String> {
    let (secs, nanos) = match unit {
        TimeUnit::Second => (v, 0),
        TimeUnit::Millisecond => (v.div_euclid(1_000), v.rem_euclid(1_000) * 1_000_000),
        TimeUnit::Microsecond => (v.div_euclid(1_000_000), v.rem_euclid(1_000_000) * 1_000),
        TimeUnit::Nanosecond => (v.div_euclid(1_000_000_000), v.rem_euclid(1_000_000_000)),
    };
    DateTime::from_timestamp(secs, nanos as u32).map(Value::Timestamp).ok_or_else(|| format!("timestamp {v} is out of range"))
}

fn date(days: i32) -> Result<Value, String> {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|epoch| epoch.checked_add_signed(TimeDelta::days(days.into())))
        .map(Value::Date)
        .ok_or_else(|| format!("date {days} is out of range"))
}

fn time(unit: TimeUnit, v: i64) -> Result<Value, String> {
    let nanos = match unit {
        TimeUnit::Second => v * 1_000_000_000,
        TimeUnit::Millisecond => v * 1_000_000,
        TimeUnit::Microsecond => v * 1_000,
        TimeUnit::Nanosecond => v,
    };
    Ok(Value::Time(NaiveTime::MIN + TimeDelta::nanoseconds(nanos)))
}

fn wide_int(v: i128) -> Value {
    i64::try_from(v).map(Value::Int).unwrap_or_else(|_| Value::Decimal(v.to_string()))
}

fn convert(v: D, kind: Kind) -> Result<Value, String> {
    Ok(match v {
        D::Null => Value::Null,
        D::Boolean(b) => Value::Bool(b),
        D::TinyInt(i) => Value::Int(i.into()),
        D::SmallInt(i) => Value::Int(i.into()),
        D::Int(i) => Value::Int(i.into()),
        D::BigInt(i) => Value::Int(i),
        D::HugeInt(i) => wide_int(i),
        D::UTinyInt(i) => Value::Int(i.into()),
        D::USmallInt(i) => Value::Int(i.into()),
        D::UInt(i) => Value::Int(i.into()),
        D::UBigInt(i) => wide_int(i.into()),
        D::UHugeInt(i) => i64::try_from(i).map(Value::Int).unwrap_or_else(|_| Value::Decimal(i.to_string())),
        D::Float(f) => Value::Float(f.into()),
        D::Double(f) => Value::Float(f),
        D::Decimal(d) => Value::Decimal(normalize_decimal(&d.to_string())),
        D::Timestamp(unit, v) => timestamp(unit, v)?,
        D::Text(s) => match kind {
            Kind::Uuid => Value::Uuid(s.parse().map_err(|e| format!("invalid UUID `{s}`: {e}"))?),
            Kind::Json => Value::json_from_str(&s).map_err(|e| format!("invalid JSON: {e}"))?,
            Kind::Plain | Kind::Null => Value::Text(s),
        },
        D::Blob(b) => Value::Bytes(b),
        D::Date32(days) => date(days)?,
        D::Time64(unit, v) => time(unit, v)?,
        D::Enum(s) => Value::Text(s),
        D::List(items) | D::Array(items) => Value::Array(items.into_iter().map(|i| convert(i, Kind::Plain)).collect::<Result<_, _>>()?),
        D::Struct(fields) => {
            let mut obj = serde_json::Map::new();
            for (k, v) in fields.iter() {
                obj.insert(k.clone(), convert(v.clone(), Kind::Plain)?.to_json());
            }
            Value::json(&serde_json::Value::Object(obj))
        }
        D::Map(entries) => {
            let mut obj = serde_json::Map::new();
            for (k, v) in entries.iter() {
                obj.insert(convert(k.clone(), Kind::Plain)?.to_text(), convert(v.clone(), Kind::Plain)?.to_json());
            }
            Value::json(&serde_json::Value::Object(obj))
        }
        D::Union(inner) => convert(*inner, kind)?,
        other => return Err(format!("unsupported DuckDB value {other:?}: cast the column to VARCHAR in the model")),
    })
}
