//! Shared test support: throwaway projects over a real DuckDB file or a real Postgres schema,
//! with the state store in SQLite or Postgres, writing to a recording webhook sink.
#![allow(dead_code)]

pub mod daemon;
pub mod databases;
pub mod faults;
pub mod google;
pub mod hubspot;
pub mod jwt;
pub mod notion;
pub mod records_api;
pub mod salesforce;
pub mod slack;
pub mod stripe;
pub mod webhook_sink;

use std::path::{Path, PathBuf};

use sluice::engine::{Engine, RunOptions, SyncReport};
use sluice::project::Project;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};
pub use webhook_sink::{Sink, SinkRow};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    DuckDb,
    Postgres,
    /// MariaDB (or MySQL): a database of its own per test.
    Mysql,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateKind {
    Sqlite,
    Postgres,
}

pub const MATRIX: [(SourceKind, StateKind); 4] = [
    (SourceKind::DuckDb, StateKind::Sqlite),
    (SourceKind::DuckDb, StateKind::Postgres),
    (SourceKind::Postgres, StateKind::Sqlite),
    (SourceKind::Postgres, StateKind::Postgres),
];

/// The Postgres server tests use: `SLUICE_TEST_DATABASE_URL` (scripts/test sets it), else the
/// local default. Tests that need it fail loudly when it cannot be reached; they never skip.
pub fn pg_url() -> String {
    std::env::var("SLUICE_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A schema of its own for one test, dropped when the test ends (even on panic).
pub struct PgSchema {
    pub name: String,
    pub pool: PgPool,
}

impl PgSchema {
    pub async fn create() -> PgSchema {
        let name = format!("sluice_t_{}", uuid::Uuid::new_v4().simple());
        let pool = PgPoolOptions::new().max_connections(2).connect(&pg_url()).await.unwrap_or_else(|e| {
            panic!(
                "Postgres is needed for this test and {} cannot be reached: {e}. Run scripts/test, which finds or starts a server.",
                pg_url()
            )
        });
        pool.execute(format!("CREATE SCHEMA {name}").as_str()).await.expect("create schema");
        PgSchema { name, pool }
    }

    /// A URL whose connections use this schema by default.
    pub fn url(&self) -> String {
        let base = pg_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}options=-c%20search_path%3D{}", self.name)
    }

    pub async fn exec(&self, sql: &str) {
        let sql = format!("SET search_path TO {}; {sql}", self.name);
        let mut conn = self.pool.acquire().await.expect("pg connection");
        sqlx::raw_sql(&sql).execute(&mut *conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        sqlx::raw_sql("SET search_path TO DEFAULT").execute(&mut *conn).await.expect("reset search_path");
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot be async: a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let pool = PgPoolOptions::new().max_connections(1).connect(&pg_url()).await.ok()?;
                // With it, the schema a `diff = "warehouse"` test keeps sluice's tables in.
                pool.execute(format!("DROP SCHEMA IF EXISTS {name}_state CASCADE").as_str()).await.ok()?;
                pool.execute(format!("DROP SCHEMA IF EXISTS {name} CASCADE").as_str()).await.ok()
            })
        })
        .join();
    }
}

/// A throwaway sluice project.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub source: SourceKind,
    pub state: StateKind,
    pub sink: Sink,
    /// The source schema (Postgres source) and/or the state schema (Postgres state).
    pub pg_source: Option<PgSchema>,
    pub pg_state: Option<PgSchema>,
    /// The source database (MariaDB source).
    pub my_source: Option<databases::DestDb>,
}

impl Env {
    pub async fn new(source: SourceKind, state: StateKind) -> Env {
        Self::with_sink_settings(source, state, "max_batch_rows = 500").await
    }

    /// `extra` is appended to the webhook destination's table (batch size, retry settings).
    pub async fn with_sink_settings(source: SourceKind, state: StateKind, extra: &str) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = Sink::start().await;
        let pg_source = if source == SourceKind::Postgres { Some(PgSchema::create().await) } else { None };
        let pg_state = if state == StateKind::Postgres { Some(PgSchema::create().await) } else { None };
        let my_source = match source {
            SourceKind::Mysql => Some(databases::DestDb::create(databases::Dialect::Mysql).await),
            _ => None,
        };
        let state_url = match &pg_state {
            Some(s) => s.url(),
            None => "sqlite://.sluice/state.db".into(),
        };
        let source_table = match (&pg_source, &my_source) {
            (Some(s), _) => format!("kind = \"postgres\"\nurl = \"{}\"", s.url()),
            (_, Some(db)) => format!("kind = \"mysql\"\nurl = \"{}/{}\"", db.url.trim_end_matches('/'), db.schema),
            _ => "kind = \"duckdb\"\npath = \"warehouse.duckdb\"".into(),
        };
        let config = format!(
            "[state]\nurl = \"{state_url}\"\n\n[sources.wh]\n{source_table}\n\n[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\nretry_initial_delay = \"10ms\"\n{extra}\n",
            sink.url
        );
        std::fs::write(dir.path().join("sluice.toml"), config).expect("write sluice.toml");
        std::fs::create_dir_all(dir.path().join("syncs")).expect("syncs dir");
        let env = Env { dir, source, state, sink, pg_source, pg_state, my_source };
        if source == SourceKind::DuckDb {
            // Create the file so read-only opens work before the first table exists.
            env.exec("SELECT 1").await;
        }
        env
    }

    /// Appends `[destinations.NAME]` with `body` to sluice.toml.
    pub fn add_destination(&self, name: &str, body: &str) {
        self.append_config(&format!("\n[destinations.{name}]\n{body}\n"));
    }

    /// Appends `text` to sluice.toml (into the last table, unless it opens one).
    pub fn append_config(&self, text: &str) {
        let path = self.root().join("sluice.toml");
        let mut config = std::fs::read_to_string(&path).expect("read sluice.toml");
        config.push_str(text);
        std::fs::write(path, config).expect("write sluice.toml");
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Runs SQL against the source database (DuckDB file, the Postgres schema or the MariaDB
    /// database).
    pub async fn exec(&self, sql: &str) {
        if let Some(db) = &self.my_source {
            return db.exec(&format!("USE {}; {sql}", db.schema)).await;
        }
        match &self.pg_source {
            Some(pg) => pg.exec(sql).await,
            None => {
                let path = self.root().join("warehouse.duckdb");
                let sql = sql.to_string();
                tokio::task::spawn_blocking(move || {
                    let conn = duckdb::Connection::open(&path).expect("open duckdb");
                    conn.execute_batch(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                })
                .await
                .expect("duckdb task");
            }
        }
    }

    /// Writes `syncs/{name}.sql` with `header` (TOML) and `model`.
    pub fn write_sync(&self, name: &str, header: &str, model: &str) -> PathBuf {
        let path = self.root().join("syncs").join(format!("{name}.sql"));
        std::fs::write(&path, format!("/* sluice\n{header}\n*/\n{model}\n")).expect("write sync");
        path
    }

    pub async fn run_with(&self, name: &str, opts: RunOptions) -> SyncReport {
        let project = Project::load(self.root()).expect("project loads");
        assert!(project.invalid.is_empty(), "invalid syncs: {:?}", project.invalid);
        let engine = Engine::open(&project).await.expect("engine opens");
        let sync = project.select(&[name.to_string()]).expect("sync exists")[0];
        let report = engine.run(sync, &opts).await;
        engine.store.close().await;
        report
    }

    pub async fn run(&self, name: &str) -> SyncReport {
        self.run_with(name, RunOptions::default()).await
    }

    /// Rows a SQLite state store holds as committed: folded into `sync_rows`, or still staged
    /// by a run that died before its fold. 0 while the store does not exist yet.
    pub async fn committed_rows(&self) -> usize {
        let url = format!("sqlite://{}?mode=ro", self.root().join(".sluice/state.db").display());
        let Ok(pool) = sqlx::SqlitePool::connect(&url).await else { return 0 };
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT key_hash FROM sync_rows UNION SELECT key_hash FROM sync_rows_staged WHERE fingerprint IS NOT NULL)",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
        pool.close().await;
        n as usize
    }

    pub async fn plan(&self, name: &str) -> SyncReport {
        self.run_with(name, RunOptions { dry_run: true, samples: 3, ..Default::default() }).await
    }
}

/// Copies the example project `examples/NAME` (its files, not its state) into `to`.
pub fn copy_example(name: &str, to: &Path) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("the example project") {
            let path = entry.expect("entry").path();
            let target = to.join(path.file_name().expect("name"));
            match path.is_dir() {
                true if path.file_name().is_some_and(|n| n != ".sluice" && n != "out") => copy(&path, &target),
                true => {}
                false => {
                    std::fs::copy(&path, &target).expect("copy");
                }
            }
        }
    }
    copy(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name), to);
}

/// Sorted keys of rows, as compact JSON text, for order-free comparison.
pub fn keys_of(rows: &[SinkRow]) -> Vec<String> {
    let mut keys: Vec<String> = rows.iter().map(|r| r.key.to_string()).collect();
    keys.sort();
    keys
}

/// `sluice ARGS --project ROOT` with extra environment, on a blocking thread: the sink and the
/// emulators answer on the test's runtime, which must keep running while the CLI waits on them.
pub async fn sluice_cli(root: &Path, args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let root = root.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let envs: Vec<(String, String)> = envs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(sluice_bin()).args(args).arg("--project").arg(root).envs(envs).output().expect("run sluice")
    })
    .await
    .expect("the CLI thread")
}

/// Starts `sluice ARGS --project ROOT` in the background, its output thrown away.
pub fn spawn_sluice(root: &Path, args: &[&str]) -> std::process::Child {
    std::process::Command::new(sluice_bin())
        .args(args)
        .arg("--project")
        .arg(root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start sluice")
}

/// The sluice binary built for this test run.
pub fn sluice_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluice"))
}
