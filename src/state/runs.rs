//! Run history and the failed-rows list.

use rustc_hash::FxHashMap;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{now, StateError, Store};
use crate::value::Hash128;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    /// Every row that needed sending was written.
    Success,
    /// The run finished, but some rows were rejected or are pending a retry.
    Partial,
    Failed,
    /// The process died while the run was going (found on the next run).
    Interrupted,
    /// Never ran: a sync it runs after (`after`) did not get through. `error` says which.
    Skipped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Skipped => "skipped",
        }
    }
    fn parse(s: &str) -> RunStatus {
        match s {
            "success" => RunStatus::Success,
            "partial" => RunStatus::Partial,
            "failed" => RunStatus::Failed,
            "interrupted" => RunStatus::Interrupted,
            "skipped" => RunStatus::Skipped,
            _ => RunStatus::Running,
        }
    }
}

/// One run of one sync, as stored and as shown by `status`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub sync: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: Option<RunStatus>,
    pub full_resync: bool,
    pub rows_read: i64,
    pub added: i64,
    pub changed: i64,
    pub unchanged: i64,
    pub removed: i64,
    pub written: i64,
    pub rejected: i64,
    pub retryable: i64,
    pub batches: i64,
    pub error: Option<String>,
}

/// A row the destination has not accepted (yet).
#[derive(Clone, Debug, Serialize)]
pub struct RowError {
    pub sync: String,
    pub key: serde_json::Value,
    pub kind: String,
    pub message: String,
    pub attempts: i64,
    pub first_seen: String,
    pub last_seen: String,
}

pub(super) const RUN_COLUMNS: &str = "id, sync, started_at, finished_at, status, full_resync, rows_read, added, changed, unchanged, \
                           removed, written, rejected, retryable, batches, error";

pub(super) fn run_from(row: &AnyRow) -> Result<RunRecord, sqlx::Error> {
    let status: String = row.try_get(4)?;
    Ok(RunRecord {
        id: row.try_get(0)?,
        sync: row.try_get(1)?,
        started_at: row.try_get(2)?,
        finished_at: row.try_get(3)?,
        status: Some(RunStatus::parse(&status)),
        full_resync: row.try_get::<i64, _>(5)? != 0,
        rows_read: row.try_get(6)?,
        added: row.try_get(7)?,
        changed: row.try_get(8)?,
        unchanged: row.try_get(9)?,
        removed: row.try_get(10)?,
        written: row.try_get(11)?,
        rejected: row.try_get(12)?,
        retryable: row.try_get(13)?,
        batches: row.try_get(14)?,
        error: row.try_get(15)?,
    })
}

/// A `row_errors` row read as (sync, key_json, kind, message, attempts, first_seen, last_seen).
fn error_from(r: &AnyRow) -> Result<RowError, StateError> {
    let key_json: String = r.try_get(1)?;
    Ok(RowError {
        sync: r.try_get(0)?,
        key: super::keys::display_key_json(&key_json),
        kind: r.try_get(2)?,
        message: r.try_get(3)?,
        attempts: r.try_get(4)?,
        first_seen: r.try_get(5)?,
        last_seen: r.try_get(6)?,
    })
}

/// `text` matched literally by LIKE (with `ESCAPE '\'`): its wildcards escaped.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Store {
    /// Records the start of a run. Earlier runs of the sync still marked running were cut off
    /// by a crash or kill: they are marked interrupted.
    pub async fn begin_run(&self, sync: &str, run_id: &str, full_resync: bool) -> Result<String, StateError> {
        let started = now();
        sqlx::query("UPDATE runs SET status = 'interrupted', finished_at = $1 WHERE sync = $2 AND status = 'running'")
            .bind(&started)
            .bind(sync)
            .execute(&self.pool)
            .await?;
        sqlx::query("INSERT INTO runs (id, sync, started_at, status, full_resync) VALUES ($1, $2, $3, 'running', $4)")
            .bind(run_id)
            .bind(sync)
            .bind(&started)
            .bind(full_resync as i64)
            .execute(&self.pool)
            .await?;
        Ok(started)
    }

    pub async fn finish_run(&self, run: &RunRecord) -> Result<(), StateError> {
        let status = run.status.unwrap_or(RunStatus::Failed).as_str();
        sqlx::query(
            "UPDATE runs SET finished_at = $1, status = $2, rows_read = $3, added = $4, changed = $5, unchanged = $6, \
             removed = $7, written = $8, rejected = $9, retryable = $10, batches = $11, error = $12 WHERE id = $13",
        )
        .bind(now())
        .bind(status)
        .bind(run.rows_read)
        .bind(run.added)
        .bind(run.changed)
        .bind(run.unchanged)
        .bind(run.removed)
        .bind(run.written)
        .bind(run.rejected)
        .bind(run.retryable)
        .bind(run.batches)
        .bind(run.error.clone())
        .bind(&run.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a run that never ran (`RunStatus::Skipped`): started and finished now, with
    /// the reason in `error`. Touches no other run: it takes no lock.
    pub async fn record_skipped(&self, run: &RunRecord) -> Result<(), StateError> {
        let at = now();
        sqlx::query(
            "INSERT INTO runs (id, sync, started_at, finished_at, status, full_resync, error) VALUES ($1, $2, $3, $3, 'skipped', 0, $4)",
        )
        .bind(&run.id)
        .bind(&run.sync)
        .bind(&at)
        .bind(run.error.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Up to `limit` runs of `sync` that got through (success or partial), newest first, but
    /// run `except` (the run asking).
    pub async fn runs_through(&self, sync: &str, limit: i64, except: &str) -> Result<Vec<RunRecord>, StateError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE sync = $1 AND status IN ('success', 'partial') AND id <> $2 \
             ORDER BY started_at DESC, id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql).bind(sync).bind(except).bind(limit).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(run_from).collect::<Result<Vec<_>, _>>()?)
    }

    /// When the newest run of `sync` started, whatever became of it (running included).
    pub async fn last_start(&self, sync: &str) -> Result<Option<String>, StateError> {
        let row = sqlx::query("SELECT MAX(started_at) FROM runs WHERE sync = $1").bind(sync).fetch_one(&self.pool).await?;
        Ok(row.try_get::<Option<String>, _>(0)?)
    }

    /// The newest run of `sync` that ended (whatever its status), if any.
    pub async fn latest_ended_run(&self, sync: &str) -> Result<Option<RunRecord>, StateError> {
        let sql =
            format!("SELECT {RUN_COLUMNS} FROM runs WHERE sync = $1 AND status <> 'running' ORDER BY started_at DESC, id DESC LIMIT 1");
        let row = sqlx::query(&sql).bind(sync).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(run_from).transpose()?)
    }

    /// Rejected rows with the fingerprint of the version rejected and when: the engine holds them
    /// back while they stay unchanged.
    pub async fn rejected_holds(&self, sync: &str) -> Result<FxHashMap<Hash128, (Hash128, String)>, StateError> {
        let rows = sqlx::query(
            "SELECT key_hash, fingerprint, last_seen FROM row_errors WHERE sync = $1 AND kind = 'rejected' AND fingerprint IS NOT NULL",
        )
        .bind(sync)
        .fetch_all(&self.pool)
        .await?;
        let mut out = FxHashMap::default();
        for row in rows {
            let key: Vec<u8> = row.try_get(0)?;
            let fp: Vec<u8> = row.try_get(1)?;
            out.insert(super::hash_from(&key), (super::hash_from(&fp), row.try_get::<String, _>(2)?));
        }
        Ok(out)
    }

    /// When the sync's last run that got through (success or partial) started.
    pub async fn last_completed_start(&self, sync: &str) -> Result<Option<String>, StateError> {
        let row = sqlx::query("SELECT MAX(started_at) FROM runs WHERE sync = $1 AND status IN ('success', 'partial')")
            .bind(sync)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<String>, _>(0)?)
    }

    pub async fn runs(&self, sync: &str, limit: i64) -> Result<Vec<RunRecord>, StateError> {
        self.runs_page(sync, 0, limit).await
    }

    /// Runs of `sync`, newest first, `offset` of them skipped (the console's run history).
    pub async fn runs_page(&self, sync: &str, offset: i64, limit: i64) -> Result<Vec<RunRecord>, StateError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE sync = $1 ORDER BY started_at DESC, id DESC LIMIT $2 OFFSET $3");
        let rows = sqlx::query(&sql).bind(sync).bind(limit).bind(offset).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(run_from).collect::<Result<Vec<_>, _>>()?)
    }

    pub async fn count_runs(&self, sync: &str) -> Result<i64, StateError> {
        let row = sqlx::query("SELECT COUNT(*) FROM runs WHERE sync = $1").bind(sync).fetch_one(&self.pool).await?;
        Ok(row.try_get(0)?)
    }

    /// Keeps a finished run's report (`sluice run --json`'s form, alerts included) beside its
    /// row, for the console's run page.
    pub async fn set_run_report(&self, run_id: &str, report_json: &str) -> Result<(), StateError> {
        sqlx::query("UPDATE runs SET report_json = $1 WHERE id = $2").bind(report_json).bind(run_id).execute(&self.pool).await?;
        Ok(())
    }

    /// One run of `sync`, and its report when one was kept.
    pub async fn run_with_report(&self, sync: &str, run_id: &str) -> Result<Option<(RunRecord, Option<String>)>, StateError> {
        let sql = format!("SELECT {RUN_COLUMNS}, report_json FROM runs WHERE sync = $1 AND id = $2");
        let Some(row) = sqlx::query(&sql).bind(sync).bind(run_id).fetch_optional(&self.pool).await? else { return Ok(None) };
        Ok(Some((run_from(&row)?, row.try_get(16)?)))
    }

    /// A page of `sync`'s pending rows, oldest first, and how many match in all. `search`
    /// keeps rows whose key or reason contains it (any case).
    pub async fn row_errors_page(
        &self,
        sync: &str,
        search: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<RowError>, i64), StateError> {
        let filter = " AND (LOWER(key_json) LIKE $2 ESCAPE '\\' OR LOWER(message) LIKE $2 ESCAPE '\\')";
        let pattern = search.map(|s| format!("%{}%", like_escape(&s.to_lowercase())));
        let (filter, pattern) = match &pattern {
            Some(p) => (filter, p.as_str()),
            None => ("", ""),
        };
        let count = format!("SELECT COUNT(*) FROM row_errors WHERE sync = $1{filter}");
        let mut q = sqlx::query(&count).bind(sync);
        if !filter.is_empty() {
            q = q.bind(pattern);
        }
        let total: i64 = q.fetch_one(&self.pool).await?.try_get(0)?;
        let (l, o) = if filter.is_empty() { ("$2", "$3") } else { ("$3", "$4") };
        let page = format!(
            "SELECT sync, key_json, kind, message, attempts, first_seen, last_seen FROM row_errors \
             WHERE sync = $1{filter} ORDER BY first_seen, key_json LIMIT {l} OFFSET {o}"
        );
        let mut q = sqlx::query(&page).bind(sync);
        if !filter.is_empty() {
            q = q.bind(pattern);
        }
        let rows = q.bind(limit).bind(offset).fetch_all(&self.pool).await?;
        Ok((rows.iter().map(error_from).collect::<Result<_, _>>()?, total))
    }

    /// (rejected, retryable) counts of pending rows, for every sync that has any.
    pub async fn error_counts_all(&self) -> Result<std::collections::HashMap<String, (i64, i64)>, StateError> {
        let rows = sqlx::query("SELECT sync, kind, COUNT(*) FROM row_errors GROUP BY sync, kind").fetch_all(&self.pool).await?;
        let mut out = std::collections::HashMap::<String, (i64, i64)>::new();
        for r in rows {
            let (sync, kind, n): (String, String, i64) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            let counts = out.entry(sync).or_default();
            match kind.as_str() {
                "rejected" => counts.0 += n,
                _ => counts.1 += n,
            }
        }
        Ok(out)
    }

    /// Rows of `sync` not accepted by the destination, oldest first.
    pub async fn row_errors(&self, sync: &str, limit: i64) -> Result<Vec<RowError>, StateError> {
        let rows = sqlx::query(
            "SELECT sync, key_json, kind, message, attempts, first_seen, last_seen FROM row_errors \
             WHERE sync = $1 ORDER BY first_seen, key_json LIMIT $2",
        )
        .bind(sync)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(error_from).collect()
    }

    /// Key hashes of every pending row of `sync`.
    pub async fn error_hashes(&self, sync: &str) -> Result<Vec<Hash128>, StateError> {
        let rows = sqlx::query("SELECT key_hash FROM row_errors WHERE sync = $1").bind(sync).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(super::hash_from(&r.try_get::<Vec<u8>, _>(0)?))).collect()
    }

    pub async fn forget_errors(&self, sync: &str, hashes: &[Hash128]) -> Result<(), StateError> {
        let mut conn = self.pool.acquire().await?;
        self.delete_errors(&mut conn, sync, hashes).await
    }

    /// Deletes the errors of these keys, on `conn` (a batch's transaction, or the pool's).
    pub(super) async fn delete_errors(&self, conn: &mut sqlx::AnyConnection, sync: &str, hashes: &[Hash128]) -> Result<(), StateError> {
        for chunk in hashes.chunks(super::CHUNK) {
            let sql = self.dialect.for_keys("DELETE FROM row_errors", chunk.len());
            super::bind_keys(sqlx::query(&sql), sync, chunk).execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// (rejected, retryable) counts of pending rows for `sync`.
    pub async fn error_counts(&self, sync: &str) -> Result<(i64, i64), StateError> {
        let rows =
            sqlx::query("SELECT kind, COUNT(*) FROM row_errors WHERE sync = $1 GROUP BY kind").bind(sync).fetch_all(&self.pool).await?;
        let mut counts = (0, 0);
        for r in rows {
            let kind: String = r.try_get(0)?;
            let n: i64 = r.try_get(1)?;
            match kind.as_str() {
                "rejected" => counts.0 = n,
                _ => counts.1 += n,
            }
        }
        Ok(counts)
    }
}
