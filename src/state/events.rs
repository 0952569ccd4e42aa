//! Events posted to the daemon's `POST /hooks/{stream}` (`stream_events`): stored in one
//! transaction before the daemon answers, read by the syncs over the stream from their cursor on,
//! pruned once past `retain` and read by every one of them.
//!
//! `seq` orders a stream's events as they were committed: SQLite has one writer at a time, and
//! Postgres inserts into one stream take the stream's advisory lock, so no reader ever sees an
//! event before one with a lower `seq` of the same stream commits (its cursor would skip it).

use std::io::Write;

use futures_util::TryStreamExt;
use sqlx::Row;

use super::{now, Dialect, StateError, Store};

/// What storing an event did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Appended {
    /// Stored, as the stream's event `seq`.
    Stored(i64),
    /// A delivery with this id is stored already (the sender retried): nothing stored.
    Duplicate,
}

impl Store {
    /// Stores one event of `stream`; `payload` is JSON text on one line.
    pub async fn append_event(&self, stream: &str, id: &str, payload: &str) -> Result<Appended, StateError> {
        let mut tx = self.pool.begin().await?;
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('sluice_stream:' || $1)::int8)").bind(stream).execute(&mut *tx).await?;
        }
        let seq: Option<i64> = sqlx::query_scalar(
            "INSERT INTO stream_events (stream, id, received_at, payload) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (stream, id) DO NOTHING RETURNING seq",
        )
        .bind(stream)
        .bind(id)
        .bind(now())
        .bind(payload)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(seq.map_or(Appended::Duplicate, Appended::Stored))
    }

    /// The `seq` of the stream's latest event (`None`: it holds none).
    pub async fn last_event(&self, stream: &str) -> Result<Option<i64>, StateError> {
        Ok(sqlx::query_scalar("SELECT MAX(seq) FROM stream_events WHERE stream = $1").bind(stream).fetch_one(&self.pool).await?)
    }

    /// Writes the stream's events with `after < seq <= upto` to `out` as JSON lines
    /// (`{"id", "received_at", "payload"}`), in `seq` order, streamed: never held whole. The count.
    pub async fn write_events(&self, stream: &str, after: i64, upto: i64, out: &mut impl Write) -> Result<u64, StateError> {
        let mut rows =
            sqlx::query("SELECT id, received_at, payload FROM stream_events WHERE stream = $1 AND seq > $2 AND seq <= $3 ORDER BY seq")
                .bind(stream)
                .bind(after)
                .bind(upto)
                .fetch(&self.pool);
        let mut written = 0;
        let io = |e: std::io::Error| StateError::Config(format!("cannot write the stream's events to a temporary file: {e}"));
        while let Some(row) = rows.try_next().await? {
            let (id, received_at, payload): (String, String, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            // The payload was checked to be JSON when stored; it goes in as it is.
            let head = serde_json::to_string(&serde_json::json!({ "id": id, "received_at": received_at }))
                .map_err(|e| StateError::Corrupt(e.to_string()))?;
            let head = head.strip_suffix('}').unwrap_or(&head);
            writeln!(out, "{head},\"payload\":{payload}}}").map_err(io)?;
            written += 1;
        }
        Ok(written)
    }

    /// Drops the stream's events received before `before` (RFC 3339) that every sync over it
    /// has read (`seq <= read_by_all`). The count dropped.
    pub async fn prune_events(&self, stream: &str, before: &str, read_by_all: i64) -> Result<u64, StateError> {
        let done = sqlx::query("DELETE FROM stream_events WHERE stream = $1 AND received_at < $2 AND seq <= $3")
            .bind(stream)
            .bind(before)
            .bind(read_by_all)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// When the oldest event of the stream past `after` was received (RFC 3339): the oldest one a
    /// sync whose cursor is `after` has not read.
    pub async fn oldest_unread(&self, stream: &str, after: i64) -> Result<Option<String>, StateError> {
        Ok(sqlx::query_scalar("SELECT MIN(received_at) FROM stream_events WHERE stream = $1 AND seq > $2")
            .bind(stream)
            .bind(after)
            .fetch_one(&self.pool)
            .await?)
    }

    /// How many events the stream holds.
    pub async fn count_events(&self, stream: &str) -> Result<i64, StateError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM stream_events WHERE stream = $1").bind(stream).fetch_one(&self.pool).await?)
    }

    /// The event `seq` a sync over a stream has read up to (its cursor), 0 when none yet.
    pub async fn stream_cursor(&self, sync: &str) -> Result<i64, StateError> {
        Ok(match self.cursor(sync).await? {
            Some(super::StoredCursor { value: crate::value::Value::Int(seq), .. }) => seq,
            _ => 0,
        })
    }
}
