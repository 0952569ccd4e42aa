//! One run of a sync at a time, whoever starts it: `sluice run`, `retry` or `reset`, the daemon's
//! schedule or API, another daemon on a shared store. The lock lives with the state store, so
//! every process that shares a store shares its locks.
//!
//! - SQLite: an `flock` on a file beside the database (`<db>.locks/<sync>.lock`). The kernel
//!   drops it when the process dies, however it dies; the file says who holds it.
//! - Postgres: a session advisory lock on a connection of its own, kept for the run (pinged, so
//!   an idle scan does not let it time out). The holder is named by its `application_name`.
//!
//! A lock can be lost (the Postgres connection broke, someone removed the lock file): the send
//! phase checks it before each commit and stops the run cleanly when it is gone.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::Mutex;

use super::StateError;

/// How often a held Postgres lock's connection is pinged while a run works.
const PING_EVERY: Duration = Duration::from_secs(30);

/// Where a store keeps its locks.
#[derive(Clone)]
pub(super) enum Locks {
    /// A directory of lock files (SQLite).
    Dir(PathBuf),
    /// The Postgres server of the store (its URL: the lock needs a connection of its own).
    Postgres(SecretString),
}

/// A sync's lock, held until [`SyncLock::release`] or drop (or the process's end).
pub struct SyncLock {
    sync: String,
    held: Held,
}

enum Held {
    File { file: std::fs::File, path: PathBuf },
    Postgres { conn: Arc<Mutex<Option<PgConnection>>>, key: i64, lost: Arc<AtomicBool>, _pinger: Pinger },
}

/// The task that pings a held Postgres lock's connection; stopped with the lock.
struct Pinger(tokio::task::JoinHandle<()>);

impl Drop for Pinger {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for SyncLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncLock").field("sync", &self.sync).finish_non_exhaustive()
    }
}

/// Who takes a lock, as others will read it: `sluice run (pid 4242 on host-a)`.
pub fn holder(started_by: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let by = if started_by.is_empty() { "sluice" } else { started_by };
    match host.is_empty() {
        true => format!("{by} (pid {})", std::process::id()),
        false => format!("{by} (pid {} on {host})", std::process::id()),
    }
}

impl Locks {
    pub(super) async fn lock(&self, sync: &str, holder: &str) -> Result<SyncLock, StateError> {
        let held = match self {
            Locks::Dir(dir) => lock_file(dir, sync, holder)?,
            Locks::Postgres(url) => lock_postgres(url, sync, holder).await?,
        };
        Ok(SyncLock { sync: sync.to_string(), held })
    }
}

/// The lock file of a sync: readable, and unique however the name is spelled.
fn file_name(sync: &str) -> String {
    let readable: String = sync.chars().take(40).map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    format!("{readable}-{:016x}.lock", xxhash_rust::xxh3::xxh3_64(sync.as_bytes()))
}

fn lock_file(dir: &Path, sync: &str, holder: &str) -> Result<Held, StateError> {
    use std::io::{Seek, Write};
    let io = |what: &str, e: std::io::Error| StateError::Config(format!("cannot {what} the lock of `{sync}` in {}: {e}", dir.display()));
    super::private_dir(dir).map_err(|e| io("create the directory for", e))?;
    let path = dir.join(file_name(sync));
    let mut file = super::private_file(&path).map_err(|e| io("open", e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let who = std::fs::read_to_string(&path).unwrap_or_default();
            let who = who.lines().next().unwrap_or("").trim();
            let holder = if who.is_empty() { "another process".to_string() } else { who.to_string() };
            return Err(StateError::Busy { sync: sync.to_string(), holder });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io("take", e)),
    }
    // Who holds it, for the next one who asks. Best effort: the lock is what counts.
    let since = super::now();
    let _ = file.set_len(0).and_then(|_| file.rewind()).and_then(|_| writeln!(file, "{holder} since {since}"));
    Ok(Held::File { file, path })
}

/// The advisory lock key of a sync in this store: the schema is part of it, so stores in
/// different schemas of one database do not block each other.
const KEY: &str = "SELECT hashtextextended('sluice/sync/' || COALESCE(current_schema(), '') || '/' || $1, 0)";

async fn lock_postgres(url: &SecretString, sync: &str, holder: &str) -> Result<Held, StateError> {
    let options: PgConnectOptions = url.expose_secret().parse().map_err(StateError::from)?;
    // At most 63 bytes reach the server; cut at a character boundary.
    let mut name = format!("sluice: {holder}");
    while name.len() > 63 {
        name.pop();
    }
    let mut conn = options.application_name(&name).connect().await?;
    let key: i64 = sqlx::query_scalar(KEY).bind(sync).fetch_one(&mut conn).await?;
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(&mut conn).await?;
    if !got {
        let holder = postgres_holder(&mut conn, key).await.unwrap_or_else(|| "another process".to_string());
        let _ = conn.close().await;
        return Err(StateError::Busy { sync: sync.to_string(), holder });
    }
    let conn = Arc::new(Mutex::new(Some(conn)));
    let lost = Arc::new(AtomicBool::new(false));
    // Keeps the connection in use while the run scans or waits: idle sessions may be cut
    // (idle_session_timeout, a NAT's idle timer), and with them the lock.
    let pinger = Pinger(tokio::spawn({
        let (conn, lost) = (conn.clone(), lost.clone());
        async move {
            loop {
                tokio::time::sleep(PING_EVERY).await;
                if !held_on(&conn, key).await {
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    }));
    Ok(Held::Postgres { conn, key, lost, _pinger: pinger })
}

/// Whether the connection still holds the lock `key`.
async fn held_on(conn: &Mutex<Option<PgConnection>>, key: i64) -> bool {
    let mut guard = conn.lock().await;
    let Some(conn) = guard.as_mut() else { return false };
    let (class, object) = key_halves(key);
    let sql = "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() \
               AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1";
    matches!(sqlx::query_scalar::<_, i64>(sql).bind(class).bind(object).fetch_one(conn).await, Ok(1))
}

/// A bigint advisory key as `pg_locks` shows it: the high half in `classid`, the low in `objid`.
fn key_halves(key: i64) -> (i64, i64) {
    let key = key as u64;
    ((key >> 32) as i64, (key & 0xffff_ffff) as i64)
}

/// Who holds the lock `key`: the holder's application name, and since when its session runs.
async fn postgres_holder(conn: &mut PgConnection, key: i64) -> Option<String> {
    let (class, object) = key_halves(key);
    let sql = "SELECT a.application_name, to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
               FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
               WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid \
               AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let (name, since): (String, Option<String>) = sqlx::query_as(sql).bind(class).bind(object).fetch_optional(conn).await.ok()??;
    let name = name.strip_prefix("sluice: ").unwrap_or(&name).to_string();
    let name = if name.is_empty() { "a Postgres session that did not name itself".to_string() } else { name };
    Some(match since {
        Some(t) => format!("{name}, connected since {t}"),
        None => name,
    })
}

impl SyncLock {
    /// Whether the lock is still this run's. Called before each commit: a run that lost it
    /// stops, and what it did not commit is sent by the next run.
    pub async fn check(&self) -> Result<(), StateError> {
        let lost = |why: String| Err(StateError::LockLost { sync: self.sync.clone(), why });
        match &self.held {
            Held::File { file, path } => {
                use std::os::unix::fs::MetadataExt;
                // Locks are on the open file: if the path now names another file (someone
                // removed the lock file), another process can lock that one.
                let ours = file.metadata().map(|m| (m.dev(), m.ino()));
                let named = std::fs::metadata(path).map(|m| (m.dev(), m.ino()));
                match (ours, named) {
                    (Ok(a), Ok(b)) if a == b => Ok(()),
                    _ => lost(format!("its lock file {} was removed or replaced", path.display())),
                }
            }
            Held::Postgres { conn, key, lost: gone, .. } => {
                if gone.load(Ordering::SeqCst) || !held_on(conn, *key).await {
                    gone.store(true, Ordering::SeqCst);
                    return lost("the state store's connection that held it broke".into());
                }
                Ok(())
            }
        }
    }

    /// Lets the next run in. Dropping the lock does too; this also says goodbye to Postgres.
    pub async fn release(self) {
        match self.held {
            Held::File { file, .. } => drop(file),
            Held::Postgres { conn, key, _pinger, .. } => {
                drop(_pinger);
                if let Some(mut conn) = conn.lock().await.take() {
                    let _ = sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)").bind(key).fetch_one(&mut conn).await;
                    let _ = conn.close().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_files_are_named_uniquely_and_safely() {
        assert_ne!(file_name("a/b"), file_name("a_b"));
        assert!(file_name("../../etc/passwd").starts_with("______etc_passwd-"));
        assert!(!file_name(&"x".repeat(500)).contains('/'));
    }

    #[test]
    fn advisory_keys_split_as_pg_locks_shows_them() {
        assert_eq!(key_halves(-1), (0xffff_ffff, 0xffff_ffff));
        assert_eq!(key_halves(0x0000_0001_0000_0002), (1, 2));
    }
}
