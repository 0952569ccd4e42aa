//! The warehouse diff on DuckDB. A DuckDB source is opened read-only (another process, dbt or
//! a notebook, may hold its write lock), so sluice keeps its tables in DuckDB files of its own:
//! one per sync, in the source's `state_directory` (default `.sluice/warehouse/<source>/`).
//! A run attaches the sync's file read-only to the model's connection before it is locked
//! down, and the join runs in sluice's process (the source's `memory_limit` bounds it; DuckDB
//! spills the rest to `temp_directory`).
//!
//! Canonical text (sluice's DuckDB has no ICU extension, and loads none: a TIMESTAMPTZ's text
//! is always in UTC, whatever the machine's zone):
//!
//! - `sluice_key  = md5_number(json_array(k1, k2, ...)::VARCHAR)` (a 128-bit number: a fixed
//!   16 bytes to join on, whatever the key)
//! - `fingerprint = md5_number(json_array('<configuration fingerprint>', c1, c2, ...)::VARCHAR)`
//!
//! Both travel to the engine as hex text (`hex()`: a 128-bit number's decimal text is a long
//! division per digit, 60 times slower over a whole model); the key hash sluice computed as its
//! 32 hex digits.
//!
//! Written rows are appended to `sluice_staged` (one DuckDB transaction per committed batch)
//! and folded into `sluice_rows` when the next run starts (`ensure`): `sluice_rows` has no
//! index to keep up (a DuckDB index must fit in memory), and the fold is one hash join over it
//! per run instead of one per batch. A record cleared in the destination keeps its row with a
//! NULL fingerprint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use duckdb::{params, Config, Connection};

use super::writeback::{self, ChangeRow, RunRow, DUCKDB_LOG};
use super::{Applied, DiffSpec, CLEARED};
use crate::source::SourceError;

/// The name the sync's file is attached as on the model's connection.
pub const ATTACHED: &str = "sluice_state";

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The diff query over `model` (a single SELECT, checked by the source), whose columns are
/// `columns`; the same rows as Postgres' (`super::postgres::sql`). With `spec.table_exists`,
/// the sync's file is attached as [`ATTACHED`].
pub fn sql(model: &str, columns: &[String], spec: &DiffSpec) -> String {
    let col = |c: &str| format!("sluice_model.{}", quote(c));
    let key = format!("md5_number(json_array({})::VARCHAR)", spec.key_columns.iter().map(|c| col(c)).collect::<Vec<_>>().join(", "));
    let mut fp_parts = vec![literal(&spec.salt)];
    fp_parts.extend(spec.fp_columns.iter().map(|c| col(c)));
    let fp = format!("md5_number(json_array({})::VARCHAR)", fp_parts.join(", "));
    let table = match spec.table_exists {
        true => format!("{ATTACHED}.sluice_rows"),
        false => "(SELECT NULL::UHUGEINT AS sluice_key, NULL::UHUGEINT AS key_hash, NULL::UHUGEINT AS fingerprint WHERE FALSE)".into(),
    };
    let join = if spec.removals { "FULL JOIN" } else { "LEFT JOIN" };
    // A cleared record (NULL fingerprint) whose row is back in the model is changed.
    let mut when = vec!["s.sluice_key IS NULL", "m.sluice_n > 1"];
    if spec.changes {
        when.push("s.fingerprint IS DISTINCT FROM m.sluice_fp");
    }
    if spec.everything {
        when.push("TRUE");
    }
    let nulls: String = columns.iter().map(|c| format!("z.{}, ", quote(c))).collect();
    // Materialised: the model runs once, for the join and for its count.
    format!(
        "WITH sluice_m AS MATERIALIZED (\n\
         SELECT *, COUNT(*) OVER (PARTITION BY sluice_key) AS sluice_n FROM (\n\
         SELECT sluice_model.*, {key} AS sluice_key, {fp} AS sluice_fp\n\
         FROM (\n{model}\n) AS sluice_model\n\
         ))\n\
         SELECT m.* REPLACE (hex(m.sluice_key) AS sluice_key, hex(m.sluice_fp) AS sluice_fp),\n\
         lpad(lower(hex(s.key_hash)), 32, '0') AS sluice_hash,\n\
         CASE WHEN s.sluice_key IS NOT NULL AND s.fingerprint IS NULL THEN '{CLEARED}' ELSE hex(s.fingerprint) END AS sluice_was,\n\
         CASE WHEN m.sluice_key IS NULL THEN 'removed' WHEN s.sluice_key IS NULL THEN 'added' ELSE 'changed' END AS sluice_change\n\
         FROM sluice_m AS m {join} {table} AS s ON s.sluice_key = m.sluice_key\n\
         WHERE m.sluice_key IS NULL OR {}\n\
         UNION ALL\n\
         SELECT {nulls}NULL, NULL, (SELECT COUNT(*) FROM sluice_m), NULL, NULL, 'total'\n\
         FROM (SELECT 1) AS sluice_one LEFT JOIN sluice_m AS z ON FALSE",
        when.join(" OR ")
    )
}

/// sluice's DuckDB files for one source: a directory, a file per sync. A run's commits go
/// through one read-write connection, kept open from its first commit to `release`.
pub struct DuckState {
    files: Arc<Files>,
    /// The directory, as messages name it.
    pub schema: String,
}

/// The directory and the connections open in it (shared with blocking threads).
struct Files {
    dir: PathBuf,
    schema: String,
    /// The source's `memory_limit`, for these files too: DuckDB's buffer pool keeps the pages a
    /// run writes (10M staged rows: about 800 MB) up to its limit, 80% of RAM when unset.
    memory_limit: Option<String>,
    open: Mutex<HashMap<String, Open>>,
}

/// A sync's file open for writing.
struct Open {
    conn: Connection,
    /// The next staged row's `seq`, once read (not per batch: a scan of the staged rows).
    next_seq: Option<i64>,
}

/// How long an open waits for another sluice process (a `plan` beside the daemon's run) to let
/// go of a sync's file.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

impl Files {
    fn file(&self, table: &str) -> PathBuf {
        self.dir.join(format!("{table}.duckdb"))
    }

    fn failed(&self, what: &str, e: impl std::fmt::Display) -> SourceError {
        SourceError::Tables(format!(
            "sluice's DuckDB file in {} ({what}): {e} (the directory must be writable by the user sluice runs as; \
             the source's `state_directory` says where it is)",
            self.schema
        ))
    }

    /// A read-write connection to the sync's file (created when missing), waiting while
    /// another process holds it.
    fn connect(&self, table: &str) -> Result<Connection, SourceError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.failed("creating the directory", e))?;
        let path = self.file(table);
        if !path.exists() || empty(&path) {
            self.create(&path)?;
        }
        let started = Instant::now();
        loop {
            match Connection::open_with_flags(&path, self.config()?) {
                Ok(conn) => return Ok(conn),
                Err(e) if busy(&e.to_string()) && started.elapsed() < LOCK_WAIT => std::thread::sleep(Duration::from_millis(100)),
                Err(e) if busy(&e.to_string()) => return Err(held(&path.display())),
                Err(e) => return Err(self.failed(&format!("opening {}", path.display()), e)),
            }
        }
    }

    /// Creates a sync's file whole or not at all. DuckDB writes a new file's header after
    /// creating it, and a file killed in between (empty, or half a header) is one DuckDB
    /// refuses ever after ("not a valid DuckDB database file"): so the file is made under a
    /// name of this process's, then linked into place, which fails if another process got
    /// there first (its file is as good; a rename would replace one it may be writing).
    fn create(&self, path: &Path) -> Result<(), SourceError> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let new = self.dir.join(format!(".{name}.{}.new", std::process::id()));
        let wal = |p: &Path| PathBuf::from(format!("{}.wal", p.display()));
        let _ = std::fs::remove_file(&new);
        let _ = std::fs::remove_file(wal(&new));
        // Opened and closed: the header is written and checkpointed.
        drop(Connection::open_with_flags(&new, self.config()?).map_err(|e| self.failed(&format!("creating {}", new.display()), e))?);
        // An empty file can only be a creation killed before this way of making them.
        if empty(path) {
            let _ = std::fs::remove_file(path);
        }
        let linked = match std::fs::hard_link(&new, path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(self.failed(&format!("creating {}", path.display()), e)),
            _ => Ok(()),
        };
        let _ = std::fs::remove_file(&new);
        let _ = std::fs::remove_file(wal(&new));
        linked
    }

    /// The settings every connection to these files takes.
    fn config(&self) -> Result<Config, SourceError> {
        let tmp = self.dir.join("tmp");
        let mut config = Config::default()
            .with("autoinstall_known_extensions", "false")
            .and_then(|c| c.with("autoload_known_extensions", "false"))
            .and_then(|c| c.with("temp_directory", tmp.to_string_lossy()))
            // Nothing here reads rows back in the order they went in; keeping it costs memory
            // in every INSERT ... SELECT (DuckDB's advice for big inserts under a limit).
            .and_then(|c| c.with("preserve_insertion_order", "false"));
        if let Some(limit) = &self.memory_limit {
            config = config.and_then(|c| c.with("memory_limit", limit));
        }
        config.map_err(|e| self.failed("opening", e))
    }
}

/// A file of sluice's that another process kept past [`LOCK_WAIT`]: `what` names it.
pub fn held(what: &dyn std::fmt::Display) -> SourceError {
    SourceError::Tables(format!(
        "{what} is held by another process (most likely a run of this sync, or a `plan` or `check` of it, started \
         elsewhere) and was not let go within {}s: try again when it ends",
        LOCK_WAIT.as_secs()
    ))
}

/// Whether `path` is a file of no bytes.
fn empty(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0)
}

impl DuckState {
    pub fn new(dir: PathBuf, memory_limit: Option<String>) -> DuckState {
        let schema = dir.display().to_string();
        DuckState { files: Arc::new(Files { dir, schema: schema.clone(), memory_limit, open: Mutex::new(HashMap::new()) }), schema }
    }

    /// The sync's file.
    pub fn file(&self, table: &str) -> PathBuf {
        self.files.file(table)
    }

    /// Runs `work` on the sync's read-write connection (opened when not open yet), on a
    /// blocking thread; the connection stays open for the run's next commit.
    async fn with<T: Send + 'static>(
        &self,
        table: &str,
        what: &'static str,
        work: impl FnOnce(&mut Open) -> Result<T, duckdb::Error> + Send + 'static,
    ) -> Result<T, SourceError> {
        let (files, table) = (self.files.clone(), table.to_string());
        tokio::task::spawn_blocking(move || {
            let taken = files.open.lock().ok().and_then(|mut open| open.remove(&table));
            let mut open = match taken {
                Some(open) => open,
                None => Open { conn: files.connect(&table)?, next_seq: None },
            };
            let result = work(&mut open).map_err(|e| files.failed(what, e));
            if let Ok(mut all) = files.open.lock() {
                all.insert(table, open);
            }
            result
        })
        .await
        .map_err(|e| self.files.failed(what, e))?
    }

    /// Closes the sync's connection, if open (DuckDB checkpoints the file as it closes).
    pub async fn release(&self, table: &str) {
        let taken = self.files.open.lock().ok().and_then(|mut open| open.remove(table));
        if let Some(open) = taken {
            let _ = tokio::task::spawn_blocking(move || drop(open)).await;
        }
    }

    /// Whether the sync's file exists (a plan, which writes nothing, may find none).
    pub async fn exists(&self, table: &str) -> Result<bool, SourceError> {
        Ok(self.file(table).exists())
    }

    /// Creates the sync's file and tables when missing, folds what the last run staged, and
    /// closes the file (the scan attaches it read-only next).
    pub async fn ensure(&self, table: &str) -> Result<(), SourceError> {
        let result = self
            .with(table, "creating the sync's tables, folding the last run's rows", |open| {
                open.conn.execute_batch(
                    "CREATE TABLE IF NOT EXISTS sluice_rows (sluice_key UHUGEINT NOT NULL, key_hash UHUGEINT NOT NULL, fingerprint UHUGEINT);
                     CREATE TABLE IF NOT EXISTS sluice_staged (seq BIGINT NOT NULL, op VARCHAR NOT NULL, sluice_key VARCHAR, \
                         key_hash VARCHAR NOT NULL, fingerprint VARCHAR);",
                )?;
                fold(&open.conn)
            })
            .await;
        self.release(table).await;
        result
    }

    /// What `check` asks: the directory and the file must be writable. Creates what a first run
    /// would; an error names what failed.
    pub async fn missing_grants(&self, table: &str) -> Result<Vec<String>, SourceError> {
        self.ensure(table).await.map(|()| Vec::new())
    }

    /// Stages one committed batch's written rows. One appender flush is one transaction: the
    /// batch is staged whole or not at all.
    pub async fn commit(&self, table: &str, rows: &[Applied<'_>]) -> Result<(), SourceError> {
        let staged: Vec<(&'static str, Option<String>, String, Option<String>)> = rows
            .iter()
            .map(|row| match row {
                Applied::Holds { key, key_hash, fingerprint } => {
                    ("hold", Some(key.to_string()), key_hash.clone(), Some(fingerprint.to_string()))
                }
                Applied::Deleted { key_hash } => ("delete", None, key_hash.clone(), None),
                Applied::Cleared { key_hash } => ("clear", None, key_hash.clone(), None),
            })
            .collect();
        self.with(table, "recording a batch", move |open| {
            let next = match open.next_seq {
                Some(next) => next,
                None => open.conn.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM sluice_staged", [], |r| r.get(0))?,
            };
            let mut appender = open.conn.appender("sluice_staged")?;
            for (i, (op, key, key_hash, fingerprint)) in staged.iter().enumerate() {
                appender.append_row(params![next + i as i64, op, key, key_hash, fingerprint])?;
            }
            appender.flush()?;
            open.next_seq = Some(next + staged.len() as i64);
            Ok(())
        })
        .await
    }

    /// `[writeback]`'s file (`writeback::DUCKDB_LOG`): its tables created when missing, the
    /// runs and changes inserted (those there skipped), in one transaction; then closed, so the
    /// models' connections can attach it.
    pub async fn write_log(&self, runs: Vec<RunRow>, changes: Vec<ChangeRow>) -> Result<(), SourceError> {
        let result = self
            .with(DUCKDB_LOG, "writing the run history and the change log", move |open| {
                for sql in writeback::ddl("", "VARCHAR", "TIMESTAMPTZ", "JSON") {
                    open.conn.execute_batch(&sql)?;
                }
                let tx = open.conn.transaction()?;
                {
                    let counts = ["?"; 9].join(", ");
                    let mut insert = tx.prepare(&format!(
                        "INSERT OR IGNORE INTO sluice_runs VALUES (?, ?, ?::TIMESTAMPTZ, ?::TIMESTAMPTZ, ?, ?, {counts}, ?)"
                    ))?;
                    for r in &runs {
                        let [a, b, c, d, e, f, g, h, i] = r.counts;
                        insert.execute(params![
                            r.run_id,
                            r.sync,
                            r.started_at,
                            r.finished_at,
                            r.status,
                            r.full_resync,
                            a,
                            b,
                            c,
                            d,
                            e,
                            f,
                            g,
                            h,
                            i,
                            r.error
                        ])?;
                    }
                    let mut insert =
                        tx.prepare("INSERT OR IGNORE INTO sluice_changes VALUES (?, ?, ?, ?::JSON, ?, ?, ?, ?, ?::JSON, ?::TIMESTAMPTZ)")?;
                    for c in &changes {
                        insert.execute(params![
                            c.run_id,
                            c.id,
                            c.sync,
                            c.row_key,
                            c.op,
                            c.outcome,
                            c.destination_id,
                            c.error,
                            c.fields,
                            c.changed_at
                        ])?;
                    }
                }
                tx.commit()
            })
            .await;
        self.release(DUCKDB_LOG).await;
        result
    }

    /// Forgets every row of the sync's file (`sluice reset`); no file is nothing to do.
    pub async fn clear(&self, table: &str) -> Result<(), SourceError> {
        if !self.file(table).exists() {
            return Ok(());
        }
        let result = self
            .with(table, "resetting", |open| open.conn.execute_batch("BEGIN; DELETE FROM sluice_rows; DELETE FROM sluice_staged; COMMIT;"))
            .await;
        self.release(table).await;
        result
    }
}

/// Whether DuckDB refused to open a file because another process holds its lock (DuckDB's
/// message, as an error's text).
pub fn busy(error: &str) -> bool {
    // The second: this process has the file open already (the writeback's file, written while
    // a model of the same process reads it, or the other way round).
    error.contains("Could not set lock on file") || error.contains("Unique file handle conflict")
}

/// Folds the staged rows into `sluice_rows`, in order: a key staged with a hold or a delete
/// takes its last hold, unless a delete came after it; a clear after it (or alone) keeps the
/// row with a NULL fingerprint.
fn fold(conn: &Connection) -> Result<(), duckdb::Error> {
    let staged: i64 = conn.query_row("SELECT COUNT(*) FROM sluice_staged", [], |r| r.get(0))?;
    if staged == 0 {
        return Ok(());
    }
    // Each key's last operation and last hold, in one grouping of fixed-width values (DuckDB
    // spills such a grouping past `memory_limit`; two windows over the text columns and a join
    // of them, as this was, ran out of memory folding 50M rows in 256 MB). op: 0 hold,
    // 1 delete, 2 clear.
    let last = "SELECT ('0x' || key_hash)::UHUGEINT AS key_hash, \
                arg_max(CASE op WHEN 'hold' THEN 0 WHEN 'delete' THEN 1 ELSE 2 END, seq) AS op, \
                bool_or(op <> 'clear') AS replaced, \
                arg_max(('0x' || sluice_key)::UHUGEINT, seq) FILTER (WHERE op = 'hold') AS sluice_key, \
                arg_max(('0x' || fingerprint)::UHUGEINT, seq) FILTER (WHERE op = 'hold') AS fingerprint \
                FROM sluice_staged GROUP BY key_hash";
    // A first run's fold (no rows yet) is the insert alone.
    let stored: bool = conn.query_row("SELECT EXISTS (SELECT 1 FROM sluice_rows)", [], |r| r.get(0))?;
    let (delete, clear) = match stored {
        true => (
            "DELETE FROM sluice_rows WHERE key_hash IN (SELECT key_hash FROM sluice_last WHERE replaced);",
            "UPDATE sluice_rows SET fingerprint = NULL WHERE key_hash IN (SELECT key_hash FROM sluice_last WHERE op = 2);",
        ),
        false => ("", ""),
    };
    conn.execute_batch(&format!(
        "BEGIN;
         CREATE OR REPLACE TEMP TABLE sluice_last AS {last};
         {delete}
         INSERT INTO sluice_rows
             SELECT sluice_key, key_hash, CASE WHEN op = 2 THEN NULL ELSE fingerprint END
             FROM sluice_last WHERE op <> 1 AND sluice_key IS NOT NULL;
         {clear}
         DELETE FROM sluice_staged;
         DROP TABLE sluice_last;
         COMMIT;"
    ))
}

/// The statement that attaches the sync's file to a model's connection (before it is locked).
pub fn attach(file: &Path) -> String {
    format!("ATTACH {} AS {ATTACHED} (READ_ONLY);", literal(&file.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_keeps_the_model_whole_and_quotes_names() {
        let spec = DiffSpec { fp_columns: vec!["odd\"name".into()], ..super::super::sample_spec() };
        let sql = sql("SELECT 1 AS id -- a comment", &["id".into(), "odd\"name".into()], &spec);
        assert!(sql.contains("SELECT 1 AS id -- a comment\n) AS sluice_model"), "{sql}");
        assert!(sql.contains("sluice_model.\"odd\"\"name\""), "{sql}");
        assert!(sql.contains(&format!("FULL JOIN {ATTACHED}.sluice_rows")), "{sql}");
    }

    /// A key hash goes in as sluice's 32 hex digits and comes back the same (leading zeros
    /// too); the fold applies holds, a clear after a hold, and deletes.
    #[test]
    fn key_hashes_round_trip_and_the_fold_keeps_the_last_row() {
        let dir = tempfile::tempdir().unwrap();
        let state = DuckState::new(dir.path().to_path_buf(), Some("64MB".into()));
        let conn = state.files.connect("t").unwrap();
        conn.execute_batch(
            "CREATE TABLE sluice_rows (sluice_key UHUGEINT NOT NULL, key_hash UHUGEINT NOT NULL, fingerprint UHUGEINT);
             CREATE TABLE sluice_staged (seq BIGINT NOT NULL, op VARCHAR NOT NULL, sluice_key VARCHAR, key_hash VARCHAR NOT NULL, fingerprint VARCHAR);
             INSERT INTO sluice_rows VALUES (1, 9, 1);",
        )
        .unwrap();
        let (small, big) = (format!("{:032x}", 7u128), format!("{:032x}", u128::MAX - 1));
        let key: String = conn.query_row("SELECT hex(md5_number(json_array(1, 'a')::VARCHAR))", [], |r| r.get(0)).unwrap();
        let mut app = conn.appender("sluice_staged").unwrap();
        app.append_row(params![1, "hold", key, small, "1B"]).unwrap();
        app.append_row(params![2, "hold", "5", big, "1C"]).unwrap();
        app.append_row(params![3, "clear", None::<String>, big, None::<String>]).unwrap();
        app.append_row(params![4, "delete", None::<String>, format!("{:032x}", 9u128), None::<String>]).unwrap();
        // Staged by two runs (a fold that failed in between): the last hold wins; a delete
        // after a hold removes, a hold after a delete stays.
        let (twice, gone, back) = (format!("{:032x}", 20u128), format!("{:032x}", 21u128), format!("{:032x}", 22u128));
        app.append_row(params![5, "hold", "6", twice, "2A"]).unwrap();
        app.append_row(params![6, "hold", "6", twice, "2B"]).unwrap();
        app.append_row(params![7, "hold", "7", gone, "3A"]).unwrap();
        app.append_row(params![8, "delete", None::<String>, gone, None::<String>]).unwrap();
        app.append_row(params![9, "delete", None::<String>, back, None::<String>]).unwrap();
        app.append_row(params![10, "hold", "8", back, "4A"]).unwrap();
        app.flush().unwrap();
        drop(app);
        fold(&conn).unwrap();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT lpad(lower(hex(key_hash)), 32, '0'), hex(sluice_key), \
                 CASE WHEN fingerprint IS NULL THEN '{CLEARED}' ELSE hex(fingerprint) END FROM sluice_rows ORDER BY key_hash"
            ))
            .unwrap();
        let rows: Vec<(String, String, String)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect();
        let want = vec![
            (small, key, "1B".to_string()),
            (twice, "6".to_string(), "2B".to_string()),
            (back, "8".to_string(), "4A".to_string()),
            (big, "5".to_string(), CLEARED.to_string()),
        ];
        assert_eq!(rows, want);
        let staged: i64 = conn.query_row("SELECT COUNT(*) FROM sluice_staged", [], |r| r.get(0)).unwrap();
        assert_eq!(staged, 0);
    }
}
