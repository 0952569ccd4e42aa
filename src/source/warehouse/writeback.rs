//! `[writeback]`: the run history and the change log, written to two tables in a source
//! database, for models to join with (which contacts failed to reach the CRM this week?). The
//! tables' shape is docs/writeback.md's, kept stable: columns are only ever added.
//!
//! Written on the warehouse diff's own connections (which may write; the models' cannot):
//! Postgres and MariaDB/MySQL in a schema (database) of the writeback's, DuckDB in a file of
//! sluice's own beside the source (`sluice-log.duckdb` in its `state_directory`), which the
//! source's models see attached read-only under the schema's name. Every insert is keyed (a run's
//! id; a change's run id and log id) and skips what is there, so writing a batch again is harmless.

use sqlx::query_builder::Separated;
use sqlx::{Database, Encode, MySql, Postgres, QueryBuilder, Type};

use super::{SourceError, WarehouseState};

/// One ended run, as `sluice_runs` holds it. Times are RFC 3339 UTC.
#[derive(Clone, Debug)]
pub struct RunRow {
    pub run_id: String,
    pub sync: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
    pub full_resync: bool,
    /// rows_read, added, changed, unchanged, removed, written, rejected, retryable, batches.
    pub counts: [i64; 9],
    pub error: Option<String>,
}

/// The count columns of `sluice_runs`, in `RunRow::counts`' order.
const COUNTS: [&str; 9] = ["rows_read", "added", "changed", "unchanged", "removed", "written", "rejected", "retryable", "batches"];

/// One change log entry, as `sluice_changes` holds it.
#[derive(Clone, Debug)]
pub struct ChangeRow {
    /// The entry's id in sluice's state store (with `run_id`, the table's key).
    pub id: i64,
    pub run_id: String,
    pub sync: String,
    /// JSON: `{"id":42}`.
    pub row_key: String,
    pub op: String,
    pub outcome: String,
    pub destination_id: Option<String>,
    pub error: Option<String>,
    /// JSON, for syncs with `log_values`.
    pub fields: Option<String>,
    pub changed_at: String,
}

/// The DuckDB file's name (in the source's `state_directory`); `-` keeps it apart from the
/// warehouse diff's per-sync files, whose names never hold one.
pub const DUCKDB_LOG: &str = "sluice-log";

fn instant(text: &str) -> Result<chrono::DateTime<chrono::Utc>, SourceError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .map_err(|e| SourceError::Tables(format!("[writeback]: a time `{text}` in the state store is not RFC 3339: {e} (a bug)")))
}

fn failed(place: &str, what: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::Tables(format!(
        "the writeback's tables in {place} ({what}): {e} (if the server refused it: the source's user needs to create \
         the schema and tables, or have them created, and to insert into them: docs/writeback.md)"
    ))
}

impl WarehouseState {
    /// Creates the schema and both tables when missing.
    pub async fn ensure_log(&self, schema: &str) -> Result<(), SourceError> {
        match self {
            WarehouseState::Postgres(s) => {
                // Only what is missing: CREATE ... IF NOT EXISTS asks for the CREATE privilege
                // even when there is nothing to create, which a role given the tables may lack.
                let place = format!("schema `{schema}`");
                let (schema_there, runs_there, changes_there): (bool, bool, bool) = sqlx::query_as(
                    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1), \
                     to_regclass(format('%I.sluice_runs', $1::text)) IS NOT NULL, \
                     to_regclass(format('%I.sluice_changes', $1::text)) IS NOT NULL",
                )
                .bind(schema)
                .fetch_one(&s.pool)
                .await
                .map_err(|e| failed(&place, "looking for them", e))?;
                let sql = ddl(&format!("\"{schema}\""), "TEXT", "TIMESTAMPTZ", "JSONB");
                for (there, sql) in [schema_there, runs_there, changes_there].into_iter().zip(sql) {
                    if !there {
                        sqlx::query(&sql).execute(&s.pool).await.map_err(|e| failed(&place, "creating", e))?;
                    }
                }
                Ok(())
            }
            WarehouseState::Mysql(s) => {
                let place = format!("database `{schema}`");
                // (MariaDB's CREATE SCHEMA is its CREATE DATABASE.)
                for sql in ddl(&format!("`{schema}`"), "VARCHAR(255)", "DATETIME(3)", "JSON") {
                    sqlx::query(&sql).execute(&s.pool).await.map_err(|e| failed(&place, "creating", e))?;
                }
                Ok(())
            }
            #[cfg(feature = "duckdb")]
            WarehouseState::Duckdb(s) => s.write_log(Vec::new(), Vec::new()).await,
        }
    }

    /// Writes runs and changes, in one transaction; rows already there are left as they are.
    pub async fn write_log(&self, schema: &str, runs: &[RunRow], changes: &[ChangeRow]) -> Result<(), SourceError> {
        match self {
            WarehouseState::Postgres(s) => {
                let place = format!("schema `{schema}`");
                let mut tx = s.pool.begin().await.map_err(|e| failed(&place, "connecting", e))?;
                if !runs.is_empty() {
                    let times = runs
                        .iter()
                        .map(|r| Ok((instant(&r.started_at)?, r.finished_at.as_deref().map(instant).transpose()?)))
                        .collect::<Result<Vec<_>, SourceError>>()?;
                    let mut q = QueryBuilder::<Postgres>::new(format!("INSERT INTO \"{schema}\".sluice_runs ({}) ", run_columns()));
                    q.push_values(runs.iter().zip(times), |mut b, (r, (started, finished))| bind_run(&mut b, r, started, finished));
                    q.push(" ON CONFLICT (run_id) DO NOTHING");
                    q.build().execute(&mut *tx).await.map_err(|e| failed(&place, "writing runs", e))?;
                }
                if !changes.is_empty() {
                    let times = changes.iter().map(|c| instant(&c.changed_at)).collect::<Result<Vec<_>, _>>()?;
                    let mut q = QueryBuilder::<Postgres>::new(format!("INSERT INTO \"{schema}\".sluice_changes ({CHANGE_COLUMNS}) "));
                    q.push_values(changes.iter().zip(times), |mut b, (c, at)| bind_change(&mut b, c, at, "::jsonb"));
                    q.push(" ON CONFLICT (run_id, id) DO NOTHING");
                    q.build().execute(&mut *tx).await.map_err(|e| failed(&place, "writing changes", e))?;
                }
                tx.commit().await.map_err(|e| failed(&place, "committing", e))
            }
            WarehouseState::Mysql(s) => {
                let place = format!("database `{schema}`");
                // DATETIME has no zone: UTC, as sluice's own MariaDB session is.
                let naive = |t: &str| instant(t).map(|t| t.naive_utc());
                let mut tx = s.pool.begin().await.map_err(|e| failed(&place, "connecting", e))?;
                if !runs.is_empty() {
                    let times = runs
                        .iter()
                        .map(|r| Ok((naive(&r.started_at)?, r.finished_at.as_deref().map(naive).transpose()?)))
                        .collect::<Result<Vec<_>, SourceError>>()?;
                    let mut q = QueryBuilder::<MySql>::new(format!("INSERT INTO `{schema}`.sluice_runs ({}) ", run_columns()));
                    q.push_values(runs.iter().zip(times), |mut b, (r, (started, finished))| bind_run(&mut b, r, started, finished));
                    q.push(" ON DUPLICATE KEY UPDATE run_id = run_id");
                    q.build().execute(&mut *tx).await.map_err(|e| failed(&place, "writing runs", e))?;
                }
                if !changes.is_empty() {
                    let times = changes.iter().map(|c| naive(&c.changed_at)).collect::<Result<Vec<_>, _>>()?;
                    let mut q = QueryBuilder::<MySql>::new(format!("INSERT INTO `{schema}`.sluice_changes ({CHANGE_COLUMNS}) "));
                    q.push_values(changes.iter().zip(times), |mut b, (c, at)| bind_change(&mut b, c, at, ""));
                    q.push(" ON DUPLICATE KEY UPDATE id = id");
                    q.build().execute(&mut *tx).await.map_err(|e| failed(&place, "writing changes", e))?;
                }
                tx.commit().await.map_err(|e| failed(&place, "committing", e))
            }
            #[cfg(feature = "duckdb")]
            WarehouseState::Duckdb(s) => {
                let _ = schema;
                s.write_log(runs.to_vec(), changes.to_vec()).await
            }
        }
    }
}

/// One run's values, in `run_columns()`' order, for either dialect (`T`: its instant's type).
fn bind_run<'a, DB, T>(b: &mut Separated<'_, 'a, DB, &'static str>, r: &RunRow, started: T, finished: Option<T>)
where
    DB: Database,
    T: 'a + Encode<'a, DB> + Type<DB>,
    Option<T>: 'a + Encode<'a, DB> + Type<DB>,
    String: 'a + Encode<'a, DB> + Type<DB>,
    Option<String>: 'a + Encode<'a, DB> + Type<DB>,
    bool: 'a + Encode<'a, DB> + Type<DB>,
    i64: 'a + Encode<'a, DB> + Type<DB>,
{
    b.push_bind(r.run_id.clone()).push_bind(r.sync.clone()).push_bind(started).push_bind(finished);
    b.push_bind(r.status.clone()).push_bind(r.full_resync);
    for n in r.counts {
        b.push_bind(n);
    }
    b.push_bind(r.error.clone());
}

/// One change's values, in `CHANGE_COLUMNS`' order; `json` casts the JSON columns (`::jsonb`
/// for Postgres, nothing for MariaDB, whose JSON is text).
fn bind_change<'a, DB, T>(b: &mut Separated<'_, 'a, DB, &'static str>, c: &ChangeRow, at: T, json: &str)
where
    DB: Database,
    T: 'a + Encode<'a, DB> + Type<DB>,
    String: 'a + Encode<'a, DB> + Type<DB>,
    Option<String>: 'a + Encode<'a, DB> + Type<DB>,
    i64: 'a + Encode<'a, DB> + Type<DB>,
{
    b.push_bind(c.run_id.clone()).push_bind(c.id).push_bind(c.sync.clone());
    b.push_bind(c.row_key.clone()).push_unseparated(json.to_string());
    b.push_bind(c.op.clone()).push_bind(c.outcome.clone()).push_bind(c.destination_id.clone()).push_bind(c.error.clone());
    b.push_bind(c.fields.clone()).push_unseparated(json.to_string());
    b.push_bind(at);
}

fn run_columns() -> String {
    format!("run_id, sync, started_at, finished_at, status, full_resync, {}, error", COUNTS.join(", "))
}

const CHANGE_COLUMNS: &str = "run_id, id, sync, row_key, op, outcome, destination_id, error, fields, changed_at";

/// The schema and both tables, in a dialect: `text` a key's text type, `time` an instant's,
/// `json` JSON's.
pub(super) fn ddl(schema: &str, text: &str, time: &str, json: &str) -> Vec<String> {
    let counts: Vec<String> = COUNTS.iter().map(|c| format!("{c} BIGINT NOT NULL")).collect();
    let prefix = if schema.is_empty() { String::new() } else { format!("{schema}.") };
    let mut out = Vec::new();
    if !schema.is_empty() {
        out.push(format!("CREATE SCHEMA IF NOT EXISTS {schema}"));
    }
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {prefix}sluice_runs (run_id {text} NOT NULL PRIMARY KEY, sync {text} NOT NULL, \
         started_at {time} NOT NULL, finished_at {time}, status {text} NOT NULL, full_resync BOOLEAN NOT NULL, {}, error TEXT)",
        counts.join(", ")
    ));
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {prefix}sluice_changes (run_id {text} NOT NULL, id BIGINT NOT NULL, sync {text} NOT NULL, \
         row_key {json} NOT NULL, op {text} NOT NULL, outcome {text} NOT NULL, destination_id TEXT, error TEXT, fields {json}, \
         changed_at {time} NOT NULL, PRIMARY KEY (run_id, id))"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_are_keyed_so_a_batch_written_twice_is_written_once() {
        let sql = ddl("\"s\"", "TEXT", "TIMESTAMPTZ", "JSONB");
        assert_eq!(sql[0], "CREATE SCHEMA IF NOT EXISTS \"s\"");
        assert!(sql[1].contains("\"s\".sluice_runs (run_id TEXT NOT NULL PRIMARY KEY"), "{}", sql[1]);
        assert!(sql[1].contains("rows_read BIGINT NOT NULL, added BIGINT NOT NULL"), "{}", sql[1]);
        assert!(sql[2].ends_with("PRIMARY KEY (run_id, id))"), "{}", sql[2]);
        assert_eq!(ddl("", "VARCHAR", "TIMESTAMPTZ", "JSON").len(), 2, "DuckDB's file has no schema of its own");
    }
}
