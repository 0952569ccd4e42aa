//! `[mapping]` beyond columns: static values and templates over the model's columns.

use crate::support;

use serde_json::json;
use support::{sluice_cli, Env, SourceKind, StateKind};

const HEADER: &str = "primary_key = \"id\"\n[mapping]\nid = \"id\"\nlifecyclestage = { value = \"customer\" }\nfull_name = { template = \"{{ first }} {{ last | upper }}\" }\nemail = { column = \"email\" }";

#[tokio::test]
async fn static_values_and_templates_fill_fields_and_changes_to_their_inputs_resend_the_row() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec(
        "CREATE TABLE people AS SELECT i AS id, 'Ann' || i AS first, 'lee' AS last, 'a' || i || '@x.com' AS email FROM range(1, 3) t(i)",
    )
    .await;
    env.write_sync("people", HEADER, "SELECT id, first, last, email FROM people");
    let report = env.run("people").await;
    assert_eq!(report.written, 2, "{:?}", report.error);
    let rows = env.sink.take();
    assert_eq!(rows[0].fields, json!({"id": 1, "lifecyclestage": "customer", "full_name": "Ann1 LEE", "email": "a1@x.com"}));

    // `last` is not mapped itself, but the template reads it: the row changed.
    env.exec("UPDATE people SET last = 'ng' WHERE id = 2").await;
    let report = env.run("people").await;
    assert_eq!(report.counts.changed, 1);
    assert_eq!(env.sink.take()[0].fields["full_name"], "Ann2 NG");
    assert_eq!(env.run("people").await.written, 0, "an unchanged model sends nothing");
}

#[tokio::test]
async fn check_names_the_mapping_line_of_a_template_that_uses_an_unknown_column() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec("CREATE TABLE people AS SELECT 1 AS id, 'Ann' AS first").await;
    env.write_sync(
        "people",
        "primary_key = \"id\"\n[mapping]\nid = \"id\"\nname = { template = \"{{ frist }}\" }",
        "SELECT id, first FROM people",
    );
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("syncs/people.sql:5: mapping `name`: the template uses `frist` (did you mean `first`?)"), "{text}");

    env.write_sync("people", "primary_key = \"id\"\n[mapping]\nid = \"id\"\nname = { valeu = 1 }", "SELECT id, first FROM people");
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("syncs/people.sql:5: mapping `name`: unknown key `valeu`"));
}
