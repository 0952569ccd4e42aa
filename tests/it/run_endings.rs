//! How a run ends when it does not simply finish: stopped on request (Ctrl-C, SIGTERM) it is
//! interrupted, not failed, sends no failure alert, and stops at once even mid-scan; a panic (a
//! bug) still ends in the run history as a failure with its message, and frees the sync.

use crate::support;

use std::process::Command;
use std::time::{Duration, Instant};

use sluice::destinations::{self, async_trait, Capabilities, Destination, DestinationError, RowOp, RowOutcome, Target, Writer};
use sluice::state::RunStatus;
use support::daemon::{eventually, runs};
use support::*;

/// A project whose `[alerts]` go to a second sink, so a failure alert would be seen there.
async fn alerting_env() -> (Env, Sink) {
    let env = Env::with_sink_settings(SourceKind::DuckDb, StateKind::Sqlite, "max_batch_rows = 10").await;
    let alerts = Sink::start().await;
    env.add_destination("ops", &format!("kind = \"webhook\"\nurl = \"{}\"", alerts.url));
    let path = env.root().join("sluice.toml");
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str("\n[alerts]\ndestination = \"ops\"\non = [\"failure\", \"recovery\"]\n");
    std::fs::write(path, config).unwrap();
    (env, alerts)
}

fn term(child: &std::process::Child) {
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
}

async fn exit_within(child: &mut std::process::Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "sluice did not stop within {within:?} of SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_the_scan_stops_it_at_once_and_is_no_failure() {
    let (env, alerts) = alerting_env().await;
    // A model that takes minutes to read (a billion rows; their NULL keys keep the spool empty).
    env.write_sync("big", "destination = \"hook\"\nprimary_key = \"id\"", "SELECT NULL::BIGINT AS id FROM range(1000000000) r(i)");
    let mut child = spawn_sluice(env.root(), &["run", "big"]);
    eventually(Duration::from_secs(30), "the run has started", || async { runs_of(&env, "big").await.iter().any(|s| s == "running") })
        .await;
    term(&child);
    let code = exit_within(&mut child, Duration::from_secs(15)).await;
    assert_eq!(code, Some(130), "stopped on request: 130, as for Ctrl-C");
    assert_eq!(runs_of(&env, "big").await, ["interrupted"]);
    assert_eq!(env.sink.requests(), 0, "nothing was sent");
    assert_eq!(alerts.requests(), 0, "a stop is not a failure: no alert");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_the_send_commits_what_was_answered_and_is_no_failure() {
    let (env, alerts) = alerting_env().await;
    env.exec("CREATE TABLE t AS SELECT i AS id FROM range(1, 51) r(i)").await;
    env.write_sync("k", "destination = \"hook\"\nprimary_key = \"id\"", "SELECT id FROM t");
    env.sink.slow(Duration::from_millis(300));
    let mut child = spawn_sluice(env.root(), &["run", "k"]);
    eventually(Duration::from_secs(30), "the second batch", || async { env.sink.requests() >= 2 }).await;
    term(&child);
    assert_eq!(exit_within(&mut child, Duration::from_secs(15)).await, Some(130));
    assert_eq!(runs_of(&env, "k").await, ["interrupted"]);
    assert_eq!(alerts.requests(), 0);
    // The next run is no "recovery" either: nothing had failed.
    env.sink.slow(Duration::ZERO);
    let next = env.run("k").await;
    assert_eq!(next.status, RunStatus::Success, "{next:?}");
    assert_eq!(alerts.requests(), 0, "{:?}", alerts.rows());
}

async fn runs_of(env: &Env, sync: &str) -> Vec<String> {
    runs(env, sync).await.into_iter().map(|r| r.0).collect()
}

/// A destination with a bug: its writer panics.
struct Panics;

#[async_trait]
impl Destination for Panics {
    fn capabilities(&self) -> Capabilities {
        Capabilities::every_mode(10, 1, Duration::ZERO)
    }
    async fn check(&self, _: &Target) -> Result<(), DestinationError> {
        Ok(())
    }
    async fn open(&self, _: &Target) -> Result<Box<dyn Writer>, DestinationError> {
        Ok(Box::new(Panics))
    }
}

#[async_trait]
impl Writer for Panics {
    async fn write(&mut self, _: &[RowOp]) -> Result<Vec<RowOutcome>, DestinationError> {
        panic!("index out of bounds in the test destination")
    }
}

#[tokio::test]
async fn a_panicking_run_ends_in_the_history_as_failed_with_the_message() {
    destinations::register("panics", |_, _, _| Ok(std::sync::Arc::new(Panics)));
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec("CREATE TABLE t AS SELECT i AS id FROM range(1, 4) r(i)").await;
    env.add_destination("buggy", "kind = \"panics\"");
    env.write_sync("k", "destination = \"buggy\"\nprimary_key = \"id\"", "SELECT id FROM t");
    let report = env.run("k").await;
    assert_eq!(report.status, RunStatus::Failed);
    assert!(report.error.as_deref().unwrap_or("").contains("index out of bounds in the test destination"), "{report:?}");
    let status = sluice_cli(env.root(), &["status", "k", "--json"], &[]).await;
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status --json");
    let run = &status["syncs"][0]["runs"][0];
    assert_eq!(run["status"], "failed", "{status}");
    assert!(run["error"].as_str().unwrap_or("").contains("index out of bounds in the test destination"), "{status}");
    // The sync is free again: the next run starts (and meets the same bug).
    let again = env.run("k").await;
    assert!(!again.busy && again.status == RunStatus::Failed, "{again:?}");
}
