//! Per-field write rules on the webhook and the file destination: `nulls = "skip"` leaves the
//! destination's value alone, `write = "if_empty"` fills only empty fields. (HubSpot,
//! Salesforce and Sheets have theirs in their own files.)

use crate::support;

use support::{sluice_cli, Env, SourceKind, StateKind};

async fn project(header: &str) -> Env {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec("CREATE TABLE people AS SELECT i AS id, CASE WHEN i = 2 THEN NULL ELSE 'p' || i || '@x.com' END AS email, NULL::TEXT AS phone FROM range(1, 4) t(i)").await;
    env.write_sync("people", header, "SELECT id, email, phone FROM people");
    env
}

#[tokio::test]
async fn skipped_nulls_are_left_out_of_the_webhook_fields() {
    let env = project("primary_key = \"id\"\nnulls = \"skip\"").await;
    env.run("people").await;
    let mut rows = env.sink.take();
    rows.sort_by_key(|r| r.key["id"].as_i64());
    assert_eq!(rows[0].fields, serde_json::json!({"id": 1, "email": "p1@x.com"}));
    assert_eq!(rows[1].fields, serde_json::json!({"id": 2}));
}

#[tokio::test]
async fn the_file_keeps_typed_values_for_if_empty_fields_and_skipped_nulls() {
    let env = project("primary_key = \"id\"\ndestination = \"out\"\nnulls = \"skip\"\n[mapping]\nid = \"id\"\nemail = \"email\"\nphone = { column = \"phone\", write = \"if_empty\" }").await;
    env.add_destination("out", "kind = \"file\"\npath = \"out/people.csv\"");
    env.run("people").await;
    let path = env.root().join("out/people.csv");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "id,email,phone\n1,p1@x.com,\n2,,\n3,p3@x.com,\n");
    // Someone types a phone for 1; the model then has phones for all, and email 1 goes NULL.
    std::fs::write(&path, "id,email,phone\n1,p1@x.com,555-typed\n2,,\n3,p3@x.com,\n").unwrap();
    env.exec("UPDATE people SET phone = '999-' || id, email = CASE WHEN id = 1 THEN NULL ELSE email END").await;
    env.run("people").await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "id,email,phone\n1,p1@x.com,555-typed\n2,,999-2\n3,p3@x.com,999-3\n");
}

#[tokio::test]
async fn check_refuses_if_empty_where_the_destination_cannot_read() {
    let env = project("primary_key = \"id\"\n[mapping]\nid = \"id\"\nphone = { column = \"phone\", write = \"if_empty\" }").await;
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("syncs/people.sql:5: mapping `phone`: destination `hook` cannot read the values it holds"), "{text}");
}
