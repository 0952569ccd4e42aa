//! Killing `sluice run` mid-way loses nothing: state only records batches the destination
//! accepted, so the next run re-sends only the batches that were in flight.

use crate::support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice::state::RunStatus;
use support::*;

const HEADER: &str = "source = \"wh\"\ndestination = \"hook\"\nprimary_key = \"id\"\nmode = \"upsert\"";

/// `rows` rows in batches of 10, at most `in_flight` of them on the wire at once.
async fn seeded_env(rows: usize, in_flight: usize) -> Env {
    let settings = format!("max_batch_rows = 10\nmax_in_flight = {in_flight}");
    let env = Env::with_sink_settings(SourceKind::DuckDb, StateKind::Sqlite, &settings).await;
    env.exec(&format!("CREATE TABLE t AS SELECT i AS id, 'v' || i AS v FROM range(1, {}) r(i)", rows + 1)).await;
    env.write_sync("k", HEADER, "SELECT id, v FROM t");
    env
}

fn spawn_run(env: &Env) -> Child {
    Command::new(sluice_bin())
        .args(["--project"])
        .arg(env.root())
        .args(["run", "k"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sluice")
}

/// Polls `cond` until it holds or the deadline passes.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn distinct_ids(rows: &[SinkRow]) -> usize {
    rows.iter().map(|r| r.key.to_string()).collect::<std::collections::HashSet<_>>().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_batch_resends_only_the_batch_in_flight() {
    // One batch at a time, so which batches were answered is known exactly (crash.rs kills runs
    // with several on the wire).
    let env = seeded_env(50, 1).await;
    env.sink.hold_from(2); // the third batch never gets an answer
    let mut child = spawn_run(&env);
    let sink = env.sink.clone();
    wait_for("the third batch to arrive", || sink.requests() >= 3).await;
    // The two answered batches are committed while the third is on the wire.
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.committed_rows().await < 20 {
        assert!(Instant::now() < deadline, "the two answered batches were never committed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    env.sink.release();

    let before = env.sink.take();
    assert_eq!(before.len(), 30, "two answered batches and the held one arrived");
    let run = env.run("k").await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    let after = env.sink.take();
    assert_eq!(after.len(), 30, "only the unanswered batch and the unsent ones are sent again");
    let mut all = before.clone();
    all.extend(after);
    assert_eq!(distinct_ids(&all), 50, "every row reached the destination");
    assert_eq!(env.run("k").await.to_send.total(), 0, "and the state agrees");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_the_batches_in_flight_and_resends_nothing() {
    for (rows, in_flight) in [(50, 1), (400, 4)] {
        let env = seeded_env(rows, in_flight).await;
        env.sink.slow(Duration::from_millis(300));
        let mut child = spawn_run(&env);
        let sink = env.sink.clone();
        wait_for("the second batch to arrive", || sink.requests() >= 2).await;
        // SIGTERM through the same path systemd uses.
        let pid = child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "sluice did not stop after SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(status.code(), Some(130), "a run stopped on request: 130, as for Ctrl-C (not 1: nothing failed)");
        env.sink.slow(Duration::ZERO);
        let before = env.sink.take();
        assert!(before.len() < rows, "max_in_flight = {in_flight}: the run stopped early");
        let run = env.run("k").await;
        assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
        let after = env.sink.take();
        assert_eq!(
            before.len() + after.len(),
            rows,
            "max_in_flight = {in_flight}: nothing sent twice: the batches in flight were committed"
        );
        let mut all = before;
        all.extend(after);
        assert_eq!(distinct_ids(&all), rows);
    }
}
