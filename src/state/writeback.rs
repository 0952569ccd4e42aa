//! What `[writeback]` has copied of each sync's run history and change log to the writeback
//! database (`writeback_marks`), and the entries past that mark to copy next. The engine
//! copies (`engine::writeback`); the tables there are keyed, so a copy repeated after a crash
//! between their commit and the mark's is harmless.

use sqlx::Row;

use super::runs::{run_from, RUN_COLUMNS};
use super::{RunRecord, StateError, Store};

/// One change log entry with its id, as the writeback copies it.
#[derive(Clone, Debug)]
pub struct LoggedChange {
    pub id: i64,
    pub run_id: String,
    pub sync: String,
    /// Plain JSON: `{"id":42}`.
    pub row_key: String,
    pub op: String,
    pub outcome: String,
    pub destination_id: Option<String>,
    pub error: Option<String>,
    /// JSON, with `log_values`.
    pub fields: Option<String>,
    pub changed_at: String,
}

/// How far a sync was copied: the last change log id, and the last run's `finished_at`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WritebackMark {
    pub changes_through: i64,
    pub runs_through: String,
}

impl Store {
    pub async fn writeback_mark(&self, sync: &str) -> Result<WritebackMark, StateError> {
        let row = sqlx::query("SELECT changes_through, runs_through FROM writeback_marks WHERE sync = $1")
            .bind(sync)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => WritebackMark { changes_through: r.try_get(0)?, runs_through: r.try_get(1)? },
            None => WritebackMark::default(),
        })
    }

    /// Moves a sync's mark forward (never back: two copies of one sync may race, as a skipped
    /// run's does beside a run's).
    pub async fn set_writeback_mark(&self, sync: &str, mark: &WritebackMark) -> Result<(), StateError> {
        let greatest = self.dialect.greatest();
        let sql = format!(
            "INSERT INTO writeback_marks (sync, changes_through, runs_through) VALUES ($1, $2, $3) \
             ON CONFLICT (sync) DO UPDATE SET changes_through = {greatest}(writeback_marks.changes_through, excluded.changes_through), \
             runs_through = {greatest}(writeback_marks.runs_through, excluded.runs_through)"
        );
        sqlx::query(&sql).bind(sync).bind(mark.changes_through).bind(&mark.runs_through).execute(&self.pool).await?;
        Ok(())
    }

    /// The sync's ended runs that finished after `after` (RFC 3339; '' for all), oldest first.
    pub async fn runs_ended_after(&self, sync: &str, after: &str, limit: i64) -> Result<Vec<RunRecord>, StateError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE sync = $1 AND finished_at IS NOT NULL AND finished_at > $2 \
             AND status <> 'running' ORDER BY finished_at, id LIMIT $3"
        );
        let rows = sqlx::query(&sql).bind(sync).bind(after).bind(limit).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(run_from).collect::<Result<Vec<_>, _>>()?)
    }

    /// The sync's change log entries past `after` (an id), oldest first.
    pub async fn changes_after(&self, sync: &str, after: i64, limit: i64) -> Result<Vec<LoggedChange>, StateError> {
        let rows = sqlx::query(
            "SELECT id, run_id, sync, row_key, op, outcome, destination_id, error, fields_json, changed_at FROM sync_changes \
             WHERE sync = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(sync)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LoggedChange {
                    id: r.try_get(0)?,
                    run_id: r.try_get(1)?,
                    sync: r.try_get(2)?,
                    row_key: r.try_get(3)?,
                    op: r.try_get(4)?,
                    outcome: r.try_get(5)?,
                    destination_id: r.try_get(6)?,
                    error: r.try_get(7)?,
                    fields: r.try_get(8)?,
                    changed_at: r.try_get(9)?,
                })
            })
            .collect()
    }
}
