//! The state store: what each destination holds (key, fingerprint, record id), run history and
//! per-row errors. SQLite by default, Postgres for a shared store; one SQL dialect subset serves
//! both through sqlx's `Any` driver. Migrations live in `migrations/{sqlite,postgres}` and are
//! applied on open.
//!
//! Invariant: row state changes only in [`Store::commit_batch`], for rows the destination
//! reported written, in one transaction per batch. Those rows are staged (`sync_rows_staged`,
//! appended) and [`Store::fold`]ed into `sync_rows` in key order when the run ends or before
//! the state is next read; readers of a sync's rows go through `snapshot`, which folds first.

mod changes;
mod marks;
mod runs;

use std::path::Path;

use chrono::{SecondsFormat, Utc};
use rustc_hash::FxHashMap;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

pub use changes::{ChangeQuery, ChangeRecord};
pub use marks::{AlertState, StoredCursor};
pub use runs::{RowError, RunRecord, RunStatus};

use crate::destinations::{Op, RowOutcome};
use crate::value::Hash128;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store: {0}")]
    Config(String),
    #[error("state store: {0}")]
    Db(sqlx::Error),
    #[error(
        "state store: the state database is locked by another process (another `sluice run` or `sluice daemon` on this project?): \
         wait for it to finish, or give each its own [state] url"
    )]
    Locked,
    #[error("state store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("state store: the stored state is damaged: {0}")]
    Corrupt(String),
}

pub struct Store {
    pool: AnyPool,
    marks: Marks,
}

impl From<sqlx::Error> for StateError {
    fn from(e: sqlx::Error) -> Self {
        // SQLite's SQLITE_BUSY (5) after the busy timeout: someone else holds the write lock.
        match &e {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("5") || db.message().contains("database is locked") => {
                StateError::Locked
            }
            _ => StateError::Db(e),
        }
    }
}

/// One direct connection before the pool: an unreachable server fails at once with the reason,
/// naming `host:port` only (the URL may hold a password), instead of the pool's "timed out".
async fn reachable(url: &str) -> Result<(), StateError> {
    use sqlx::Connection;
    let shown =
        reqwest::Url::parse(url).map(|u| format!("{}:{}", u.host_str().unwrap_or(""), u.port().unwrap_or(5432))).unwrap_or_default();
    let Some(why) = crate::probe::why_unreachable(sqlx::AnyConnection::connect(url)).await else {
        return Ok(());
    };
    Err(StateError::Config(format!("cannot reach the state database at {shown}: {why} (is it up? check [state] url)")))
}

/// What the store remembers of a row the destination holds.
#[derive(Clone, Debug)]
pub struct StoredRow {
    pub key_json: String,
    pub destination_id: Option<String>,
}

/// One row's result, as committed after a batch.
pub struct Committed<'a> {
    pub key_hash: Hash128,
    pub key_json: &'a str,
    pub fingerprint: Hash128,
    pub op: Op,
    pub outcome: &'a RowOutcome,
    /// The key as plain JSON (`{"id":42}`), for the change log.
    pub shown_key: &'a str,
    /// The fields sent, as a JSON object, when the sync logs values.
    pub fields_json: Option<&'a str>,
}

/// Rows per multi-row statement: well under SQLite's and Postgres' bind-parameter limits.
const CHUNK: usize = 500;
/// Rows per page of a snapshot read (about 3 MB of hex).
const SNAPSHOT_PAGE: i64 = 50_000;

pub(crate) fn now() -> String {
    stamp(Utc::now())
}

/// A time as the store writes it (RFC 3339 UTC, milliseconds): text that sorts as time does.
pub fn stamp(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn hash_bytes(h: Hash128) -> Vec<u8> {
    h.to_be_bytes().to_vec()
}

fn hash_from(bytes: &[u8]) -> Hash128 {
    let mut buf = [0u8; 16];
    let n = bytes.len().min(16);
    buf[16 - n..].copy_from_slice(&bytes[..n]);
    u128::from_be_bytes(buf)
}

/// How a statement numbers its parameters. Postgres needs `$n`. SQLite takes `?`: sqlx looks up
/// each *named* parameter (`$n` is a name to SQLite) by a linear scan, which made binding a
/// 3,000-parameter batch insert quadratic (a third of a full sync's CPU time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Marks {
    Dollar,
    Question,
}

impl Marks {
    /// The placeholder of parameter `n` (1-based). With `Question`, parameters must be bound
    /// in the order they appear, which every statement here does.
    pub(crate) fn nth(self, n: usize) -> String {
        match self {
            Marks::Dollar => format!("${n}"),
            Marks::Question => "?".to_string(),
        }
    }

    /// `($2, $3, ...), (...)` for `rows` rows of `cols` parameters, numbering from `first`.
    fn value_lists(self, rows: usize, cols: usize, first: usize) -> String {
        (0..rows)
            .map(|r| {
                let ps: Vec<String> = (0..cols).map(|c| self.nth(first + r * cols + c)).collect();
                format!("({})", ps.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(crate) fn in_list(self, n: usize, first: usize) -> String {
        (0..n).map(|i| self.nth(first + i)).collect::<Vec<_>>().join(", ")
    }
}

impl Store {
    /// Opens (creating if needed) and migrates the store. A relative SQLite path is relative to
    /// the project root.
    pub async fn open(url: &str, root: &Path) -> Result<Store, StateError> {
        sqlx::any::install_default_drivers();
        let (url, sqlite) = if let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            if path.is_empty() || path == ":memory:" {
                return Err(StateError::Config("an in-memory SQLite store would forget everything: give a file path".into()));
            }
            let path = root.join(path);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| StateError::Config(format!("cannot create {}: {e}", dir.display())))?;
            }
            let query = if query.is_empty() { "mode=rwc".to_string() } else { query.to_string() };
            (format!("sqlite://{}?{query}", path.display()), true)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (url.to_string(), false)
        } else {
            return Err(StateError::Config("[state] url must start with sqlite:// or postgres://".into()));
        };
        if !sqlite {
            reachable(&url).await?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 1 } else { 4 })
            .acquire_timeout(std::time::Duration::from_secs(15))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // WAL lets `status` read while a run writes; the timeout waits out the
                        // other process instead of failing with "database is locked".
                        sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
                        // Batches append to `sync_rows_staged` and the fold writes `sync_rows` in
                        // key order, so a 4 MB page cache does (16 MB took 20 MB more RSS for
                        // nothing); fewer, larger checkpoints write each page fewer times.
                        sqlx::query("PRAGMA cache_size = -4096").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA wal_autocheckpoint = 20000").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA journal_size_limit = 67108864").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| match e {
                // A SQLite connection that cannot even be set up in time: another process holds the lock.
                sqlx::Error::PoolTimedOut if sqlite => StateError::Locked,
                e => e.into(),
            })?;
        let migrated = if sqlite {
            sqlx::migrate!("migrations/sqlite").run(&pool).await
        } else {
            sqlx::migrate!("migrations/postgres").run(&pool).await
        };
        match migrated {
            Ok(()) => Ok(Store { pool, marks: if sqlite { Marks::Question } else { Marks::Dollar } }),
            Err(sqlx::migrate::MigrateError::VersionMissing(v)) => Err(StateError::Config(format!(
                "the state database was written by a newer sluice (its migration {v} is unknown to this version): \
                 upgrade sluice, or point [state] url at another database"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Key hash -> fingerprint of every row the destination holds for `sync`.
    ///
    /// Read in pages of [`SNAPSHOT_PAGE`] rows, each page packed by the database into one hex
    /// string: a million rows arrive as 20 rows rather than a million (per-row decoding and
    /// the SQLite driver's per-row thread hand-off were most of a no-change run).
    ///
    /// Rows a run staged and did not fold (it was killed) are committed state too: a run folds
    /// them first (`fold`); a plan, which writes nothing, lays them over what it read.
    pub async fn snapshot(&self, sync: &str, fold: bool) -> Result<FxHashMap<Hash128, Hash128>, StateError> {
        if fold {
            self.fold(sync).await?;
        }
        let mut map = self.read_snapshot(sync).await?;
        if !fold {
            let sql = format!("SELECT key_hash, fingerprint FROM sync_rows_staged WHERE sync = {} ORDER BY id", self.marks.nth(1));
            for row in sqlx::query(&sql).bind(sync).fetch_all(&self.pool).await? {
                let key = hash_from(&row.try_get::<Vec<u8>, _>(0)?);
                match row.try_get::<Option<Vec<u8>>, _>(1)? {
                    Some(fp) => map.insert(key, hash_from(&fp)),
                    None => map.remove(&key),
                };
            }
        }
        Ok(map)
    }

    async fn read_snapshot(&self, sync: &str) -> Result<FxHashMap<Hash128, Hash128>, StateError> {
        // Sized up front: growing a map of millions of rows doubles its memory while it rehashes.
        let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM sync_rows WHERE sync = {}", self.marks.nth(1)))
            .bind(sync)
            .fetch_one(&self.pool)
            .await?;
        let mut map = FxHashMap::with_capacity_and_hasher(usize::try_from(count).unwrap_or(0), Default::default());
        let pair = match self.marks {
            Marks::Question => "hex(key_hash) || hex(fingerprint)",
            Marks::Dollar => "encode(key_hash || fingerprint, 'hex')",
        };
        let sql = format!(
            "SELECT {agg}, COUNT(*) FROM (SELECT key_hash, fingerprint FROM sync_rows \
             WHERE sync = {p1} AND key_hash > {p2} ORDER BY key_hash LIMIT {SNAPSHOT_PAGE}) page",
            agg = match self.marks {
                Marks::Question => format!("group_concat({pair}, '')"),
                Marks::Dollar => format!("string_agg({pair}, '')"),
            },
            p1 = self.marks.nth(1),
            p2 = self.marks.nth(2),
        );
        let corrupt = |why: String| {
            StateError::Corrupt(format!("sync_rows of `{sync}`: {why}; `sluice reset {sync}` makes the next run send every row again"))
        };
        // Keys compare as bytes in both databases, as big-endian u128s here: the next page
        // starts after the largest key of this one.
        let mut after: Vec<u8> = Vec::new();
        loop {
            let row = sqlx::query(&sql).bind(sync).bind(after.clone()).fetch_one(&self.pool).await?;
            let packed: Option<String> = row.try_get(0)?;
            let n: i64 = row.try_get(1)?;
            let packed = packed.unwrap_or_default();
            if packed.len() as i64 != n * 64 {
                return Err(corrupt(format!("a stored hash is not 16 bytes ({} hex digits for {n} rows)", packed.len())));
            }
            let mut last: Hash128 = 0;
            for pair in packed.as_bytes().chunks_exact(64) {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(pair, &mut bytes).map_err(|e| corrupt(e.to_string()))?;
                let key = hash_from(&bytes[..16]);
                last = last.max(key);
                map.insert(key, hash_from(&bytes[16..]));
            }
            if n < SNAPSHOT_PAGE {
                return Ok(map);
            }
            after = hash_bytes(last);
        }
    }

    /// Whether any row of `sync` has a destination record id (lets the engine skip lookups).
    pub async fn has_destination_ids(&self, sync: &str) -> Result<bool, StateError> {
        let row = sqlx::query("SELECT 1 FROM sync_rows WHERE sync = $1 AND destination_id IS NOT NULL LIMIT 1")
            .bind(sync)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Stored key and record id for the given key hashes (missing hashes are absent). Reads
    /// `sync_rows` only: call it after `snapshot` (which folds) in a run.
    pub async fn lookup(&self, sync: &str, hashes: &[Hash128]) -> Result<FxHashMap<Hash128, StoredRow>, StateError> {
        let mut out = FxHashMap::default();
        for chunk in hashes.chunks(CHUNK) {
            let sql = format!(
                "SELECT key_hash, key_json, destination_id FROM sync_rows WHERE sync = {} AND key_hash IN ({})",
                self.marks.nth(1),
                self.marks.in_list(chunk.len(), 2)
            );
            let mut q = sqlx::query(&sql).bind(sync);
            for h in chunk {
                q = q.bind(hash_bytes(*h));
            }
            for row in q.fetch_all(&self.pool).await? {
                let k: Vec<u8> = row.try_get(0)?;
                out.insert(hash_from(&k), StoredRow { key_json: row.try_get(1)?, destination_id: row.try_get(2)? });
            }
        }
        Ok(out)
    }

    pub async fn config_fingerprint(&self, sync: &str) -> Result<Option<String>, StateError> {
        let row = sqlx::query("SELECT config_fingerprint FROM sync_meta WHERE sync = $1").bind(sync).fetch_optional(&self.pool).await?;
        Ok(row.map(|r: AnyRow| r.try_get(0)).transpose()?)
    }

    pub async fn set_config_fingerprint(&self, sync: &str, fingerprint: &str) -> Result<(), StateError> {
        sqlx::query(
            "INSERT INTO sync_meta (sync, config_fingerprint, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (sync) DO UPDATE SET config_fingerprint = excluded.config_fingerprint, updated_at = excluded.updated_at",
        )
        .bind(sync)
        .bind(fingerprint)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records one batch's outcomes in one transaction: written rows advance `sync_rows` (a
    /// written delete removes the row) and clear their errors; other rows record an error.
    pub async fn commit_batch(&self, sync: &str, run_id: &str, items: &[Committed<'_>]) -> Result<(), StateError> {
        let now = now();
        let mut tx = self.pool.begin().await?;
        let (written, failed): (Vec<&Committed>, Vec<&Committed>) =
            items.iter().partition(|c| matches!(c.outcome, RowOutcome::Written { .. }));

        // Written rows are staged (appended), not written into the clustered `sync_rows`: see
        // `fold`. A delete is staged with no fingerprint.
        for chunk in written.chunks(CHUNK) {
            // The sync and the time bound once per statement (see `log_changes`).
            let m = self.marks;
            let sql = format!(
                "INSERT INTO sync_rows_staged (sync, key_hash, key_json, fingerprint, destination_id, updated_at) \
                 SELECT {}, column1, column2, column3, column4, {} FROM (VALUES {}) AS v",
                m.nth(1),
                m.nth(2),
                m.value_lists(chunk.len(), 4, 3)
            );
            let mut q = sqlx::query(&sql).bind(sync).bind(&now);
            for c in chunk {
                let id = match c.outcome {
                    RowOutcome::Written { destination_id } => destination_id.clone(),
                    _ => None,
                };
                let fingerprint = (c.op != Op::Delete).then(|| hash_bytes(c.fingerprint));
                q = q.bind(hash_bytes(c.key_hash)).bind(c.key_json).bind(fingerprint).bind(id);
            }
            q.execute(&mut *tx).await?;
        }
        // Most syncs have no row errors: one probe instead of a 500-key delete per batch.
        let has_errors =
            sqlx::query("SELECT 1 FROM row_errors WHERE sync = $1 LIMIT 1").bind(sync).fetch_optional(&mut *tx).await?.is_some();
        for chunk in written.chunks(CHUNK).filter(|_| has_errors) {
            let sql = format!(
                "DELETE FROM row_errors WHERE sync = {} AND key_hash IN ({})",
                self.marks.nth(1),
                self.marks.in_list(chunk.len(), 2)
            );
            let mut q = sqlx::query(&sql).bind(sync);
            for c in chunk {
                q = q.bind(hash_bytes(c.key_hash));
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in failed.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO row_errors (sync, key_hash, key_json, kind, message, attempts, first_seen, last_seen, last_run, fingerprint) \
                 VALUES {} ON CONFLICT (sync, key_hash) DO UPDATE SET key_json = excluded.key_json, kind = excluded.kind, \
                 message = excluded.message, attempts = row_errors.attempts + 1, last_seen = excluded.last_seen, \
                 last_run = excluded.last_run, fingerprint = excluded.fingerprint",
                self.marks.value_lists(chunk.len(), 10, 1)
            );
            let mut q = sqlx::query(&sql);
            for c in chunk {
                let (kind, message) = match c.outcome {
                    RowOutcome::Rejected(m) | RowOutcome::RefusedInGroup(m) => ("rejected", m.as_str()),
                    RowOutcome::Retryable(m) => ("retryable", m.as_str()),
                    RowOutcome::Written { .. } => unreachable!("partitioned above"),
                };
                q = q
                    .bind(sync)
                    .bind(hash_bytes(c.key_hash))
                    .bind(c.key_json)
                    .bind(kind)
                    .bind(message)
                    .bind(1i64)
                    .bind(now.clone())
                    .bind(now.clone())
                    .bind(run_id)
                    .bind(hash_bytes(c.fingerprint));
            }
            q.execute(&mut *tx).await?;
        }
        self.log_changes(&mut tx, sync, run_id, items, &now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves the rows staged by `commit_batch` into `sync_rows`, in key order, in one
    /// transaction: a sequential pass over the clustered table instead of one random page per
    /// row per batch. Runs when a run ends and before any run or plan reads the state, so a run
    /// killed before its fold loses nothing. Folding is invisible: staged rows are committed
    /// state either way. Returns the number of staged entries folded.
    ///
    /// A fold sees at most one entry per key: a run stages each key once, and every run folds
    /// (in `snapshot`) before it diffs. Only two runs of one sync at the same time (a CLI run
    /// beside a daemon running it) could stage a key twice: then the newest upsert wins, and an
    /// upsert wins over a delete (a mirror run deletes that row again if it is not in the model).
    pub async fn fold(&self, sync: &str) -> Result<u64, StateError> {
        let m = self.marks;
        // SQLite: take the write lock at once. A read first (MAX below) and a write later fails
        // at once, busy timeout or not, if another process committed in between.
        let mut tx = match m {
            Marks::Question => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Marks::Dollar => self.pool.begin().await?,
        };
        let last: Option<i64> = sqlx::query_scalar(&format!("SELECT MAX(id) FROM sync_rows_staged WHERE sync = {}", m.nth(1)))
            .bind(sync)
            .fetch_one(&mut *tx)
            .await?;
        let Some(last) = last else { return Ok(0) };
        // `id <= last`: a batch another process commits meanwhile (a Postgres store) stays staged.
        let sql = format!(
            "DELETE FROM sync_rows WHERE sync = {} AND key_hash IN \
             (SELECT key_hash FROM sync_rows_staged WHERE sync = {} AND id <= {} AND fingerprint IS NULL)",
            m.nth(1),
            m.nth(2),
            m.nth(3)
        );
        sqlx::query(&sql).bind(sync).bind(sync).bind(last).execute(&mut *tx).await?;
        let columns = "sync, key_hash, key_json, fingerprint, destination_id, updated_at";
        let staged = format!("FROM sync_rows_staged WHERE sync = {} AND id <= {} AND fingerprint IS NOT NULL", m.nth(1), m.nth(2));
        // SQLite upserts row by row in this order, so a later entry of a key overwrites an
        // earlier one; Postgres refuses to touch a row twice in one statement, so it keeps the
        // newest entry per key first.
        let select = match m {
            Marks::Question => format!("SELECT {columns} {staged} ORDER BY key_hash, id"),
            Marks::Dollar => format!("SELECT DISTINCT ON (key_hash) {columns} {staged} ORDER BY key_hash, id DESC"),
        };
        let sql = format!(
            "INSERT INTO sync_rows ({columns}) {select} \
             ON CONFLICT (sync, key_hash) DO UPDATE SET key_json = excluded.key_json, fingerprint = excluded.fingerprint, \
             destination_id = COALESCE(excluded.destination_id, sync_rows.destination_id), updated_at = excluded.updated_at"
        );
        sqlx::query(&sql).bind(sync).bind(last).execute(&mut *tx).await?;
        // When the stage holds nothing else (the usual case), SQLite empties the whole table at
        // once instead of deleting a million rows one by one. Only SQLite: its write lock, taken
        // at BEGIN, keeps other writers out until the commit; a Postgres store's other runs may
        // stage rows between this check and the delete.
        let others = m == Marks::Dollar
            || sqlx::query(&format!("SELECT 1 FROM sync_rows_staged WHERE sync <> {} OR id > {} LIMIT 1", m.nth(1), m.nth(2)))
                .bind(sync)
                .bind(last)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
        let sql = match others {
            true => format!("DELETE FROM sync_rows_staged WHERE sync = {} AND id <= {}", m.nth(1), m.nth(2)),
            false => "DELETE FROM sync_rows_staged".to_string(),
        };
        let clear = sqlx::query(&sql);
        let clear = if others { clear.bind(sync).bind(last) } else { clear };
        let folded = clear.execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(folded)
    }

    /// Forgets everything about `sync` except its run history: the next run sends every row.
    pub async fn reset(&self, sync: &str) -> Result<u64, StateError> {
        self.fold(sync).await?;
        let mut tx = self.pool.begin().await?;
        let removed = sqlx::query("DELETE FROM sync_rows WHERE sync = $1").bind(sync).execute(&mut *tx).await?.rows_affected();
        sqlx::query("DELETE FROM sync_rows_staged WHERE sync = $1").bind(sync).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM row_errors WHERE sync = $1").bind(sync).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM sync_meta WHERE sync = $1").bind(sync).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM sync_cursors WHERE sync = $1").bind(sync).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// Whether the store answers (the daemon's health check).
    pub async fn ping(&self) -> Result<(), StateError> {
        // A real table, so a store that lost its schema fails too.
        sqlx::query("SELECT 1 FROM runs LIMIT 1").execute(&self.pool).await.map(drop).map_err(StateError::from)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_through_bytes() {
        let h: Hash128 = 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10;
        assert_eq!(hash_from(&hash_bytes(h)), h);
        assert_eq!(Marks::Dollar.value_lists(2, 2, 3), "($3, $4), ($5, $6)");
        assert_eq!(Marks::Dollar.in_list(3, 2), "$2, $3, $4");
        assert_eq!(Marks::Question.value_lists(1, 3, 1), "(?, ?, ?)");
    }
}
