//! `[alerts]`: failure, recovery and rejected-rows alerts to Slack (the emulator) or a webhook,
//! at most one per sync per `alert_interval` while the trouble lasts.

use crate::support;

use serde_json::json;
use sluice::state::RunStatus;
use support::slack::Slack;
use support::{sluice_cli, Env, Sink, SourceKind, StateKind};

/// A sync `accounts` over a table that does not exist yet, alerting to a Slack destination.
async fn project() -> (Env, Slack) {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    let slack = Slack::start().await;
    env.add_destination("ops", &format!("kind = \"slack\"\nwebhook_url = \"{}\"\nmin_interval = \"10ms\"", slack.url));
    env.append_config("\n[alerts]\ndestination = \"ops\"\non = [\"failure\", \"recovery\", \"rejected_rows\"]\nalert_interval = \"1h\"\n");
    env.write_sync("accounts", "destination = \"hook\"\nprimary_key = \"id\"", "SELECT id, plan FROM accounts");
    (env, slack)
}

#[tokio::test]
async fn a_failing_sync_alerts_once_per_interval_then_says_it_recovered() {
    let (env, slack) = project().await;
    let first = env.run("accounts").await;
    assert_eq!(first.status, RunStatus::Failed);
    let texts = slack.texts();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].starts_with(":rotating_light: sluice sync `accounts` failed: the model query failed:"), "{}", texts[0]);
    assert!(texts[0].contains("0 row(s) read, 0 written, 0 rejected") && texts[0].contains("`sluice status accounts`"), "{}", texts[0]);

    let second = env.run("accounts").await;
    assert_eq!(second.status, RunStatus::Failed);
    assert_eq!(slack.texts().len(), 1, "a sync that keeps failing alerts once per alert_interval");

    env.exec("CREATE TABLE accounts AS SELECT i AS id, 'free' AS plan FROM range(1, 4) t(i)").await;
    let fixed = env.run("accounts").await;
    assert_eq!(fixed.status, RunStatus::Success, "{:?}", fixed.error);
    assert_eq!(slack.texts()[1], ":white_check_mark: sluice sync `accounts` recovered: the run finished, 3 row(s) written");

    env.run("accounts").await;
    assert_eq!(slack.texts().len(), 2, "a healthy sync sends nothing");
}

#[tokio::test]
async fn rejected_rows_alert_with_the_first_reason() {
    let (env, slack) = project().await;
    env.exec("CREATE TABLE accounts AS SELECT i AS id, 'free' AS plan FROM range(1, 4) t(i)").await;
    env.sink.reject(json!({"id": 2}));
    let report = env.run("accounts").await;
    assert_eq!((report.status, report.rejected), (RunStatus::Partial, 1));
    let texts = slack.texts();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(
        texts[0].starts_with(":warning: sluice sync `accounts`: destination `hook` rejected 1 row(s).\nFirst: row (id=2) rejected:"),
        "{}",
        texts[0]
    );
    assert!(texts[0].contains("`sluice failures accounts`"), "{}", texts[0]);
}

#[tokio::test]
async fn an_alert_slack_refused_is_tried_again_on_the_next_run() {
    let (env, slack) = project().await;
    slack.with(|s| s.fail_next.push_back((500, "rollup_error")));
    let first = env.run("accounts").await;
    assert!(slack.texts().is_empty());
    assert!(
        first.warnings.iter().any(|w| w.contains("could not send the failure alert to destination `ops`") && w.contains("rollup_error")),
        "{:?}",
        first.warnings
    );
    env.run("accounts").await;
    assert_eq!(slack.texts().len(), 1, "the unsent alert goes out with the next failing run");
}

#[tokio::test]
async fn a_webhook_gets_the_alert_as_fields() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    let alerts = Sink::start().await;
    env.add_destination("pager", &format!("kind = \"webhook\"\nurl = \"{}\"", alerts.url));
    env.append_config("\n[alerts]\ndestination = \"pager\"\n");
    env.write_sync("accounts", "destination = \"hook\"\nprimary_key = \"id\"", "SELECT id, plan FROM accounts");
    let report = env.run("accounts").await;
    let rows = alerts.rows();
    assert_eq!(rows.len(), 1);
    let f = &rows[0].fields;
    assert_eq!((f["event"].as_str(), f["sync"].as_str(), f["status"].as_str()), (Some("failure"), Some("accounts"), Some("failed")));
    assert_eq!(f["run_id"].as_str(), Some(report.run_id.as_str()));
    assert!(f["error"].as_str().is_some_and(|e| e.contains("the model query failed")), "{f}");
    assert!(f["hint"].as_str().is_some_and(|h| h.contains("sluice status accounts")), "{f}");
}

#[tokio::test]
async fn alerts_must_name_a_destination_that_can_carry_them() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.append_config("\n[alerts]\ndestination = \"hoook\"\n");
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("[alerts] destination `hoook` is not defined") && text.contains("did you mean `hook`?"), "{text}");
}
