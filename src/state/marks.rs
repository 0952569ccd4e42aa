//! Small per-sync records beside the row state: a cursor sync's high-water mark and the alert
//! bookkeeping (is the sync failing, when was each alert last sent).

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{now, StateError, Store};
use crate::value::Value;

/// A cursor sync's stored high-water mark, and the basis it is valid for.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredCursor {
    pub basis: String,
    pub value: Value,
}

/// What the alerts remember of one sync.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlertState {
    pub failing: bool,
    /// RFC 3339 times of the last alert of each kind, if one was sent.
    pub failure_alerted_at: Option<String>,
    pub rejected_alerted_at: Option<String>,
    pub skipped_alerted_at: Option<String>,
}

impl Store {
    /// The stored high-water mark; `None` when there is none or it cannot be read (a full read
    /// follows, which is always safe).
    pub async fn cursor(&self, sync: &str) -> Result<Option<StoredCursor>, StateError> {
        let row = sqlx::query("SELECT basis, value_json FROM sync_cursors WHERE sync = $1").bind(sync).fetch_optional(&self.pool).await?;
        let Some(row) = row else { return Ok(None) };
        let (basis, json): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        Ok(serde_json::from_str(&json).ok().map(|value| StoredCursor { basis, value }))
    }

    /// Called only after a run committed every row it read (see `engine::cursor`).
    pub async fn set_cursor(&self, sync: &str, cursor: &StoredCursor) -> Result<(), StateError> {
        let json = serde_json::to_string(&cursor.value).map_err(|e| StateError::Config(format!("cannot store the cursor: {e}")))?;
        sqlx::query(
            "INSERT INTO sync_cursors (sync, basis, value_json, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (sync) DO UPDATE SET basis = excluded.basis, value_json = excluded.value_json, updated_at = excluded.updated_at",
        )
        .bind(sync)
        .bind(&cursor.basis)
        .bind(json)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn alert_state(&self, sync: &str) -> Result<AlertState, StateError> {
        let row =
            sqlx::query("SELECT failing, failure_alerted_at, rejected_alerted_at, skipped_alerted_at FROM sync_alerts WHERE sync = $1")
                .bind(sync)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            None => AlertState::default(),
            Some(r) => {
                let r: AnyRow = r;
                AlertState {
                    failing: r.try_get::<i64, _>(0)? != 0,
                    failure_alerted_at: r.try_get(1)?,
                    rejected_alerted_at: r.try_get(2)?,
                    skipped_alerted_at: r.try_get(3)?,
                }
            }
        })
    }

    pub async fn set_alert_state(&self, sync: &str, state: &AlertState) -> Result<(), StateError> {
        sqlx::query(
            "INSERT INTO sync_alerts (sync, failing, failure_alerted_at, rejected_alerted_at, skipped_alerted_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (sync) DO UPDATE SET failing = excluded.failing, failure_alerted_at = excluded.failure_alerted_at, \
             rejected_alerted_at = excluded.rejected_alerted_at, skipped_alerted_at = excluded.skipped_alerted_at",
        )
        .bind(sync)
        .bind(state.failing as i64)
        .bind(state.failure_alerted_at.clone())
        .bind(state.rejected_alerted_at.clone())
        .bind(state.skipped_alerted_at.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
