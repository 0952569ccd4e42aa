//! Data never becomes markup, a mention, a link or a formula unless the sync asks for it: Slack
//! values are escaped (`| safe` trusts a field), CSV cells that a spreadsheet would run are
//! escaped by default, and Sheets in USER_ENTERED mode keeps text as text unless
//! `[target] formulas = true`.

use crate::support;

use support::google::Google;
use support::slack::Slack;
use support::{Env, SourceKind, StateKind};

const HOSTILE: &str = "=HYPERLINK(\"http://evil.example\",\"<!channel> click\") & more";

async fn env_with_hostile_row() -> Env {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec(&format!(
        "CREATE TABLE t AS SELECT * FROM (VALUES (1, '{}', '<https://ok.example|docs>'), (2, '-A1+1', 'plain'), (3, 'Ann', '-5')) v(id, name, note)",
        HOSTILE.replace('\'', "''")
    ))
    .await;
    env
}

#[tokio::test]
async fn slack_messages_escape_values_unless_a_field_is_trusted() {
    let env = env_with_hostile_row().await;
    let slack = Slack::start().await;
    env.add_destination("slack", &format!("kind = \"slack\"\nwebhook_url = \"{}\"\nmin_interval = \"1ms\"", slack.url));
    env.write_sync(
        "alerts",
        "destination = \"slack\"\nprimary_key = \"id\"\n[target]\ntext = \"<!here> {{ name }}: {{ note | safe }}\"\n\
         [[target.blocks]]\ntype = \"section\"\ntext = { type = \"mrkdwn\", text = \"*{{ name }}*\" }",
        "SELECT * FROM t WHERE id = 1",
    );
    let report = env.run("alerts").await;
    assert_eq!(report.written, 1, "{report:?}");
    let message = &slack.messages()[0];
    let escaped = "=HYPERLINK(\"http://evil.example\",\"&lt;!channel&gt; click\") &amp; more";
    assert_eq!(
        message["text"],
        format!("<!here> {escaped}: <https://ok.example|docs>"),
        "the template's own text and the trusted field stay"
    );
    assert_eq!(message["blocks"][0]["text"]["text"], format!("*{escaped}*"));
}

#[tokio::test]
async fn csv_cells_a_spreadsheet_would_run_are_escaped_and_rewrites_still_match_them() {
    let env = env_with_hostile_row().await;
    env.add_destination("out", "kind = \"file\"\npath = \"out.csv\"");
    env.add_destination("raw", "kind = \"file\"\npath = \"raw.csv\"\nescape_formulas = false");
    // Keyed on the hostile text itself, so a rewrite must read the escaped cells back.
    env.write_sync("csv", "destination = \"out\"\nprimary_key = \"name\"\nmode = \"mirror\"", "SELECT name, note FROM t");
    env.write_sync("programs", "destination = \"raw\"\nprimary_key = \"id\"", "SELECT id, name FROM t");
    assert_eq!(env.run("csv").await.written, 3);
    assert_eq!(env.run("programs").await.written, 3);
    let mut reader = csv::Reader::from_path(env.root().join("out.csv")).unwrap();
    let rows: Vec<Vec<String>> = reader.records().map(|r| r.unwrap().iter().map(str::to_string).collect()).collect();
    assert_eq!(rows[0], [format!("'{HOSTILE}"), "<https://ok.example|docs>".to_string()]);
    assert_eq!(rows[1], ["'-A1+1", "plain"]);
    assert_eq!(rows[2], ["Ann", "-5"], "numbers are data, not formulas");
    // A change to one row rewrites the file: the other rows are matched by their (escaped) keys.
    env.exec("UPDATE t SET note = 'changed' WHERE id = 3").await;
    let report = env.run("csv").await;
    assert_eq!((report.written, report.counts.removed), (1, 0), "{report:?}");
    let text = std::fs::read_to_string(env.root().join("out.csv")).unwrap();
    assert_eq!(text.lines().count(), 4, "no row doubled: {text}");
    let raw = std::fs::read_to_string(env.root().join("raw.csv")).unwrap();
    assert!(raw.contains("\"=HYPERLINK(") && raw.contains(",-A1+1"), "escape_formulas = false writes the text as it is: {raw}");
}

#[tokio::test]
async fn sheets_in_user_entered_mode_keep_text_as_text_unless_formulas_are_asked_for() {
    let env = env_with_hostile_row().await;
    let google = Google::start().await;
    env.add_destination("sheet", &google.destination_toml(env.root(), "value_input = \"USER_ENTERED\""));
    env.write_sync("data", "destination = \"sheet\"\nprimary_key = \"id\"\n[target]\nsheet = \"Data\"", "SELECT * FROM t");
    env.write_sync(
        "sums",
        "destination = \"sheet\"\nprimary_key = \"id\"\n[target]\nsheet = \"Sums\"\nformulas = true",
        "SELECT 1 AS id, '=1+2' AS total",
    );
    assert_eq!(env.run("data").await.written, 3);
    assert_eq!(env.run("sums").await.written, 1);
    let data = google.rows("Data").unwrap();
    assert_eq!(data[1], ["1", HOSTILE, "<https://ok.example|docs>"], "text, not a formula");
    assert_eq!(data[2], ["2", "-A1+1", "plain"]);
    assert_eq!(data[3], ["3", "Ann", "-5"], "a number typed in is still a number");
    assert_eq!(google.rows("Sums").unwrap()[1], ["1", "<formula =1+2>"], "the sync asked for formulas");
    // Unchanged on the next run: what was written reads back as what was sent.
    assert_eq!(env.run("data").await.to_send.total(), 0);
}
