//! The state store: what each destination holds (key, fingerprint, record id), run history and
//! per-row errors. SQLite by default, Postgres for a shared store; one SQL dialect subset serves
//! both through sqlx's `Any` driver. Migrations live in `migrations/{sqlite,postgres}` and are
//! applied on open.
//!
//! Invariant: row state changes only in [`Store::commit_batch`], for rows the destination
//! reported written, in one transaction per commit (one or more answered batches). Those rows
//! are staged (`sync_rows_staged`, appended) and [`Store::fold`]ed into `sync_rows` in key order
//! when the run ends or before the state is next read; readers of a sync's rows go through `snapshot`, which folds first.
//! The fold also keeps `sync_row_pages`, the packed copy of each sync's (key hash, fingerprint)
//! pairs that `snapshot` loads (`pages`).

mod changes;
mod commit;
mod events;
pub mod keys;
mod lock;
mod marks;
mod pages;
mod runs;
mod windows;
mod writeback;

use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};
use rustc_hash::FxHashMap;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};

pub use changes::{ChangeQuery, ChangeRecord};
pub use events::Appended;
pub use lock::{holder, SyncLock};
pub use marks::{AlertState, StoredCursor};
pub use pages::FOLD_MERGE_MAX;
pub use runs::{RowError, RunRecord, RunStatus};
pub use writeback::{LoggedChange, WritebackMark};

use crate::destinations::{Op, RowOutcome};
use crate::diff::Stored;
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
    /// Another run of the sync holds its lock.
    #[error("`{sync}` is running already, started by {holder}: this run did not start (wait for that run to end; `sluice status {sync}` shows it)")]
    Busy { sync: String, holder: String },
    /// The run's lock went away under it (see `SyncLock::check`).
    #[error("lost the lock of `{sync}`: {why}; the run stopped, and the next run sends what this one did not commit")]
    LockLost { sync: String, why: String },
    #[error("state store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("state store: the stored state is damaged: {0}")]
    Corrupt(String),
}

pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    locks: lock::Locks,
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

/// Creates a directory only its owner may enter (state, locks: they say what was sent where),
/// with its parents. An existing directory keeps its mode: it is the operator's.
pub(crate) fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Opens (creating if needed) a file only its owner may read or write.
pub(crate) fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)
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
    Err(StateError::Config(format!("cannot reach the state database at {shown}: {}", why.explain("[state] url"))))
}

/// A sync's definition as its last run that got through saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncMeta {
    pub config_fingerprint: String,
    /// The destination identity (a hash) first recorded for the sync: `None` in stores from
    /// before identities were kept.
    pub first_identity: Option<String>,
    /// The destination identity (a hash) of the last run that got through.
    pub identity: Option<String>,
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
pub(crate) const CHUNK: usize = 500;

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

/// Characters of a hash in hex: 16 bytes, two digits each.
const HASH_HEX: usize = 32;

/// A hash as the hex of its big-endian bytes (what `Dialect::unhex` turns back into them).
fn hash_hex(h: Hash128) -> String {
    format!("{h:0HASH_HEX$x}")
}

/// A batch's rows as one JSON array of arrays, bound as a single parameter and unpacked by
/// [`Dialect::json_rows`]: one bind per batch instead of one per cell.
fn packed<T: serde::Serialize>(rows: &[T]) -> Result<String, StateError> {
    serde_json::to_string(rows).map_err(|e| StateError::Config(format!("cannot encode a batch for the state store: {e}")))
}

/// Binds a [`Dialect::for_keys`] statement: the sync, then each key hash.
fn bind_keys<'q>(q: AnyQuery<'q>, sync: &'q str, keys: &[Hash128]) -> AnyQuery<'q> {
    keys.iter().fold(q.bind(sync), |q, h| q.bind(hash_bytes(*h)))
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// The SQL a store speaks where SQLite and Postgres differ: how a statement numbers its
/// parameters, how a batch's JSON unpacks, how hex turns into bytes. Postgres needs `$n`. SQLite
/// takes `?`: sqlx looks up each *named* parameter (`$n` is a name to SQLite) by a linear scan,
/// which made binding a 3,000-parameter batch insert quadratic (a third of a full sync's CPU time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// The placeholder of parameter `n` (1-based). With `Question`, parameters must be bound
    /// in the order they appear, which every statement here does.
    pub(crate) fn nth(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::Sqlite => "?".to_string(),
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

    /// `{head} WHERE sync = $1 AND key_hash IN ($2, ...)` for `n` keys: every per-key statement.
    /// Bind it with [`bind_keys`].
    fn for_keys(self, head: &str, n: usize) -> String {
        format!("{head} WHERE sync = {} AND key_hash IN ({})", self.nth(1), self.in_list(n, 2))
    }

    /// `FROM <rows of the JSON array bound as parameter n>`, in array order: how a batch's rows
    /// reach the database as one parameter (see [`packed`]). Each row is a JSON array whose
    /// elements [`Dialect::field`] reads, or a string that [`Dialect::text_row`] reads.
    ///
    /// Postgres converts the array to `jsonb` once, so each row reaches `field` parsed; with
    /// `json` every row's text was parsed again for each field it gave. SQLite stays with
    /// `json_each`: walking it as JSONB (`json_each(jsonb(?))`) measured no faster on the SQLite
    /// sqlx 0.8 bundles (3.46), and `jsonb_each`, which hands rows over parsed, needs 3.51
    /// (docs/benchmarks.md). Only strings and nulls travel this way, which `jsonb` keeps exactly.
    fn json_rows(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => "FROM json_each(?) AS e ORDER BY e.key".to_string(),
            // Named like SQLite's `json_each` columns, so `field` serves both.
            Dialect::Postgres => format!("FROM jsonb_array_elements(${n}::jsonb) WITH ORDINALITY AS e(value, key) ORDER BY e.key"),
        }
    }

    /// Element `i` of a [`Dialect::json_rows`] row, as text (SQL NULL for a JSON null).
    fn field(self, i: usize) -> String {
        format!("e.value ->> {i}")
    }

    /// A [`Dialect::json_rows`] row that is a JSON string, as text: the cheap form of a row, with
    /// no array to render and parse again for each field (see `Store::stage`).
    fn text_row(self) -> &'static str {
        match self {
            Dialect::Sqlite => "e.value",
            Dialect::Postgres => "(e.value #>> '{}')",
        }
    }

    /// The bytes of a hex text: how [`packed`] rows carry key hashes and fingerprints.
    fn unhex(self, text: &str) -> String {
        match self {
            Dialect::Sqlite => format!("unhex({text})"),
            Dialect::Postgres => format!("decode({text}, 'hex')"),
        }
    }

    /// The larger of two values: `GREATEST` in Postgres, the scalar `MAX` in SQLite.
    fn greatest(self) -> &'static str {
        match self {
            Dialect::Postgres => "GREATEST",
            Dialect::Sqlite => "MAX",
        }
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
        let (url, locks) = if let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            if path.is_empty() || path == ":memory:" {
                return Err(StateError::Config("an in-memory SQLite store would forget everything: give a file path".into()));
            }
            let path = root.join(path);
            if let Some(dir) = path.parent() {
                private_dir(dir).map_err(|e| StateError::Config(format!("cannot create {}: {e}", dir.display())))?;
            }
            // Created here, 0600, before SQLite creates it with the umask's mode; its WAL and
            // shared-memory files take the database file's mode.
            if !path.exists() {
                private_file(&path).map_err(|e| StateError::Config(format!("cannot create {}: {e}", path.display())))?;
            }
            let query = if query.is_empty() { "mode=rwc".to_string() } else { query.to_string() };
            let locks = lock::Locks::Dir(PathBuf::from(format!("{}.locks", path.display())));
            (format!("sqlite://{}?{query}", path.display()), Some(locks))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (url.to_string(), None)
        } else {
            return Err(StateError::Config("[state] url must start with sqlite:// or postgres://".into()));
        };
        let sqlite = locks.is_some();
        let locks = locks.unwrap_or_else(|| lock::Locks::Postgres(secrecy::SecretString::from(url.clone())));
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
                        // Every commit reaches the disk before the run goes on: a commit records
                        // what a destination accepted, and one lost to a power cut would be sent
                        // again (NORMAL, in WAL mode, loses the last commits then).
                        sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await?;
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
            Ok(()) => Ok(Store { pool, dialect: if sqlite { Dialect::Sqlite } else { Dialect::Postgres }, locks }),
            Err(sqlx::migrate::MigrateError::VersionMissing(v)) => Err(StateError::Config(format!(
                "the state database was written by a newer sluice (its migration {v} is unknown to this version): \
                 upgrade sluice, or point [state] url at another database"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The rate-limit windows this store shares between processes: a Postgres store's; `None`
    /// for SQLite (one process, whose windows are shared in memory).
    pub fn shared_windows(&self) -> Option<std::sync::Arc<dyn crate::destinations::flow::SharedWindows>> {
        match self.dialect {
            Dialect::Postgres => Some(std::sync::Arc::new(windows::PgWindows::new(self.pool.clone()))),
            Dialect::Sqlite => None,
        }
    }

    /// Takes the lock every run of `sync` holds (`lock`): `StateError::Busy`, naming the
    /// holder, when another run has it. `holder` says who asks ([`holder`]).
    pub async fn lock_sync(&self, sync: &str, holder: &str) -> Result<SyncLock, StateError> {
        self.locks.lock(sync, holder).await
    }

    /// The key hash and fingerprint of every row the destination holds for `sync`.
    ///
    /// Read from the packed pages `fold` keeps (`pages`): a million rows arrive as 256 blobs
    /// rather than a million rows (reading `sync_rows` took a no-change run's state load 0.6 s
    /// per million rows, on its critical path).
    ///
    /// Rows a run staged and did not fold (it was killed) are committed state too: a run folds
    /// them first (`fold`); a plan, which writes nothing, lays them over what it read.
    pub async fn snapshot(&self, sync: &str, fold: bool) -> Result<Stored, StateError> {
        if fold {
            self.fold(sync).await?;
        }
        let stored = self.read_pages(sync).await?;
        if fold {
            return Ok(stored);
        }
        let sql = format!("SELECT key_hash, fingerprint FROM sync_rows_staged WHERE sync = {} ORDER BY key_hash, id", self.dialect.nth(1));
        let mut entries = Vec::new();
        for row in sqlx::query(&sql).bind(sync).fetch_all(&self.pool).await? {
            let fingerprint = row.try_get::<Option<Vec<u8>>, _>(1)?.map(|f| hash_from(&f));
            entries.push((hash_from(&row.try_get::<Vec<u8>, _>(0)?), fingerprint));
        }
        if entries.is_empty() {
            return Ok(stored);
        }
        // As the fold would apply them.
        let mut pairs = Vec::with_capacity(stored.len() + entries.len());
        pages::merge(stored.iter(), &pages::resolve(&entries), |k, f| pairs.push((k, f)));
        Ok(Stored::from_pairs(pairs))
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
            let sql = self.dialect.for_keys("SELECT key_hash, key_json, destination_id FROM sync_rows", chunk.len());
            for row in bind_keys(sqlx::query(&sql), sync, chunk).fetch_all(&self.pool).await? {
                let k: Vec<u8> = row.try_get(0)?;
                out.insert(hash_from(&k), StoredRow { key_json: row.try_get(1)?, destination_id: row.try_get(2)? });
            }
        }
        Ok(out)
    }

    /// What the store remembers of a sync's definition and destination (`None`: no run of it
    /// got through yet, or it was reset).
    pub async fn sync_meta(&self, sync: &str) -> Result<Option<SyncMeta>, StateError> {
        let row = sqlx::query("SELECT config_fingerprint, first_identity, identity FROM sync_meta WHERE sync = $1")
            .bind(sync)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(SyncMeta { config_fingerprint: row.try_get(0)?, first_identity: row.try_get(1)?, identity: row.try_get(2)? }))
    }

    /// Records the configuration fingerprint and destination identity of a run that got
    /// through; the first identity recorded stays.
    pub async fn set_sync_meta(&self, sync: &str, fingerprint: &str, identity: &str) -> Result<(), StateError> {
        sqlx::query(
            "INSERT INTO sync_meta (sync, config_fingerprint, updated_at, first_identity, identity) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (sync) DO UPDATE SET config_fingerprint = excluded.config_fingerprint, updated_at = excluded.updated_at, \
             first_identity = COALESCE(sync_meta.first_identity, excluded.first_identity), identity = excluded.identity",
        )
        .bind(sync)
        .bind(fingerprint)
        .bind(now())
        .bind(identity)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many rows the store says the destination holds for `sync` (as of the last fold: a
    /// run going on may have staged more).
    pub async fn count_rows(&self, sync: &str) -> Result<i64, StateError> {
        let row = sqlx::query("SELECT COUNT(*) FROM sync_rows WHERE sync = $1").bind(sync).fetch_one(&self.pool).await?;
        Ok(row.try_get(0)?)
    }

    /// Forgets everything about `sync` except its run history: the next run sends every row.
    pub async fn reset(&self, sync: &str) -> Result<u64, StateError> {
        self.fold(sync).await?;
        let mut tx = self.pool.begin().await?;
        let removed = sqlx::query("DELETE FROM sync_rows WHERE sync = $1").bind(sync).execute(&mut *tx).await?.rows_affected();
        sqlx::query("DELETE FROM sync_rows_staged WHERE sync = $1").bind(sync).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM sync_row_pages WHERE sync = $1").bind(sync).execute(&mut *tx).await?;
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
        assert_eq!(Dialect::Postgres.value_lists(2, 2, 3), "($3, $4), ($5, $6)");
        assert_eq!(Dialect::Postgres.in_list(3, 2), "$2, $3, $4");
        assert_eq!(Dialect::Sqlite.value_lists(1, 3, 1), "(?, ?, ?)");
        assert_eq!(hash_hex(h), hex::encode(hash_bytes(h)));
    }
}
