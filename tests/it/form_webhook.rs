//! `examples/form-webhook`, exactly as it is in the repository: its daemon takes Typeform-signed
//! responses posted by its own `scripts/post_forms.py`, and within seconds each is a HubSpot
//! contact, a row in a Postgres table and a Slack message, once each: posting the same
//! responses again (a sender's retry) sends nothing more.

use crate::support;

use std::time::Duration;

use support::daemon::{eventually, Daemon};
use support::databases::{DestDb, Dialect};
use support::hubspot::HubSpot;
use support::slack::Slack;
use support::*;

const WAIT: Duration = Duration::from_secs(40);
const SECRET: &str = "whsec-form-example";

#[tokio::test(flavor = "multi_thread")]
async fn the_form_webhook_example_fans_each_response_out_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_example("form-webhook", dir.path());
    let db = DestDb::create(Dialect::Postgres).await;
    let (hubspot, slack) = (HubSpot::start().await, Slack::start().await);
    let sep = if db.url.contains('?') { '&' } else { '?' };
    let dwh_url = format!("{}{sep}options=-c%20search_path%3D{}", db.url, db.schema);
    let envs: Vec<(&str, String)> = vec![
        ("FORM_HMAC_SECRET", SECRET.into()),
        ("HUBSPOT_TOKEN", support::hubspot::TOKEN.into()),
        ("DWH_URL", dwh_url),
        ("SLACK_WEBHOOK_URL", slack.url.clone()),
        ("SLUICE_LISTEN", "127.0.0.1:0".into()),
        ("SLUICE__DESTINATIONS__CRM__BASE_URL", hubspot.base_url.clone()),
    ];
    let env_refs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let check = sluice_cli(dir.path(), &["check"], &env_refs).await;
    assert!(check.status.success(), "{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));

    let daemon = Daemon::start(dir.path(), &envs);
    let base = daemon.base_url().await;
    let post = || {
        std::process::Command::new("python3")
            .arg("scripts/post_forms.py")
            .args(["--url", &base])
            .current_dir(dir.path())
            .env("FORM_HMAC_SECRET", SECRET)
            .output()
            .expect("python3 runs the example's script")
    };
    let posted = post();
    assert!(posted.status.success(), "{}", String::from_utf8_lossy(&posted.stderr));

    eventually(WAIT, "four contacts, four rows, four messages", || async {
        hubspot.records("contacts").len() == 4 && slack.texts().len() == 4 && db.count("form_signups").await == 4
    })
    .await;
    let grace = hubspot.find("contacts", "email", "grace@example.com").expect("a contact for grace@example.com");
    assert_eq!(grace.properties.get("firstname").map(String::as_str), Some("Grace"));
    assert_eq!(grace.properties.get("lastname").map(String::as_str), Some("Hopper"));
    assert_eq!(grace.properties.get("company").map(String::as_str), Some("Navy Computing"));
    let rows = db.rows("form_signups", &["email", "name", "company", "seats", "form_id"]).await;
    assert_eq!(
        rows["ada@example.com"][1..],
        [Some("Ada Lovelace".into()), Some("Analytical Engines".into()), Some("12".into()), Some("signup".into())]
    );
    let texts = slack.texts();
    assert!(texts.iter().any(|t| t == "New signup: Grace Hopper from Navy Computing (40 seats)"), "{texts:?}");
    // A respondent's company is data, not markup: Slack's control characters arrive escaped.
    assert!(texts.iter().any(|t| t.contains("Bletchley &lt;Park&gt; &amp; Co")), "{texts:?}");

    // Typeform retries a delivery it thinks failed: the same responses again are stored once.
    let again = post();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).matches("\"duplicate\":true").count(),
        4,
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    assert_eq!(stored_events(dir.path()).await, 4);
    assert_eq!((hubspot.records("contacts").len(), slack.texts().len(), db.count("form_signups").await), (4, 4, 4));
    assert!(!daemon.logs().contains(SECRET), "the stream's secret never reaches the log");
}

/// Events the example's state store holds.
async fn stored_events(root: &std::path::Path) -> i64 {
    use sqlx::Row;
    let url = format!("sqlite://{}?mode=ro", root.join(".sluice/state.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("the example's state store");
    let n = sqlx::query("SELECT COUNT(*) FROM stream_events").fetch_one(&pool).await.expect("count").get::<i64, _>(0);
    pool.close().await;
    n
}
