//! `on_remove`: what happens to a row that leaves the model, on the webhook and the file
//! destination (Sheets and HubSpot have their own tests in their files).

use crate::support;

use serde_json::json;
use support::{sluice_cli, Env, SourceKind, StateKind};

async fn project(header: &str) -> Env {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec("CREATE TABLE people AS SELECT i AS id, 'p' || i || '@x.com' AS email, i * 2 AS score FROM range(1, 4) t(i)").await;
    env.write_sync("people", header, "SELECT id, email, score FROM people");
    env
}

#[tokio::test]
async fn clear_sends_the_key_with_empty_fields_once_and_counts_in_the_delete_guard() {
    let env = project("primary_key = \"id\"\non_remove = \"clear\"\nmax_deletes = 1").await;
    env.run("people").await;
    env.sink.take();
    env.exec("DELETE FROM people WHERE id = 2").await;
    let report = env.run("people").await;
    assert_eq!((report.to_send.clear, report.written), (1, 1), "{:?}", report.error);
    let rows = env.sink.take();
    assert_eq!((rows[0].op.as_str(), rows[0].key.clone()), ("clear", json!({"id": 2})));
    assert_eq!(rows[0].fields, json!({"id": 2, "email": null, "score": null}), "the key field keeps the key");
    assert_eq!(env.run("people").await.written, 0, "cleared once");

    env.exec("DELETE FROM people WHERE id IN (1, 3)").await;
    let guarded = env.run("people").await;
    assert!(guarded.error.as_deref().is_some_and(|e| e.starts_with("delete guard:")), "{:?}", guarded.error);
}

#[tokio::test]
async fn ignore_is_the_default_outside_mirror_and_delete_upgrades_upsert_to_mirror() {
    let env = project("primary_key = \"id\"").await;
    env.run("people").await;
    env.exec("DELETE FROM people WHERE id = 3").await;
    let report = env.run("people").await;
    assert_eq!((report.counts.removed, report.to_send.total()), (1, 0));

    env.write_sync("people", "primary_key = \"id\"\non_remove = \"delete\"", "SELECT id, email, score FROM people");
    env.sink.take();
    let report = env.run("people").await;
    assert_eq!(report.to_send.delete, 1);
    let rows = env.sink.take();
    assert!(rows.iter().any(|r| r.op == "delete" && r.key == json!({"id": 3})), "{rows:?}");
}

#[tokio::test]
async fn the_file_destination_keeps_a_cleared_rows_key() {
    let env = project("primary_key = \"id\"\ndestination = \"out\"\non_remove = \"clear\"").await;
    env.add_destination("out", "kind = \"file\"\npath = \"out/people.csv\"");
    env.run("people").await;
    env.exec("DELETE FROM people WHERE id = 2").await;
    env.run("people").await;
    let text = std::fs::read_to_string(env.root().join("out/people.csv")).unwrap();
    assert_eq!(text, "id,email,score\n1,p1@x.com,2\n2,,\n3,p3@x.com,6\n");
}

#[tokio::test]
async fn check_refuses_on_remove_where_it_cannot_work() {
    let env = project("primary_key = \"id\"\nmode = \"mirror\"\non_remove = \"clear\"").await;
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("syncs/people.sql:4: mode = \"mirror\" means on_remove = \"delete\""), "{text}");
    env.write_sync("people", "primary_key = \"id\"\nmode = \"insert\"\non_remove = \"clear\"", "SELECT id, email, score FROM people");
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("on_remove = \"clear\" does not go with mode = \"insert\""));
}
