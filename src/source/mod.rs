//! Sources run a model query and stream its rows as canonical [`Value`]s, in chunks over a
//! bounded channel, so no model is ever held in memory whole.
//!
//! Models only read. Each source admits exactly one read-only statement, by its own parser:
//! Postgres prepares the model (the extended protocol takes one statement) and runs it in a
//! `READ ONLY` transaction of its own, rolled back after; MariaDB/MySQL prepares it wrapped as
//! a derived table on a read-only session (`mysql`); DuckDB checks the wrapped model is one
//! SELECT (`json_serialize_sql`) on a connection that cannot write files, reach the network or
//! install extensions, and reads files only under the project and `allowed_directories`.

#[cfg(feature = "duckdb")]
mod command;
#[cfg(feature = "duckdb")]
mod duckdb;
#[cfg(feature = "duckdb")]
mod events;
mod mysql;
mod postgres;
pub mod warehouse;

use std::borrow::Cow;
use std::path::Path;

use tokio::sync::mpsc;

use crate::project::SourceConfig;
use crate::value::{Encoder, Value};

pub type Row = Vec<Value>;

/// Rows per channel message (DuckDB's Arrow chunks hold its own 2,048), and messages in
/// flight: bounds a source's memory.
pub(crate) const CHUNK_ROWS: usize = 1024;
pub(crate) const CHUNKS_IN_FLIGHT: usize = 2;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Column {
    pub name: String,
    /// The source's own name for the type, for messages.
    pub type_name: String,
    /// Whether the column can be a sync's `cursor`: a number, date or timestamp, ordered the
    /// same by the database and by sluice (text is not: collations differ).
    #[serde(skip)]
    pub cursor_ok: bool,
    /// Whether the column is floating point, so it may hold NaN or an infinity (which cannot
    /// be keys: NaN equals nothing, not even itself, and neither survives JSON).
    #[serde(skip)]
    pub floating: bool,
    /// The canonical type of its cells.
    #[serde(skip)]
    pub value_type: crate::value::ValueType,
}

/// A cursor sync's incremental read: only the model's rows whose `column` is at or past
/// `value`. At, not only past: a row written after the last run with the same cursor value
/// (second-resolution timestamps, version numbers) must not be missed; the rows at the mark
/// that were already sent are unchanged and the diff sends nothing for them. The value is
/// always bound as a query parameter, never spliced into the SQL.
#[derive(Clone, Debug)]
pub struct After {
    pub column: String,
    pub value: Value,
}

impl After {
    /// The model wrapped in the filter, with `param` as the placeholder for the value.
    fn wrap(&self, model: &str, param: &str) -> String {
        let column = self.column.replace('"', "\"\"");
        format!("SELECT * FROM (\n{model}\n) AS sluice_model WHERE sluice_model.\"{column}\" >= {param}")
    }

    fn mismatch(&self, column: &Column) -> SourceError {
        SourceError::Query(format!(
            "the stored cursor value {} does not fit column `{}` of type {} (did the column's type change?): \
             `sluice run SYNC --full-resync` reads the whole model once and stores a new cursor",
            self.value.to_text(),
            column.name,
            column.type_name
        ))
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    #[error("cannot connect to source `{source_name}`: {message}")]
    Connect { source_name: String, message: String },
    #[error("the model query failed: {0}")]
    Query(String),
    /// sluice's own tables in the source (the warehouse diff's, `[writeback]`'s): the message
    /// names them, what failed and what to do.
    #[error("{0}")]
    Tables(String),
    #[error("column `{column}` has type {type_name}, which sluice cannot read: cast it in the model, e.g. `{column}::text`")]
    UnsupportedType { column: String, type_name: String },
    #[error("column `{column}`: cannot read a value: {message}")]
    Decode { column: String, message: String },
    /// A command source's program failed, or wrote what its format cannot read.
    #[error("source `{source_name}`: {message}")]
    Program { source_name: String, message: String },
}

/// A running model query: its columns, then chunks of rows. Dropping it stops the query.
pub struct ModelStream {
    pub columns: Vec<Column>,
    pub rows: mpsc::Receiver<Result<Chunk, SourceError>>,
    /// Stops the query when the stream is dropped (a DuckDB query busy before its next row
    /// would not notice the closed channel).
    pub(crate) _stop: Option<StopOnDrop>,
}

/// Decodes a database's rows into chunks on `tx` as they arrive (`decode(row, i)`: column `i`
/// of `names`). Returns whether every row went out: `false` when an error was sent in their
/// place, or the receiver is gone.
pub(crate) async fn chunk_rows<R>(
    mut rows: impl futures_util::Stream<Item = Result<R, sqlx::Error>> + Unpin,
    names: &[String],
    decode: impl Fn(&R, usize) -> Result<Value, String>,
    failed: impl FnOnce(sqlx::Error) -> SourceError,
    tx: &mpsc::Sender<Result<Chunk, SourceError>>,
) -> bool {
    use futures_util::TryStreamExt;
    let mut chunk: Vec<Row> = Vec::with_capacity(CHUNK_ROWS);
    loop {
        let row = match rows.try_next().await {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) => {
                let _ = tx.send(Err(failed(e))).await;
                return false;
            }
        };
        let mut out = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            match decode(&row, i) {
                Ok(v) => out.push(v),
                Err(message) => {
                    let _ = tx.send(Err(SourceError::Decode { column: name.clone(), message })).await;
                    return false;
                }
            }
        }
        chunk.push(out);
        if chunk.len() == CHUNK_ROWS && tx.send(Ok(Chunk::Rows(std::mem::take(&mut chunk)))).await.is_err() {
            return false;
        }
    }
    chunk.is_empty() || tx.send(Ok(Chunk::Rows(chunk))).await.is_ok()
}

/// Runs a stop action when dropped.
pub(crate) struct StopOnDrop(pub Box<dyn FnOnce() + Send>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let stop = std::mem::replace(&mut self.0, Box::new(|| {}));
        stop();
    }
}

/// One message of a model stream: consecutive rows, in the form the source read them. Cells
/// are addressed by (row, column) index; every form gives the same canonical values and the
/// same fingerprint encodings for the same data.
pub enum Chunk {
    /// Rows already converted (Postgres; DuckDB results with types only the per-cell read knows).
    Rows(Vec<Row>),
    /// A DuckDB Arrow chunk: cells are hashed from its buffers and converted to `Value`s only
    /// when asked for (the rows that changed).
    #[cfg(feature = "duckdb")]
    Columns(duckdb::Columns),
}

impl Chunk {
    pub fn len(&self) -> usize {
        match self {
            Chunk::Rows(rows) => rows.len(),
            #[cfg(feature = "duckdb")]
            Chunk::Columns(c) => c.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_null(&self, row: usize, col: usize) -> bool {
        match self {
            Chunk::Rows(rows) => rows[row][col].is_null(),
            #[cfg(feature = "duckdb")]
            Chunk::Columns(c) => c.is_null(row, col),
        }
    }

    /// One cell as a canonical value.
    pub fn value(&self, row: usize, col: usize) -> Result<Value, SourceError> {
        match self {
            Chunk::Rows(rows) => Ok(rows[row][col].clone()),
            #[cfg(feature = "duckdb")]
            Chunk::Columns(c) => c.value(row, col),
        }
    }

    /// The cells `cols` of a row, in that order (a key, or the mapped fields).
    pub fn values(&self, row: usize, cols: &[usize]) -> Result<Vec<Value>, SourceError> {
        cols.iter().map(|&col| self.value(row, col)).collect()
    }

    /// Appends the fingerprint encoding of the cells `cols` of a row: exactly what their
    /// values encode to.
    pub fn encode_cells(&self, row: usize, cols: &[usize], e: &mut Encoder<'_>) -> Result<(), SourceError> {
        cols.iter().try_for_each(|&col| self.encode(row, col, e))
    }

    /// Appends one cell's fingerprint encoding: exactly what `value(row, col)` encodes to.
    pub fn encode(&self, row: usize, col: usize, e: &mut Encoder<'_>) -> Result<(), SourceError> {
        match self {
            Chunk::Rows(rows) => {
                e.value(&rows[row][col]);
                Ok(())
            }
            #[cfg(feature = "duckdb")]
            Chunk::Columns(c) => c.encode(row, col, e),
        }
    }

    /// A whole row, borrowed when the chunk holds rows.
    pub fn row(&self, row: usize) -> Result<Cow<'_, [Value]>, SourceError> {
        match self {
            Chunk::Rows(rows) => Ok(Cow::Borrowed(&rows[row])),
            #[cfg(feature = "duckdb")]
            Chunk::Columns(c) => (0..c.width()).map(|col| c.value(row, col)).collect::<Result<Vec<_>, _>>().map(Cow::Owned),
        }
    }

    /// Every row, converted.
    #[cfg(test)]
    pub fn into_rows(self) -> Result<Vec<Row>, SourceError> {
        match self {
            Chunk::Rows(rows) => Ok(rows),
            #[cfg(feature = "duckdb")]
            Chunk::Columns(_) => (0..self.len()).map(|r| self.row(r).map(Cow::into_owned)).collect(),
        }
    }
}

pub enum Source {
    #[cfg(feature = "duckdb")]
    DuckDb(duckdb::DuckDbSource),
    Postgres(postgres::PostgresSource),
    Mysql(mysql::MysqlSource),
    #[cfg(feature = "duckdb")]
    Command(command::CommandSource),
    /// A stream's events, as the engine chose them for one run (`source = "stream:NAME"`).
    #[cfg(feature = "duckdb")]
    Events(events::EventsSource),
}

impl Source {
    /// `runs`: how many runs may read from it at once (a Postgres pool is sized to them).
    /// `local_dir`: sluice's local directory (`StateConfig::local_dir`).
    pub fn new(name: &str, config: &SourceConfig, root: &Path, local_dir: &Path, runs: usize) -> Result<Source, SourceError> {
        Ok(match config {
            #[cfg(feature = "duckdb")]
            SourceConfig::Duckdb(c) => Source::DuckDb(duckdb::DuckDbSource::new(name, c, root, local_dir)),
            #[cfg(not(feature = "duckdb"))]
            SourceConfig::Duckdb(_) => {
                let _ = (root, local_dir);
                return Err(SourceError::Connect {
                    source_name: name.to_string(),
                    message: "this sluice was built without DuckDB (the `duckdb` feature): use a build with default features".into(),
                });
            }
            SourceConfig::Postgres(c) => Source::Postgres(postgres::PostgresSource::new(name, c, runs)?),
            SourceConfig::Mysql(c) => Source::Mysql(mysql::MysqlSource::new(name, c, runs)?),
            #[cfg(feature = "duckdb")]
            SourceConfig::Command(c) => Source::Command(command::CommandSource::new(name, c.clone(), root)?),
            #[cfg(not(feature = "duckdb"))]
            SourceConfig::Command(_) => {
                return Err(SourceError::Connect {
                    source_name: name.to_string(),
                    message: "command sources load their output with DuckDB: use a build with default features".into(),
                });
            }
        })
    }

    /// A stream's events as the table `events`: those in the JSON-lines `file`, or none.
    pub fn events(name: &str, root: &Path, file: Option<&Path>) -> Result<Source, SourceError> {
        #[cfg(feature = "duckdb")]
        return Ok(Source::Events(events::EventsSource::new(name, root, file)));
        #[cfg(not(feature = "duckdb"))]
        {
            let _ = (root, file);
            Err(SourceError::Connect {
                source_name: name.to_string(),
                message: "syncs over a stream read its events with DuckDB: use a build with default features".into(),
            })
        }
    }

    /// `[writeback]` goes to this source: a DuckDB source's models see its file attached as
    /// `schema` (Postgres and MariaDB models read the schema as any other).
    pub fn read_log(&mut self, schema: &str) {
        #[cfg(feature = "duckdb")]
        if let Source::DuckDb(s) = self {
            s.read_log(schema);
        }
        let _ = schema;
    }

    /// sluice's tables in the source, for `diff = "warehouse"`: Postgres, MariaDB/MySQL and
    /// DuckDB (files of sluice's own beside it).
    pub fn warehouse(&self) -> Option<&warehouse::WarehouseState> {
        match self {
            Source::Postgres(s) => Some(s.warehouse()),
            Source::Mysql(s) => Some(s.warehouse()),
            #[cfg(feature = "duckdb")]
            Source::DuckDb(s) => Some(s.warehouse()),
            #[cfg(feature = "duckdb")]
            _ => None,
        }
    }

    /// The model's rows diffed in the source against the sync's table there
    /// (`warehouse::DiffSpec`): only added, changed, duplicate and removed rows, each with the
    /// [`warehouse::EXTRA`] columns after the model's, then a row with the model's count.
    pub async fn stream_diff(
        &self,
        sql: &str,
        spec: &warehouse::DiffSpec,
        timeout: Option<std::time::Duration>,
    ) -> Result<ModelStream, SourceError> {
        match self {
            Source::Postgres(s) => s.stream(sql, None, timeout, Some(spec)).await,
            Source::Mysql(s) => s.stream(sql, None, timeout, Some(spec)).await,
            #[cfg(feature = "duckdb")]
            Source::DuckDb(s) => s.stream_diff(sql, spec, timeout).await,
            #[cfg(feature = "duckdb")]
            _ => Err(SourceError::Query("diff = \"warehouse\" needs a Postgres, MariaDB/MySQL or DuckDB source".into())),
        }
    }

    /// The model's columns, without reading its rows (used by `check`).
    pub async fn describe(&self, sql: &str) -> Result<Vec<Column>, SourceError> {
        match self {
            #[cfg(feature = "duckdb")]
            Source::DuckDb(s) => s.describe(sql).await,
            Source::Postgres(s) => s.describe(sql).await,
            Source::Mysql(s) => s.describe(sql).await,
            #[cfg(feature = "duckdb")]
            Source::Command(s) => s.describe(sql).await,
            #[cfg(feature = "duckdb")]
            Source::Events(s) => s.describe(sql).await,
        }
    }

    /// Runs the model and streams its rows; with `after`, only the rows past a cursor. The
    /// source admits exactly one read-only query, and stops it after `timeout`.
    pub async fn stream(&self, sql: &str, after: Option<&After>, timeout: Option<std::time::Duration>) -> Result<ModelStream, SourceError> {
        match self {
            #[cfg(feature = "duckdb")]
            Source::DuckDb(s) => s.stream(sql, after, timeout).await,
            Source::Postgres(s) => s.stream(sql, after, timeout, None).await,
            Source::Mysql(s) => s.stream(sql, after, timeout, None).await,
            #[cfg(feature = "duckdb")]
            Source::Command(s) => s.stream(sql, after, timeout).await,
            #[cfg(feature = "duckdb")]
            Source::Events(s) => s.stream(sql, after, timeout).await,
        }
    }
}
