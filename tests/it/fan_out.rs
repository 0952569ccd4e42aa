//! `examples/fan-out`, exactly as it is in the repository: one model sent to a Postgres table, a
//! Notion database, HubSpot contacts and a Slack channel by one `sluice run`, then only a changed
//! row sent to each.

use crate::support;

use support::databases::{DestDb, Dialect};
use support::hubspot::HubSpot;
use support::notion::Notion;
use support::slack::Slack;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_fan_out_example_sends_one_model_to_four_destinations() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_example("fan-out", dir.path());
    let db = DestDb::create(Dialect::Postgres).await;
    let (notion, hubspot, slack) = (Notion::start().await, HubSpot::start().await, Slack::start().await);
    // The table goes to the URL's default schema: the test's own.
    let sep = if db.url.contains('?') { '&' } else { '?' };
    let app_url = format!("{}{sep}options=-c%20search_path%3D{}", db.url, db.schema);
    let envs = [
        ("APP_DATABASE_URL", app_url.as_str()),
        ("NOTION_TOKEN", support::notion::TOKEN),
        ("HUBSPOT_TOKEN", support::hubspot::TOKEN),
        ("SLACK_WEBHOOK_URL", slack.url.as_str()),
        // The real services' addresses, overridden for the emulators as any setting can be.
        ("SLUICE__DESTINATIONS__NOTION__BASE_URL", notion.base_url.as_str()),
        ("SLUICE__DESTINATIONS__CRM__BASE_URL", hubspot.base_url.as_str()),
    ];
    let check = sluice_cli(dir.path(), &["check"], &envs).await;
    assert!(check.status.success(), "{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    let run = sluice_cli(dir.path(), &["run"], &envs).await;
    let said = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "{said}");

    let rows = db.rows("churn_scores", &["customer_id", "plan", "mrr", "renews_on"]).await;
    assert_eq!(rows.len(), 5);
    assert_eq!(rows["c-1002"][1..], [Some("Team".into()), Some("450.50".into()), Some("2026-12-31".into())]);
    assert_eq!(notion.pages().len(), 5);
    assert_eq!(notion.page("c-1002").text("Name"), "Grace Hopper");
    let grace = hubspot.find("contacts", "email", "grace@example.com").expect("a contact for grace@example.com");
    assert_eq!(grace.properties.get("score").map(String::as_str), Some("0.81"));
    let texts = slack.texts();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("Grace Hopper (Team, 450.5/month)")), "{texts:?}");

    // One customer's risk rises: each destination gets that row, and only it.
    let csv = dir.path().join("data/customers.csv");
    let text = std::fs::read_to_string(&csv).expect("csv").replace("Free,0.00,0.35,", "Free,0.00,0.92,");
    std::fs::write(&csv, text).expect("csv");
    hubspot.clear_log();
    notion.clear_log();
    let run = sluice_cli(dir.path(), &["run", "--json"], &envs).await;
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).expect("the run's JSON");
    let written: Vec<(String, u64)> = report["syncs"]
        .as_array()
        .expect("syncs")
        .iter()
        .map(|s| (s["sync"].as_str().unwrap_or_default().to_string(), s["written"].as_u64().unwrap_or(99)))
        .collect();
    let mut written = written;
    written.sort();
    assert_eq!(written, [("app_db".into(), 1), ("at_risk".into(), 1), ("crm".into(), 1), ("notion".into(), 0)]);
    assert_eq!(db.rows("churn_scores", &["customer_id", "churn_risk"]).await["c-1003"][1], Some("0.92".into()));
    assert_eq!(slack.texts().len(), 3);
    assert!(notion.requests("PATCH", "/v1/pages").is_empty(), "the Notion sync maps no churn risk: nothing to send");
}
