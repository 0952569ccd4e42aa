//! `source = "stream:NAME"`: a stream's events as the DuckDB table `events (id VARCHAR,
//! received_at TIMESTAMPTZ, payload JSON)`. The engine writes the events a run reads (those past
//! the sync's cursor) to a JSON-lines file, which it owns for the run; this reads that file as
//! the view `events` in an in-memory DuckDB (never held whole), and the model runs over it as
//! any DuckDB model does: `payload->>'email'`.

use std::path::{Path, PathBuf};

use super::duckdb::DuckDbSource;
use super::{After, Column, ModelStream, SourceError};

/// The columns of `events`, in DuckDB's types.
const COLUMNS: &str = "id VARCHAR, received_at TIMESTAMPTZ, payload JSON";

pub struct EventsSource {
    duck: DuckDbSource,
}

impl EventsSource {
    /// Reads the events in `file` (JSON lines: `id`, `received_at`, `payload`); `None`: no
    /// events (an empty table, for `check` or a run with nothing new).
    pub fn new(name: &str, root: &Path, file: Option<&Path>) -> EventsSource {
        let (prelude, readable) = match file {
            None => (format!("CREATE TABLE events ({COLUMNS});"), Vec::new()),
            Some(file) => {
                let path = file.display().to_string().replace('\'', "''");
                let prelude = format!(
                    "CREATE VIEW events AS SELECT * FROM read_json('{path}', format = 'newline_delimited', records = true, \
                     columns = {{'id': 'VARCHAR', 'received_at': 'TIMESTAMPTZ', 'payload': 'JSON'}});"
                );
                (prelude, file.parent().map(PathBuf::from).into_iter().collect())
            }
        };
        EventsSource { duck: DuckDbSource::in_memory(name, root, readable, prelude) }
    }

    pub async fn describe(&self, sql: &str) -> Result<Vec<Column>, SourceError> {
        self.duck.describe(sql).await
    }

    /// The model over the events; `after` is never given (the engine chose the events).
    pub async fn stream(&self, sql: &str, after: Option<&After>, timeout: Option<std::time::Duration>) -> Result<ModelStream, SourceError> {
        self.duck.stream(sql, after, timeout).await
    }
}
