//! The change log (`sync_changes`): one row per row operation a run sent, with its outcome,
//! written in the batch's own transaction, so the log and the state never disagree. Read by
//! `sluice log`; a plain table people may query (docs/change-log.md keeps it stable).

use std::collections::HashMap;

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
    /// Entries skipped first (a page of the console's change log).
    pub offset: i64,
}

impl ChangeQuery {
    /// The query a person typed: a key (`42`, `col=value,col=value` or a JSON object; matched
    /// against the sync's `key_columns` when known) and a start (an RFC 3339 time or a duration
    /// back from now). Errors name the setting as `{flag}key` / `{flag}since` (`--` for the CLI).
    pub fn parse(key: Option<&str>, since: Option<&str>, key_columns: Option<&[String]>, flag: &str) -> Result<ChangeQuery, String> {
        let keys = match key.map(str::trim).filter(|k| !k.is_empty()) {
            None => Vec::new(),
            Some(k) => key_candidates(k, key_columns, flag)?,
        };
        let since = since.map(str::trim).filter(|s| !s.is_empty()).map(|s| parse_since(s, flag)).transpose()?;
        Ok(ChangeQuery { keys, since, limit: 100, offset: 0 })
    }
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
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {} OFFSET {}", m.nth(next), m.nth(next + 1)));
        let mut q = sqlx::query(&sql).bind(sync);
        if let Some(since) = &query.since {
            q = q.bind(since);
        }
        for key in &query.keys {
            q = q.bind(key);
        }
        let rows: Vec<AnyRow> = q.bind(query.limit).bind(query.offset.max(0)).fetch_all(&self.pool).await?;
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

    /// The fields last written for each of `keys` (plain key JSON, as logged), where the log has
    /// them (`log_values`): a plan's "before" of a changed row.
    pub async fn last_values(&self, sync: &str, keys: &[String]) -> Result<HashMap<String, serde_json::Value>, StateError> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(super::CHUNK) {
            let m = self.dialect;
            let sql = format!(
                "SELECT row_key, fields_json FROM sync_changes WHERE sync = {} AND outcome = 'written' AND fields_json IS NOT NULL \
                 AND row_key IN ({}) ORDER BY id DESC",
                m.nth(1),
                m.in_list(chunk.len(), 2)
            );
            let mut q = sqlx::query(&sql).bind(sync);
            for key in chunk {
                q = q.bind(key);
            }
            for row in q.fetch_all(&self.pool).await? {
                let key: String = row.try_get(0)?;
                // Newest first: the first seen of a key is its last write.
                if found.contains_key(&key) {
                    continue;
                }
                if let Ok(fields) = serde_json::from_str(&row.try_get::<String, _>(1)?) {
                    found.insert(key, fields);
                }
            }
        }
        Ok(found)
    }

    /// Drops a sync's logged changes older than `before` (RFC 3339) and, with `through`, only
    /// those with an id up to it (what `[writeback]` has copied); returns how many.
    pub async fn prune_changes(&self, sync: &str, before: &str, through: Option<i64>) -> Result<u64, StateError> {
        let done = sqlx::query("DELETE FROM sync_changes WHERE sync = $1 AND changed_at < $2 AND id <= $3")
            .bind(sync)
            .bind(before)
            .bind(through.unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

/// `since`: an RFC 3339 time, or a duration back from now ("2h", "7d").
fn parse_since(text: &str, flag: &str) -> Result<String, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(crate::state::stamp(t.with_timezone(&chrono::Utc)));
    }
    let back = humantime::parse_duration(text)
        .ok()
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .and_then(|d| chrono::Utc::now().checked_sub_signed(d))
        .ok_or_else(|| format!("{flag}since {text}: give a time (2026-11-25T09:00:00Z) or a duration back from now (30m, 2h, 7d)"))?;
    Ok(crate::state::stamp(back))
}

/// The stored forms (`{"id":42}`) a key as typed may mean: `42` for a one-column key,
/// `account=7,region=EU` for a composite one, or a JSON object. A value that reads as a number
/// or a boolean may have been stored as one or as text, so both are looked for.
fn key_candidates(text: &str, columns: Option<&[String]>, flag: &str) -> Result<Vec<String>, String> {
    let pairs: Vec<(String, Vec<serde_json::Value>)> = if text.trim_start().starts_with('{') {
        let object: indexmap::IndexMap<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| format!("{flag}key {text}: not a JSON object ({e})"))?;
        object.into_iter().map(|(k, v)| (k, vec![v])).collect()
    } else if text.contains('=') {
        text.split(',')
            .map(|part| {
                let (k, v) = part.split_once('=').ok_or_else(|| format!("{flag}key {text}: write col=value,col=value"))?;
                Ok((k.trim().to_string(), readings(v.trim())))
            })
            .collect::<Result<_, String>>()?
    } else {
        match columns {
            Some([only]) => vec![(only.clone(), readings(text))],
            Some(cols) => {
                return Err(format!(
                    "{flag}key {text}: the key has columns {}: write {}",
                    cols.join(", "),
                    cols.iter().map(|c| format!("{c}=...")).collect::<Vec<_>>().join(",")
                ))
            }
            None => {
                return Err(format!("{flag}key {text}: no sync file names this sync's key columns: write --key '{{\"column\": value}}'"))
            }
        }
    };
    // In key-column order when the sync is known, as the log stores it.
    let mut pairs = pairs;
    if let Some(cols) = columns {
        if let Some(missing) = cols.iter().find(|c| !pairs.iter().any(|(k, _)| k == *c)) {
            return Err(format!("{flag}key {text}: key column `{missing}` is missing (the key is {})", cols.join(", ")));
        }
        pairs.sort_by_key(|(k, _)| cols.iter().position(|c| c == k).unwrap_or(usize::MAX));
    }
    let mut out = vec![indexmap::IndexMap::<String, serde_json::Value>::new()];
    for (column, values) in pairs {
        let mut grown = Vec::new();
        for partial in &out {
            for v in &values {
                let mut next = partial.clone();
                next.insert(column.clone(), v.clone());
                grown.push(next);
            }
        }
        out = grown;
    }
    Ok(out.iter().map(|m| serde_json::to_string(m).unwrap_or_default()).collect())
}

/// What a typed-in value may have been stored as.
fn readings(v: &str) -> Vec<serde_json::Value> {
    let mut out = vec![serde_json::Value::String(v.to_string())];
    if let Ok(i) = v.parse::<i64>() {
        out.push(i.into());
    } else if let Some(f) = v.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
        out.push(serde_json::Value::Number(f));
    } else if let Ok(b) = v.parse::<bool>() {
        out.push(b.into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_numbers_and_text_in_key_order() {
        let one = vec!["id".to_string()];
        assert_eq!(key_candidates("42", Some(&one), "--").unwrap(), [r#"{"id":"42"}"#, r#"{"id":42}"#]);
        let two = vec!["account".to_string(), "region".to_string()];
        assert_eq!(key_candidates("region=EU,account=x", Some(&two), "--").unwrap(), [r#"{"account":"x","region":"EU"}"#]);
        assert!(key_candidates("EU", Some(&two), "--").unwrap_err().contains("account=...,region=..."));
        assert_eq!(key_candidates(r#"{"id": 7}"#, None, "--").unwrap(), [r#"{"id":7}"#]);
    }
}
