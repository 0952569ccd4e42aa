//! The commit rule under crashes: `sluice run` on a 100,000-row model, killed at random moments
//! 20 times, then run to the end. The destination ends equal to the model, and each kill costs at
//! most the batches in flight (on the wire side by side, or answered and not yet committed:
//! `batches_in_flight`). The seed is printed; `SLUICE_CRASH_SEED=n` replays it.

use crate::support;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice::engine::batches_in_flight;
use sluice::state::RunStatus;
use support::*;

const ROWS: usize = 100_000;
const BATCH: usize = 2_000;
const KILLS: usize = 20;
/// Batches on the wire at once, at most: a kill finds several there.
const MAX_IN_FLIGHT: usize = 4;

async fn big_env() -> Env {
    let env = Env::with_sink_settings(
        SourceKind::DuckDb,
        StateKind::Sqlite,
        &format!("max_batch_rows = {BATCH}\nmax_in_flight = {MAX_IN_FLIGHT}"),
    )
    .await;
    env.exec(&format!("CREATE TABLE t AS SELECT i AS id, 'v' || i AS v FROM range(1, {}) r(i)", ROWS + 1)).await;
    env.write_sync("big", "source = \"wh\"\ndestination = \"hook\"\nprimary_key = \"id\"", "SELECT id, v FROM t");
    env
}

fn distinct(rows: &[SinkRow]) -> usize {
    rows.iter().map(|r| r.key.to_string()).collect::<HashSet<_>>().len()
}

/// Starts `sluice run big`, lets it go for a random moment, then sends `signal`; returns once
/// the process is gone.
pub(crate) async fn interrupt(env: &Env, rng: &mut fastrand::Rng, signal: &str) {
    let mut child = Command::new(sluice_bin())
        .args(["run", "big", "--project"])
        .arg(env.root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sluice");
    // The random moment (not a wait for something): anywhere in the scan or the sending.
    tokio::time::sleep(Duration::from_millis(rng.u64(100..2_500))).await;
    let _ = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("try_wait").is_none() {
        assert!(Instant::now() < deadline, "sluice did not exit after SIG{signal}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_sigkills_lose_nothing_and_resend_only_batches_in_flight() {
    let env = big_env().await;
    env.sink.slow(Duration::from_millis(15));
    let mut rng = fastrand::Rng::with_seed(support::faults::seed("SLUICE_CRASH_SEED"));
    for kill in 1..=KILLS {
        interrupt(&env, &mut rng, "KILL").await;
        let received = env.sink.rows();
        let (seen, stored) = (distinct(&received), env.committed_rows().await);
        // Everything committed was received; what was received but not committed is at most
        // the batches in flight when the process died.
        assert!(
            stored <= seen && seen - stored <= batches_in_flight(MAX_IN_FLIGHT) * BATCH,
            "kill {kill}: {seen} distinct rows received, {stored} committed"
        );
    }
    println!("after {KILLS} kills: {} rows committed, {} received", env.committed_rows().await, env.sink.rows().len());
    assert!(env.sink.most_in_flight() > 1, "the kills met several batches in flight");
    let last = env.run("big").await;
    assert_eq!(last.status, RunStatus::Success, "{:?}", last.error);
    let received = env.sink.rows();
    assert_eq!(distinct(&received), ROWS, "every row reached the destination");
    assert_eq!(env.committed_rows().await, ROWS);
    let resent = received.len() - ROWS;
    assert!(
        resent <= KILLS * batches_in_flight(MAX_IN_FLIGHT) * BATCH,
        "{resent} rows sent twice, more than the batches in flight per kill"
    );
    assert_eq!(env.run("big").await.to_send.total(), 0, "the state agrees with the destination");
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_sigterms_resend_nothing() {
    let env = big_env().await;
    env.sink.slow(Duration::from_millis(15));
    let mut rng = fastrand::Rng::with_seed(support::faults::seed("SLUICE_CRASH_SEED"));
    for stop in 1..=KILLS {
        interrupt(&env, &mut rng, "TERM").await;
        let received = env.sink.rows();
        assert_eq!(received.len(), distinct(&received), "stop {stop}: a row was sent twice");
        assert_eq!(env.committed_rows().await, received.len(), "stop {stop}: the batch in flight was committed");
    }
    let last = env.run("big").await;
    assert_eq!(last.status, RunStatus::Success, "{:?}", last.error);
    let received = env.sink.rows();
    assert_eq!((received.len(), distinct(&received)), (ROWS, ROWS), "each row exactly once");
}
