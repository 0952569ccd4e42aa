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
    /// RFC 3339 time of the last alert of each kind sent, by event name (`failure`, `late`...).
    pub alerted_at: std::collections::BTreeMap<String, String>,
}

impl AlertState {
    /// When an alert of `event` was last sent, if ever.
    pub fn last(&self, event: &str) -> Option<&str> {
        self.alerted_at.get(event).map(String::as_str)
    }
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
        let failing = sqlx::query("SELECT failing FROM sync_alerts WHERE sync = $1").bind(sync).fetch_optional(&self.pool).await?;
        let failing = match failing {
            Some(r) => {
                let r: AnyRow = r;
                r.try_get::<i64, _>(0)? != 0
            }
            None => false,
        };
        let rows = sqlx::query("SELECT event, alerted_at FROM alert_times WHERE sync = $1").bind(sync).fetch_all(&self.pool).await?;
        let mut alerted_at = std::collections::BTreeMap::new();
        for r in rows {
            alerted_at.insert(r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?);
        }
        Ok(AlertState { failing, alerted_at })
    }

    /// Records what a run's alerts changed, and only that: `failing` when it changed, the time of
    /// each alert sent. Two writers (a run's end, the daemon's late check) never undo each other.
    pub async fn record_alerts(&self, sync: &str, failing: Option<bool>, sent: &[(&str, String)]) -> Result<(), StateError> {
        let mut tx = self.pool.begin().await?;
        if let Some(failing) = failing {
            sqlx::query(
                "INSERT INTO sync_alerts (sync, failing) VALUES ($1, $2) ON CONFLICT (sync) DO UPDATE SET failing = excluded.failing",
            )
            .bind(sync)
            .bind(failing as i64)
            .execute(&mut *tx)
            .await?;
        }
        for (event, at) in sent {
            sqlx::query(
                "INSERT INTO alert_times (sync, event, alerted_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (sync, event) DO UPDATE SET alerted_at = excluded.alerted_at",
            )
            .bind(sync)
            .bind(*event)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Claims the sending of `event` for `sync` at `at`, unless one was sent after `cutoff`
    /// (both `stamp`s): one statement, so of two processes checking at once one sends.
    pub async fn claim_alert(&self, sync: &str, event: &str, at: &str, cutoff: &str) -> Result<bool, StateError> {
        let claimed = sqlx::query(
            "INSERT INTO alert_times (sync, event, alerted_at) VALUES ($1, $2, $3) \
             ON CONFLICT (sync, event) DO UPDATE SET alerted_at = excluded.alerted_at WHERE alert_times.alerted_at < $4 \
             RETURNING event",
        )
        .bind(sync)
        .bind(event)
        .bind(at)
        .bind(cutoff)
        .fetch_optional(&self.pool)
        .await?;
        Ok(claimed.is_some())
    }

    /// Gives back a claim whose alert could not be sent: the time before it, or none.
    pub async fn unclaim_alert(&self, sync: &str, event: &str, before: Option<&str>) -> Result<(), StateError> {
        match before {
            Some(at) => {
                sqlx::query("UPDATE alert_times SET alerted_at = $1 WHERE sync = $2 AND event = $3").bind(at).bind(sync).bind(event)
            }
            None => sqlx::query("DELETE FROM alert_times WHERE sync = $1 AND event = $2").bind(sync).bind(event),
        }
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
