//! The change log (`sync_changes`): one row per row operation a run sent, with its outcome,
//! written in the batch's own transaction, so the log and the state never disagree. Read by
//! `sluice log`; a plain table people may query (docs/change-log.md keeps it stable).

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{packed, Committed, StateError, Store};
use crate::destinations::RowOutcome;

/// One logged operation, as `sluice log` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ChangeRecord {
    pub run_id: String,
    pub sync: String,
    pub key: serde_json::Value,
    pub op: String,
    pub outcome: String,
    pub destination_id: Option<String>,
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<serde_json::Value>,
    pub changed_at: String,
}

/// What `changes` returns: the newest first, filtered.
#[derive(Clone, Debug, Default)]
pub struct ChangeQuery {
    /// Only these keys (plain JSON objects, as stored in `row_key`); all when empty.
    pub keys: Vec<String>,
    /// Only changes at or after this RFC 3339 time.
    pub since: Option<String>,
    pub limit: i64,
}

const LOG: &str = "INSERT INTO sync_changes (run_id, sync, row_key, op, outcome, destination_id, error, fields_json, changed_at)";

impl Store {
    pub(super) async fn log_changes(
        &self,
        tx: &mut Transaction<'_, Any>,
        sync: &str,
        run_id: &str,
        items: &[Committed<'_>],
        now: &str,
    ) -> Result<(), StateError> {
        if items.is_empty() {
            return Ok(());
        }
        // One JSON array for the batch, unpacked by the database (`Dialect::json_rows`); the run,
        // the sync and the time bound once. Six binds per row through sqlx's `Any` driver were
        // most of the log's cost.
        let m = self.dialect;
        let plain = |c: &Committed| c.fields_json.is_none() && matches!(c.outcome, RowOutcome::Written { destination_id: None });
        // The usual batch: every row written, with one operation, no record id and no values
        // logged. Then only the keys travel, one JSON string a row, and the operation is bound
        // once: SQLite reads a string row without rendering and parsing an array per row (see
        // `Store::stage`).
        if let Some(op) = items.first().map(|c| c.op).filter(|op| items.iter().all(|c| c.op == *op && plain(c))) {
            let keys: Vec<&str> = items.iter().map(|c| c.shown_key).collect();
            let sql = format!(
                "{LOG} SELECT {}, {}, {}, {}, 'written', NULL, NULL, NULL, {} {}",
                m.nth(1),
                m.nth(2),
                m.text_row(),
                m.nth(3),
                m.nth(4),
                m.json_rows(5)
            );
            sqlx::query(&sql).bind(run_id).bind(sync).bind(op.as_str()).bind(now).bind(packed(&keys)?).execute(&mut **tx).await?;
            return Ok(());
        }
        let rows: Vec<_> = items
            .iter()
            .map(|c| {
                let (outcome, id, error) = match c.outcome {
                    RowOutcome::Written { destination_id } => ("written", destination_id.as_deref(), None),
                    RowOutcome::Rejected(m) | RowOutcome::RefusedInGroup(m) => ("rejected", None, Some(m.as_str())),
                    RowOutcome::Retryable(m) => ("retryable", None, Some(m.as_str())),
                };
                (c.shown_key, c.op.as_str(), outcome, id, error, c.fields_json)
            })
            .collect();
        let fields: Vec<String> = (0..6).map(|i| m.field(i)).collect();
        let sql = format!("{LOG} SELECT {}, {}, {}, {} {}", m.nth(1), m.nth(2), fields.join(", "), m.nth(3), m.json_rows(4));
        sqlx::query(&sql).bind(run_id).bind(sync).bind(now).bind(packed(&rows)?).execute(&mut **tx).await?;
        Ok(())
    }

    /// A sync's logged changes, newest first.
    pub async fn changes(&self, sync: &str, query: &ChangeQuery) -> Result<Vec<ChangeRecord>, StateError> {
        let m = self.dialect;
        let mut sql = format!(
            "SELECT run_id, sync, row_key, op, outcome, destination_id, error, fields_json, changed_at FROM sync_changes WHERE sync = {}",
            m.nth(1)
        );
        let mut next = 2;
        if query.since.is_some() {
            sql.push_str(&format!(" AND changed_at >= {}", m.nth(next)));
            next += 1;
        }
        if !query.keys.is_empty() {
            sql.push_str(&format!(" AND row_key IN ({})", m.in_list(query.keys.len(), next)));
            next += query.keys.len();
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", m.nth(next)));
        let mut q = sqlx::query(&sql).bind(sync);
        if let Some(since) = &query.since {
            q = q.bind(since);
        }
        for key in &query.keys {
            q = q.bind(key);
        }
        let rows: Vec<AnyRow> = q.bind(query.limit).fetch_all(&self.pool).await?;
        let json = |text: Option<String>| text.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)));
        rows.into_iter()
            .map(|r| {
                Ok(ChangeRecord {
                    run_id: r.try_get(0)?,
                    sync: r.try_get(1)?,
                    key: json(Some(r.try_get(2)?)).unwrap_or_default(),
                    op: r.try_get(3)?,
                    outcome: r.try_get(4)?,
                    destination_id: r.try_get(5)?,
                    error: r.try_get(6)?,
                    fields: json(r.try_get(7)?),
                    changed_at: r.try_get(8)?,
                })
            })
            .collect()
    }

    /// Drops a sync's logged changes older than `before` (RFC 3339); returns how many.
    pub async fn prune_changes(&self, sync: &str, before: &str) -> Result<u64, StateError> {
        let done =
            sqlx::query("DELETE FROM sync_changes WHERE sync = $1 AND changed_at < $2").bind(sync).bind(before).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}
