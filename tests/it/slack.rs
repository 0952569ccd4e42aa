//! The Slack destination against the incoming-webhook emulator: one message per added or
//! changed row from the sync's template (text and Block Kit), a digest per run, Slack's pace
//! and its plain-text errors.

use crate::support;

use std::time::Duration;

use serde_json::json;
use sluice::state::RunStatus;
use support::slack::Slack;
use support::{sluice_cli, Env, SourceKind, StateKind};

/// A project with a `slack` destination (paced at `interval`) and a `churn` table of `rows` rows.
async fn project(interval: &str, rows: u32) -> (Env, Slack) {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    let slack = Slack::start().await;
    env.add_destination(
        "slack",
        &format!("kind = \"slack\"\nwebhook_url = \"{}\"\nmin_interval = \"{interval}\"\nretry_initial_delay = \"10ms\"", slack.url),
    );
    env.exec(&format!(
        "CREATE TABLE churn AS SELECT i AS id, 'Acct ' || i AS name, round(i / 10, 2) AS score FROM range(1, {}) t(i)",
        rows + 1
    ))
    .await;
    (env, slack)
}

fn sync(env: &Env, target: &str) {
    env.write_sync("churn_alerts", &format!("destination = \"slack\"\nprimary_key = \"id\"\n[target]\n{target}"), "SELECT * FROM churn");
}

#[tokio::test]
async fn each_added_or_changed_row_is_one_message_from_the_template() {
    let (env, slack) = project("10ms", 3).await;
    sync(&env, "text = \"{{ name }} churn risk {{ score }} ({{ _op }})\"");
    let report = env.run("churn_alerts").await;
    assert_eq!((report.status, report.written), (RunStatus::Success, 3), "{:?}", report.error);
    assert_eq!(slack.texts(), ["Acct 1 churn risk 0.1 (upsert)", "Acct 2 churn risk 0.2 (upsert)", "Acct 3 churn risk 0.3 (upsert)"]);

    let report = env.run("churn_alerts").await;
    assert_eq!((report.written, slack.texts().len()), (0, 3), "an unchanged model sends nothing");

    env.exec("UPDATE churn SET score = 0.95 WHERE id = 2").await;
    env.run("churn_alerts").await;
    assert_eq!(slack.texts()[3..], ["Acct 2 churn risk 0.95 (upsert)"]);
}

#[tokio::test]
async fn block_kit_templates_render_inside_json_strings() {
    let (env, slack) = project("10ms", 1).await;
    env.exec("UPDATE churn SET name = 'Quote \"Co\"' || chr(10) || 'Ltd'").await;
    sync(
        &env,
        "text = \"{{ name }}\"\n[[target.blocks]]\ntype = \"section\"\ntext = { type = \"mrkdwn\", text = \"*{{ name }}* is at {{ score }}\" }",
    );
    let report = env.run("churn_alerts").await;
    assert_eq!(report.written, 1, "{:?} {:?}", report.error, report.warnings);
    let message = &slack.messages()[0];
    assert_eq!(message["blocks"], json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*Quote \"Co\"\nLtd* is at 0.1"}}]));
}

#[tokio::test]
async fn a_digest_is_one_message_per_run_with_the_count_and_the_first_rows() {
    let (env, slack) = project("10ms", 25).await;
    sync(&env, "digest = true\ndigest_rows = 2");
    let report = env.run("churn_alerts").await;
    assert_eq!(report.written, 25);
    assert_eq!(
        slack.texts(),
        ["*churn_alerts*: 25 new or changed row(s)\n• id: 1, name: Acct 1, score: 0.1\n• id: 2, name: Acct 2, score: 0.2\n… and 23 more"]
    );
}

#[tokio::test]
async fn slack_rate_limits_are_honoured_and_no_message_is_posted_twice() {
    // sluice paced far faster than Slack allows: Slack answers 429 + Retry-After, sluice waits.
    let (env, slack) = project("10ms", 3).await;
    slack.with(|s| s.min_interval = Some(Duration::from_millis(900)));
    sync(&env, "text = \"{{ name }}\"");
    let report = env.run("churn_alerts").await;
    assert_eq!((report.status, report.written), (RunStatus::Success, 3), "{:?}", report.error);
    assert_eq!(slack.texts(), ["Acct 1", "Acct 2", "Acct 3"]);
    assert!(slack.with(|s| s.rate_limited) >= 1, "the emulator never had to slow sluice down");
}

#[tokio::test]
async fn the_default_pace_is_one_message_a_second() {
    let (env, slack) = project("1s", 3).await;
    // Half a second of margin: a paced sender never comes close, whatever the machine's load.
    slack.with(|s| s.min_interval = Some(Duration::from_millis(500)));
    sync(&env, "text = \"{{ name }}\"");
    let report = env.run("churn_alerts").await;
    assert_eq!(report.written, 3);
    assert_eq!(slack.with(|s| s.rate_limited), 0, "a paced sender is never told to slow down");
}

#[tokio::test]
async fn a_refused_message_rejects_its_row_and_a_server_error_resends_only_what_was_not_posted() {
    let (env, slack) = project("10ms", 4).await;
    slack.with(|s| {
        s.refuse_containing = Some("Acct 2".into());
        // Request 3 (Acct 3) fails once with Slack's 500: Acct 1 must not be posted again.
        s.fail_nth.push((3, 500, "rollup_error"));
    });
    sync(&env, "text = \"{{ name }}\"");
    let report = env.run("churn_alerts").await;
    assert_eq!((report.written, report.rejected), (3, 1), "{:?} {:?}", report.error, report.warnings);
    assert!(
        report.warnings.iter().any(|w| w.contains("(id=2) rejected: Slack refused the message: HTTP 400: invalid_blocks")),
        "{:?}",
        report.warnings
    );
    assert_eq!(slack.texts(), ["Acct 1", "Acct 3", "Acct 4"], "each message is posted exactly once");
    assert_eq!(slack.with(|s| s.requests), 5, "1, 2 (refused), 3 (500), 3 again, 4");
}

#[tokio::test]
async fn an_archived_channel_fails_the_run_with_what_to_do() {
    let (env, slack) = project("10ms", 2).await;
    slack.with(|s| s.fail_next.push_back((410, "channel_is_archived")));
    sync(&env, "text = \"{{ name }}\"");
    let report = env.run("churn_alerts").await;
    assert_eq!(report.status, RunStatus::Failed);
    let error = report.error.unwrap_or_default();
    assert!(error.contains("HTTP 410 Gone: channel_is_archived") && error.contains("unarchive it"), "{error}");
    assert!(!error.contains("XXXXtokenXXXX"), "the webhook URL is a secret: {error}");
    assert_eq!(slack.with(|s| s.requests), 1, "configuration errors are not retried");
}

#[tokio::test]
async fn check_refuses_unknown_template_names_and_mirror_mode() {
    let (env, _slack) = project("10ms", 1).await;
    sync(&env, "text = \"{{ nmae }} churn\"");
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("[target] text: the template uses `nmae` (did you mean `name`?)"), "{text}");

    env.write_sync(
        "churn_alerts",
        "destination = \"slack\"\nprimary_key = \"id\"\nmode = \"mirror\"\n[target]\ntext = \"x\"",
        "SELECT * FROM churn",
    );
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("mode `mirror`"), "{text}");
}

#[tokio::test]
async fn editing_the_message_template_resends_nothing() {
    let (env, slack) = project("10ms", 2).await;
    sync(&env, "text = \"{{ name }}\"");
    env.run("churn_alerts").await;
    sync(&env, "text = \"{{ name }}, fixed\"\ndigest_rows = 3");
    let report = env.run("churn_alerts").await;
    assert_eq!((report.config_changed, report.written), (false, 0), "a template is how rows look, not what is sent");
    assert_eq!(slack.texts().len(), 2);
}
