//! `[writeback]`: the run history and the change log, written after each run to tables in a
//! source database (Postgres, MariaDB, DuckDB), where models join them: here a sync whose model
//! reads which rows the destination rejected, as a user's would. A writeback that fails warns
//! and catches up after the next run; writing again what is there adds nothing.

use crate::support;

use serde_json::json;
use support::{sluice_cli, Env, Sink, SourceKind, StateKind};

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

/// The writeback's schema, a table of ids 1..=5, and the SQL each dialect needs.
struct Case {
    env: Env,
    schema: String,
    /// `row_key` as text.
    key_text: &'static str,
}

async fn case(kind: SourceKind) -> Case {
    let env = Env::new(kind, StateKind::Sqlite).await;
    // The source's own schema (database) where a test has one, so it goes with it.
    let schema = match kind {
        SourceKind::Postgres => env.pg_source.as_ref().unwrap().name.clone(),
        SourceKind::Mysql => env.my_source.as_ref().unwrap().schema.clone(),
        _ => "sluice_log".to_string(),
    };
    env.append_config(&format!("\n[writeback]\nsource = \"wh\"\nschema = \"{schema}\"\n"));
    env.exec("CREATE TABLE t (id INT, v INT)").await;
    env.exec("INSERT INTO t VALUES (1, 10), (2, 20), (3, 30), (4, 40), (5, 50)").await;
    let key_text = match kind {
        SourceKind::Postgres => "row_key::text",
        SourceKind::Mysql => "CAST(row_key AS CHAR)",
        _ => "row_key::VARCHAR",
    };
    env.write_sync("people", "destination = \"hook\"\nprimary_key = \"id\"\nlog_values = true", "SELECT id, v FROM t");
    Case { env, schema, key_text }
}

async fn run(env: &Env, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["run", "--json"];
    all.extend_from_slice(args);
    json_of(&sluice_cli(env.root(), &all, &[]).await)
}

/// A model over the writeback's tables, sent to a sink of its own: what the tables hold.
async fn report(c: &Case, sql: &str) -> Vec<serde_json::Value> {
    let sink = Sink::start().await;
    let name = format!("report_{}", uuid::Uuid::new_v4().simple());
    c.env.add_destination(&name, &format!("kind = \"webhook\"\nurl = \"{}\"", sink.url));
    c.env.write_sync(&name, &format!("destination = \"{name}\"\nprimary_key = \"k\""), &sql.replace("{schema}", &c.schema));
    let ran = run(&c.env, &[&name]).await;
    assert_eq!(ran["syncs"][0]["status"], "success", "{ran}");
    std::fs::remove_file(c.env.root().join("syncs").join(format!("{name}.sql"))).unwrap();
    let mut rows: Vec<serde_json::Value> = sink.rows().into_iter().map(|r| r.fields).collect();
    rows.sort_by_key(|r| r.to_string());
    rows
}

async fn history_and_changes_reach_the_source(kind: SourceKind) {
    let c = case(kind).await;
    c.env.sink.reject(json!({"id": 3}));
    let out = sluice_cli(c.env.root(), &["check"], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("{}.sluice_runs", c.schema)), "{}", text(&out));

    let ran = run(&c.env, &["people"]).await;
    assert_eq!((&ran["syncs"][0]["written"], &ran["syncs"][0]["rejected"]), (&json!(4), &json!(1)), "{ran}");
    assert!(ran["syncs"][0]["warnings"].as_array().unwrap().iter().all(|w| !w.as_str().unwrap().contains("[writeback]")), "{ran}");

    // Which rows failed to reach the destination: a model's question, answered from the log.
    let rejected = report(
        &c,
        &format!(
            "SELECT id AS k, {} AS row_key, op, outcome FROM {{schema}}.sluice_changes WHERE sync = 'people' AND outcome = 'rejected'",
            c.key_text
        ),
    )
    .await;
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    // (As the database prints JSON: Postgres' jsonb adds a space.)
    let key: serde_json::Value = serde_json::from_str(rejected[0]["row_key"].as_str().unwrap()).unwrap();
    assert_eq!((key, &rejected[0]["op"]), (json!({"id": 3}), &json!("upsert")), "{rejected:?}");
    let runs = report(&c, "SELECT run_id AS k, status, written, rejected FROM {schema}.sluice_runs WHERE sync = 'people'").await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!((&runs[0]["status"], &runs[0]["written"], &runs[0]["rejected"]), (&json!("partial"), &json!(4), &json!(1)));

    // Forgetting how far it wrote (a crash between the two commits) writes everything again:
    // nothing doubles (a doubled run id would fail the report's run: duplicate keys).
    let state = sqlx::SqlitePool::connect(&format!("sqlite://{}", c.env.root().join(".sluice/state.db").display())).await.unwrap();
    sqlx::query("DELETE FROM writeback_marks").execute(&state).await.unwrap();
    state.close().await;
    c.env.exec("UPDATE t SET v = 41 WHERE id = 4").await;
    run(&c.env, &["people"]).await;
    let runs = report(&c, "SELECT run_id AS k, written FROM {schema}.sluice_runs WHERE sync = 'people'").await;
    let mut written: Vec<i64> = runs.iter().map(|r| r["written"].as_i64().unwrap()).collect();
    written.sort();
    assert_eq!(written, [1, 4], "{runs:?}");
    let changes = report(&c, "SELECT id AS k, fields FROM {schema}.sluice_changes WHERE sync = 'people' AND outcome = 'written'").await;
    assert_eq!(changes.len(), 5, "4 rows written, then one again: {changes:?}");
}

#[tokio::test]
async fn postgres_gets_the_run_history_and_the_change_log() {
    history_and_changes_reach_the_source(SourceKind::Postgres).await;
}

#[tokio::test]
async fn mariadb_gets_the_run_history_and_the_change_log() {
    history_and_changes_reach_the_source(SourceKind::Mysql).await;
}

#[tokio::test]
async fn duckdb_models_read_the_writeback_file_as_a_schema() {
    history_and_changes_reach_the_source(SourceKind::DuckDb).await;
}

#[tokio::test]
async fn a_failed_writeback_warns_and_catches_up_after_the_next_run() {
    let c = case(SourceKind::Postgres).await;
    // A table of another shape where the run history goes: every write fails.
    c.env.exec("CREATE TABLE sluice_runs (x INT)").await;
    let ran = run(&c.env, &["people"]).await;
    assert_eq!(ran["syncs"][0]["status"], "success", "the run itself is not failed: {ran}");
    let warnings = ran["syncs"][0]["warnings"].to_string();
    assert!(warnings.contains("[writeback]: the writeback's tables in schema"), "{warnings}");
    assert!(warnings.contains("what was not written is written after the sync's next run"), "{warnings}");

    c.env.exec("DROP TABLE sluice_runs").await;
    run(&c.env, &["people"]).await;
    let runs = report(&c, "SELECT run_id AS k, written FROM {schema}.sluice_runs WHERE sync = 'people'").await;
    assert_eq!(runs.len(), 2, "the first run's row came with the second's: {runs:?}");
}

#[tokio::test]
async fn the_change_log_keeps_what_a_failing_writeback_has_not_copied_past_keep_changes() {
    let c = case(SourceKind::Postgres).await;
    c.env.exec("CREATE TABLE sluice_changes (x INT)").await;
    let ran = run(&c.env, &["people"]).await;
    assert!(ran["syncs"][0]["warnings"].to_string().contains("[writeback]"), "{ran}");
    // The five entries age past `keep_changes` (90 days) while the writeback keeps failing.
    let state = sqlx::SqlitePool::connect(&format!("sqlite://{}", c.env.root().join(".sluice/state.db").display())).await.unwrap();
    sqlx::query("UPDATE sync_changes SET changed_at = '2020-01-01T00:00:00.000Z'").execute(&state).await.unwrap();
    c.env.exec("UPDATE t SET v = 41 WHERE id = 4").await;
    let ran = run(&c.env, &["people"]).await;
    assert!(ran["syncs"][0]["warnings"].to_string().contains("[writeback]"), "{ran}");
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sync_changes WHERE sync = 'people'").fetch_one(&state).await.unwrap();
    assert_eq!(kept, 6, "old entries not yet copied are kept");
    state.close().await;

    c.env.exec("DROP TABLE sluice_changes").await;
    run(&c.env, &["people"]).await;
    let changes = report(&c, "SELECT id AS k FROM {schema}.sluice_changes WHERE sync = 'people'").await;
    assert_eq!(changes.len(), 6, "every entry reached the writeback: {changes:?}");
    // Copied, the old entries go at the next run's pruning.
    run(&c.env, &["people"]).await;
    let state = sqlx::SqlitePool::connect(&format!("sqlite://{}", c.env.root().join(".sluice/state.db").display())).await.unwrap();
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sync_changes WHERE sync = 'people'").fetch_one(&state).await.unwrap();
    assert_eq!(kept, 1, "copied and old: pruned");
    state.close().await;
}

#[tokio::test]
async fn a_writeback_to_a_missing_or_command_source_is_refused_at_its_line() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.append_config("\n[writeback]\nsource = \"whh\"\n");
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let said = text(&out);
    assert!(said.contains("[writeback] source `whh` is not defined") && said.contains("did you mean `wh`?"), "{said}");
    assert!(said.contains("sluice.toml:"), "names the line: {said}");
}
