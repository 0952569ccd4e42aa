//! `[alerts]`: failure, recovery, rejected rows (any, or over a share), slow runs, row counts off
//! their usual range and late runs, to Slack (the emulator) or a webhook, at most one of a kind
//! per sync per `alert_interval` while the trouble lasts; a sync's header may set its own.

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

/// The events a webhook alert destination got, in order.
fn events_of(alerts: &Sink) -> Vec<String> {
    alerts.rows().iter().map(|r| r.fields["event"].as_str().unwrap_or_default().to_string()).collect()
}

#[tokio::test]
async fn thresholds_alert_on_a_rejected_share_a_slow_run_and_row_counts_off_their_median() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    let alerts = Sink::start().await;
    env.add_destination("pager", &format!("kind = \"webhook\"\nurl = \"{}\"", alerts.url));
    // The project's thresholds, and this sync's own over them.
    env.append_config("\n[alerts]\ndestination = \"pager\"\nrejected_share_pct = 50\ndeviation_runs = 2\n");
    env.exec("CREATE TABLE accounts AS SELECT i AS id, 'free' AS plan FROM range(1, 11) t(i)").await;
    let header = "destination = \"hook\"\nprimary_key = \"id\"\n[alerts]\non = [\"rejected_share\", \"slow_run\", \"row_counts\"]\n\
                  rejected_share_pct = 20\nmax_duration = \"1ms\"\ndeviation_min_rows = 5";
    env.write_sync("accounts", header, "SELECT id, plan FROM accounts");
    for id in [2, 4, 6] {
        env.sink.reject(json!({ "id": id }));
    }
    let first = env.run("accounts").await;
    assert_eq!((first.status, first.rejected), (RunStatus::Partial, 3));
    assert_eq!(events_of(&alerts), ["rejected_share", "slow_run"], "30% rejected is over this sync's 20%; any run is over 1ms");
    let text = alerts.rows()[0].fields["text"].as_str().unwrap().to_string();
    assert!(text.contains("30.0% of the rows sent were rejected (3 of 10), over its 20% threshold"), "{text}");

    // A second run like the first: nothing new (the interval holds); a third with three times
    // the rows: the model rows and the changes are off the median of the two before.
    env.run("accounts").await;
    assert_eq!(alerts.rows().len(), 2);
    env.exec("INSERT INTO accounts SELECT i, 'free' FROM range(11, 31) t(i)").await;
    let third = env.run("accounts").await;
    assert_eq!(events_of(&alerts), ["rejected_share", "slow_run", "row_counts"], "{:?}", third.warnings);
    let text = alerts.rows()[2].fields["text"].as_str().unwrap().to_string();
    assert!(text.contains("model rows 30 against a usual 10 (+200%)"), "{text}");
}

#[tokio::test]
async fn bad_thresholds_are_refused_where_they_are_written() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    let alerts = Sink::start().await;
    env.add_destination("pager", &format!("kind = \"webhook\"\nurl = \"{}\"", alerts.url));
    env.append_config("\n[alerts]\ndestination = \"pager\"\nrejected_share_pct = 150\n");
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("sluice.toml:") && text.contains("`rejected_share_pct` = 150 is a percentage of the rows sent: 0 to 100"),
        "{text}"
    );

    let config = std::fs::read_to_string(env.root().join("sluice.toml")).unwrap().replace("rejected_share_pct = 150\n", "");
    std::fs::write(env.root().join("sluice.toml"), config).unwrap();
    env.write_sync("slow", "destination = \"hook\"\nprimary_key = \"id\"\n[alerts]\non = [\"slow_run\"]", "SELECT 1 AS id");
    env.write_sync("odd", "destination = \"hook\"\nprimary_key = \"id\"\n[alerts]\ndeviation_runs = 0", "SELECT 1 AS id");
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("syncs/slow.sql:4: [alerts] `slow_run` needs `max_duration`"), "{text}");
    assert!(text.contains("syncs/odd.sql:4: [alerts] `deviation_runs` = 0 must be 1 to 1000"), "{text}");
}
