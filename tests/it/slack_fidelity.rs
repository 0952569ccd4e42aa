//! Slack as it is documented to treat what it is sent: mrkdwn that notifies people and makes
//! links, Block Kit's limits, and message text cut at 40,000 characters. The client keeps data
//! from mentioning anyone, and cuts a message to fit (a digest lists fewer rows) saying so,
//! rather than have Slack refuse it or cut it silently.

use crate::support;

use sluice::state::RunStatus;
use support::slack::Slack;
use support::{sluice_cli, Env, SourceKind, StateKind};

async fn project(rows: &str, target: &str) -> (Env, Slack) {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    let slack = Slack::start().await;
    env.add_destination("slack", &format!("kind = \"slack\"\nwebhook_url = \"{}\"\nmin_interval = \"1ms\"", slack.url));
    env.exec(rows).await;
    env.write_sync("alerts", &format!("destination = \"slack\"\nprimary_key = \"id\"\n[target]\n{target}"), "SELECT * FROM accounts");
    (env, slack)
}

#[tokio::test]
async fn a_value_written_as_a_mention_or_a_link_notifies_nobody() {
    let (env, slack) = project(
        "CREATE TABLE accounts AS SELECT 1 AS id, '<!channel> <@U024BE7LH> <!subteam^S1> <https://evil.example|click here>' AS name",
        "text = \"New account: {{ name }}\"\nblocks = '[{\"type\": \"section\", \"text\": {\"type\": \"mrkdwn\", \"text\": \"*{{ name }}*\"}}]'",
    )
    .await;
    let report = env.run("alerts").await;
    assert_eq!((report.status, report.written), (RunStatus::Success, 1), "{:?}", report.error);
    slack.with(|s| {
        assert_eq!((s.mentions.clone(), s.links.clone()), (Vec::<String>::new(), Vec::<String>::new()), "{:?}", s.messages);
    });
}

#[tokio::test]
async fn a_value_too_long_for_its_block_is_cut_to_fit_and_the_run_says_so() {
    let (env, slack) = project(
        "CREATE TABLE accounts AS SELECT i AS id, repeat('word ', 1000) AS notes FROM range(1, 3) t(i)",
        "text = \"Notes\"\nblocks = '[{\"type\": \"header\", \"text\": {\"type\": \"plain_text\", \"text\": \"{{ notes }}\"}}, \
         {\"type\": \"section\", \"text\": {\"type\": \"mrkdwn\", \"text\": \"{{ notes }}\"}}]'",
    )
    .await;
    let report = env.run("alerts").await;
    assert_eq!((report.status, report.written), (RunStatus::Success, 2), "{:?} {:?}", report.error, report.warnings);
    let message = &slack.messages()[0];
    let header = message["blocks"][0]["text"]["text"].as_str().unwrap();
    let section = message["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(header.chars().count() <= 150 && header.ends_with('…'), "{header}");
    assert!(section.chars().count() <= 3000 && section.ends_with('…'));
    assert!(report.warnings.iter().any(|w| w.contains("cut") && w.contains("3000") && w.contains("id=1")), "{:?}", report.warnings);
}

#[tokio::test]
async fn a_digest_longer_than_slack_takes_lists_fewer_rows_and_says_so() {
    let (env, slack) = project(
        "CREATE TABLE accounts AS SELECT i AS id, repeat('x', 300) AS name FROM range(1, 501) t(i)",
        "digest = true\ndigest_rows = 500",
    )
    .await;
    let report = env.run("alerts").await;
    assert_eq!((report.status, report.written), (RunStatus::Success, 500), "{:?} {:?}", report.error, report.warnings);
    assert_eq!(slack.with(|s| s.truncated), 0, "Slack had nothing to cut");
    let text = &slack.texts()[0];
    assert!(text.chars().count() <= 40_000);
    let listed = text.lines().filter(|l| l.starts_with('•')).count();
    assert!(listed > 50 && listed < 500, "{listed} rows listed");
    assert!(text.ends_with(&format!("… and {} more", 500 - listed)), "{}", &text[text.len() - 60..]);
    assert!(report.warnings.iter().any(|w| w.contains(&format!("{listed} of the 500 rows"))), "{:?}", report.warnings);
}

#[tokio::test]
async fn more_blocks_than_a_message_holds_fail_the_check() {
    let blocks: Vec<String> =
        (0..51).map(|i| format!("{{\"type\": \"section\", \"text\": {{\"type\": \"mrkdwn\", \"text\": \"{i}\"}}}}")).collect();
    let (env, slack) =
        project("CREATE TABLE accounts AS SELECT 1 AS id", &format!("text = \"x\"\nblocks = '[{}]'", blocks.join(", "))).await;
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("51 blocks") && stdout.contains("at most 50"), "{stdout}");
    assert!(slack.messages().is_empty());
}
