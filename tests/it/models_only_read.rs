//! Models only read, for real: the sync file's one-query check is only a first, friendly look;
//! each source admits exactly one read-only statement by its own parser, runs it where it cannot
//! write (a READ ONLY transaction of its own; a DuckDB connection that writes no file, installs
//! nothing, reads files only in the project and allowed directories), and stops it after the
//! sync's `statement_timeout`. A run stops at its `max_run_time`.

use crate::support;

use std::time::{Duration, Instant};

use sluice::state::RunStatus;
use support::{Env, SourceKind, StateKind};

/// A model that hides a second statement from a check that does not know E-strings: the
/// check sees `E'\''` open a literal that runs past the `;`, DuckDB and Postgres see three
/// statements, the second writing a file.
fn smuggling(path: &str) -> String {
    format!("SELECT E'\\'' AS a, 1 AS id; COPY (SELECT 1 AS x) TO '{path}' (FORMAT csv); SELECT 1 AS id --'")
}

#[tokio::test]
async fn duckdb_runs_one_select_and_nothing_before_it() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    let target = env.root().join("pwned.csv");
    env.write_sync("smuggle", "destination = \"hook\"\nprimary_key = \"id\"", &smuggling(&target.display().to_string()));
    let report = env.run("smuggle").await;
    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
    assert!(report.error.as_deref().unwrap_or("").contains("must be one SELECT"), "{report:?}");
    assert!(!target.exists(), "the COPY before the last statement never ran");
    let plan = env.plan("smuggle").await;
    assert!(plan.failed() && !target.exists(), "nor when planned");
}

#[tokio::test]
async fn a_duckdb_model_writes_no_file_attaches_nothing_and_reads_only_allowed_places() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.csv"), "id\n1\n").unwrap();
    let allowed = tempfile::tempdir().unwrap();
    std::fs::write(allowed.path().join("shared.csv"), "id\n7\n").unwrap();
    std::fs::create_dir_all(env.root().join("data")).unwrap();
    std::fs::write(env.root().join("data/mine.csv"), "id\n3\n").unwrap();
    env.add_destination("nothing", "kind = \"file\"\npath = \"out.jsonl\"");
    let config = env.root().join("sluice.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}\n[sources.lake]\nkind = \"duckdb\"\nallowed_directories = [\"{}\"]\n", allowed.path().display()),
    )
    .unwrap();
    let header = |source: &str| format!("source = \"{source}\"\ndestination = \"nothing\"\nprimary_key = \"id\"");
    let secret = outside.path().join("secret.csv").display().to_string();
    // A file outside the project, and a COPY inside the one SELECT (DuckDB takes data-modifying
    // CTEs at the top level of a statement).
    let cases = [
        ("read_outside", format!("SELECT * FROM read_csv('{secret}')")),
        ("cte_copy", format!("WITH w AS (COPY (SELECT 1 AS id) TO '{}/written.csv') SELECT 1 AS id", env.root().display())),
    ];
    for (name, model) in &cases {
        env.write_sync(name, &header("lake"), model);
    }
    env.write_sync("own_file", &header("lake"), "SELECT * FROM read_csv('data/mine.csv')");
    env.write_sync("allowed_file", &header("lake"), &format!("SELECT * FROM read_csv('{}/shared.csv')", allowed.path().display()));

    for (name, _) in &cases {
        let report = env.run(name).await;
        assert_eq!(report.status, RunStatus::Failed, "{name}: {report:?}");
    }
    assert!(!env.root().join("written.csv").exists(), "no file was written");
    let own = env.run("own_file").await;
    assert_eq!((own.status, own.written), (RunStatus::Success, 1), "a project file, by its relative path: {own:?}");
    let shared = env.run("allowed_file").await;
    assert_eq!((shared.status, shared.written), (RunStatus::Success, 1), "an allowed directory: {shared:?}");
    let denied = env.run("read_outside").await;
    assert!(denied.error.as_deref().unwrap_or("").to_lowercase().contains("permission"), "{denied:?}");
}

#[tokio::test]
async fn a_postgres_model_cannot_switch_the_read_only_guard_off_for_the_next_model() {
    let env = Env::new(SourceKind::Postgres, StateKind::Sqlite).await;
    env.exec("CREATE TABLE t (id INT)").await;
    // One connection, so the second model runs on the session the first one used.
    let config = env.root().join("sluice.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace("kind = \"postgres\"", "kind = \"postgres\"\nmax_connections = 1");
    std::fs::write(&config, text).unwrap();
    env.write_sync(
        "a_unlock",
        "destination = \"hook\"\nprimary_key = \"id\"",
        "SELECT set_config('default_transaction_read_only', 'off', false) AS x, 1 AS id",
    );
    env.write_sync(
        "b_write",
        "destination = \"hook\"\nprimary_key = \"id\"",
        "WITH w AS (INSERT INTO t (id) VALUES (99) RETURNING id) SELECT id FROM w",
    );
    let project = sluice::project::Project::load(env.root()).unwrap();
    let engine = sluice::engine::Engine::open(&project).await.unwrap();
    let a = engine.run(project.select(&["a_unlock".into()]).unwrap()[0], &Default::default()).await;
    let b = engine.run(project.select(&["b_write".into()]).unwrap()[0], &Default::default()).await;
    engine.store.close().await;
    assert!(!a.failed(), "{a:?}");
    assert!(b.failed() && b.error.as_deref().unwrap_or("").contains("read-only transaction"), "{b:?}");
    let pg = env.pg_source.as_ref().unwrap();
    let written: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}.t", pg.name)).fetch_one(&pg.pool).await.unwrap();
    assert_eq!(written, 0, "the warehouse is unchanged");

    // And Postgres prepares the model: one statement, whatever a check before it believed.
    env.write_sync("smuggle", "destination = \"hook\"\nprimary_key = \"id\"", &smuggling("/tmp/sluice-never-written.csv"));
    assert!(env.run("smuggle").await.failed());
}

#[tokio::test]
async fn statement_timeout_stops_a_slow_model_on_every_source() {
    for source in [SourceKind::Postgres, SourceKind::DuckDb, SourceKind::Mysql] {
        let env = Env::new(source, StateKind::Sqlite).await;
        let slow = match source {
            SourceKind::Postgres => "SELECT 1 AS id FROM pg_sleep(30)",
            SourceKind::DuckDb => "SELECT count(*) AS id FROM range(100000000000) a(i) WHERE i % 7 = 3",
            // The server's own limit (MariaDB's max_statement_time) stops it.
            SourceKind::Mysql => "SELECT 1 AS id, SLEEP(30) AS z",
        };
        env.write_sync("slow", "destination = \"hook\"\nprimary_key = \"id\"\nstatement_timeout = \"300ms\"", slow);
        let started = Instant::now();
        let report = env.run("slow").await;
        assert!(report.failed() && report.error.as_deref().unwrap_or("").contains("statement_timeout (300ms)"), "{source:?}: {report:?}");
        assert!(started.elapsed() < Duration::from_secs(20), "{source:?}: stopped early: {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn a_run_stops_at_its_max_run_time() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec("CREATE TABLE t AS SELECT i AS id FROM range(1, 4) r(i)").await;
    env.write_sync("stuck", "destination = \"hook\"\nprimary_key = \"id\"\nmax_run_time = \"1s\"", "SELECT id FROM t");
    env.sink.hold_from(0);
    let started = Instant::now();
    let report = env.run("stuck").await;
    env.sink.release();
    assert!(report.failed() && report.deadline_exceeded, "{report:?}");
    assert!(report.error.as_deref().unwrap_or("").contains("longer than max_run_time (1s)"), "{report:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    // The sync is free, and the next run sends what the stopped one could not.
    let next = env.run("stuck").await;
    assert_eq!((next.status, next.written), (RunStatus::Success, 3), "{next:?}");
}
