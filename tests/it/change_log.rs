//! The change log: every row operation a run sends, with its outcome, in `sync_changes`, shown
//! by `sluice log` and pruned by age.

use crate::support;

use serde_json::{json, Value};
use support::{sluice_cli, Env, SourceKind, StateKind};

async fn project(header_extra: &str) -> Env {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec("CREATE TABLE people AS SELECT i AS id, 'p' || i || '@x.com' AS email FROM range(1, 4) t(i)").await;
    env.write_sync("people", &format!("primary_key = \"id\"\nmode = \"mirror\"\n{header_extra}"), "SELECT id, email FROM people");
    env
}

async fn log(env: &Env, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["log", "people", "--json"];
    all.extend_from_slice(args);
    let out = sluice_cli(env.root(), &all, &[]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    doc["changes"].as_array().cloned().unwrap_or_default()
}

async fn sql(env: &Env, query: &str) -> Vec<(String, String, String)> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", env.root().join(".sluice/state.db").display())).await.unwrap();
    let rows = sqlx::query_as(query).fetch_all(&pool).await.unwrap();
    pool.close().await;
    rows
}

#[tokio::test]
async fn every_operation_of_a_run_is_logged_with_its_outcome() {
    let env = project("").await;
    env.sink.reject(json!({"id": 2}));
    let first = env.run("people").await;

    let changes = log(&env, &[]).await;
    assert_eq!(changes.len(), 3);
    assert!(changes.iter().all(|c| c["run_id"] == first.run_id.as_str() && c["op"] == "upsert"));
    let rejected: Vec<&Value> = changes.iter().filter(|c| c["outcome"] == "rejected").collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["key"], json!({"id": 2}));
    assert!(rejected[0]["error"].as_str().is_some_and(|e| e.contains("email is not valid")), "{}", rejected[0]);
    assert!(changes.iter().all(|c| c.get("fields").is_none()), "values are logged only with log_values");

    env.exec("DELETE FROM people WHERE id = 3").await;
    env.sink.clear_rejects();
    let second = env.run("people").await;
    let changes = log(&env, &[]).await;
    assert_eq!(changes[0]["run_id"], second.run_id.as_str(), "newest first");
    assert_eq!((changes[0]["op"].as_str(), changes[0]["key"].clone()), (Some("delete"), json!({"id": 3})));

    // The log is a plain table: the same facts, in SQL.
    let rows = sql(&env, "SELECT op, outcome, row_key FROM sync_changes ORDER BY id").await;
    let facts: Vec<(&str, &str, &str)> = rows.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())).collect();
    assert_eq!(facts.len(), 4);
    assert!(facts.contains(&("upsert", "rejected", r#"{"id":2}"#)) && facts.contains(&("delete", "written", r#"{"id":3}"#)), "{facts:?}");

    let for_key = log(&env, &["--key", "3"]).await;
    assert_eq!(for_key.iter().map(|c| c["op"].as_str().unwrap()).collect::<Vec<_>>(), ["delete", "upsert"]);
    assert!(log(&env, &["--since", "2999-01-01T00:00:00Z"]).await.is_empty());
    assert_eq!(log(&env, &["--since", "1h"]).await.len(), 4);
}

#[tokio::test]
async fn values_are_logged_when_asked_and_old_entries_are_pruned() {
    let env = project("log_values = true").await;
    let path = env.root().join("sluice.toml");
    let config = std::fs::read_to_string(&path).unwrap().replacen("[state]\n", "[state]\nkeep_changes = \"30d\"\n", 1);
    std::fs::write(&path, config).unwrap();

    env.run("people").await;
    let changes = log(&env, &["--key", "id=1"]).await;
    assert_eq!(changes[0]["fields"], json!({"id": 1, "email": "p1@x.com"}));

    // An entry from long ago (backdated in place) goes at the next run; recent ones stay.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", env.root().join(".sluice/state.db").display())).await.unwrap();
    sqlx::query("UPDATE sync_changes SET changed_at = '2020-01-01T00:00:00.000Z' WHERE row_key = '{\"id\":1}'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    env.exec("UPDATE people SET email = 'new@x.com' WHERE id = 2").await;
    env.run("people").await;
    let keys: Vec<Value> = log(&env, &[]).await.iter().map(|c| c["key"].clone()).collect();
    assert_eq!(keys, [json!({"id": 2}), json!({"id": 3}), json!({"id": 2})], "the backdated entry was pruned");
}

#[tokio::test]
async fn a_bad_key_or_time_says_what_to_write() {
    let env = project("").await;
    let out = sluice_cli(env.root(), &["log", "people", "--since", "last tuesday"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("give a time (2026-11-25T09:00:00Z) or a duration back from now"));
}
