//! The send phase commits each answered batch while the next one is on the wire. A commit that
//! fails stops the run within the batches in flight, and the next run sends exactly the rows the
//! store could not record.

use crate::support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sluice::engine::batches_in_flight;
use sluice::state::RunStatus;
use support::*;

const HEADER: &str = "source = \"wh\"\ndestination = \"hook\"\nprimary_key = \"id\"\nmode = \"upsert\"";

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_commit_stops_the_run_and_the_next_run_sends_what_was_not_recorded() {
    let env = Env::with_sink_settings(SourceKind::DuckDb, StateKind::Postgres, "max_batch_rows = 10\nmax_in_flight = 1").await;
    env.exec("CREATE TABLE t AS SELECT i AS id, 'v' || i AS v FROM range(1, 201) r(i)").await;
    env.write_sync("p", HEADER, "SELECT id, v FROM t");
    let state = env.pg_state.as_ref().expect("a Postgres state store");
    env.sink.hold_from(2); // the third batch waits for an answer
    let breaker = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while env.sink.requests() < 3 {
            assert!(Instant::now() < deadline, "the third batch never arrived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The second batch was answered, but its commit runs beside the sender: wait for it, so
        // the store holds exactly the first two batches when it breaks.
        let staged = format!("SELECT COUNT(*) FROM {}.sync_rows_staged", state.name);
        while sqlx::query_scalar::<_, i64>(&staged).fetch_one(&state.pool).await.expect("count staged rows") < 20 {
            assert!(Instant::now() < deadline, "the first two batches were never committed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The store loses the table commits append to: every commit from here on fails.
        state.exec("ALTER TABLE sync_rows_staged RENAME TO staged_elsewhere").await;
        env.sink.release();
    };
    let (failed, ()) = tokio::join!(env.run("p"), breaker);
    assert_eq!(failed.status, RunStatus::Failed, "{failed:?}");
    let error = failed.error.clone().unwrap_or_default();
    assert!(error.contains("state store"), "the run names the state store: {error}");
    let requests = env.sink.requests();
    assert!(requests <= 3 + batches_in_flight(1), "the run went on sending after the failed commit: {requests} requests");
    assert!(failed.written >= 20, "the first two batches were written: {failed:?}");

    state.exec("ALTER TABLE staged_elsewhere RENAME TO sync_rows_staged").await;
    env.sink.take();
    let run = env.run("p").await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    let resent: HashSet<String> = env.sink.take().iter().map(|r| r.key.to_string()).collect();
    // The two batches committed before the failure are not sent again; everything else is.
    assert_eq!(resent.len(), 180, "{} rows sent by the second run", resent.len());
    for id in 1..=20 {
        assert!(!resent.contains(&serde_json::json!({ "id": id }).to_string()), "row {id} was committed and sent again");
    }
    assert_eq!(env.run("p").await.to_send.total(), 0, "the state agrees with the destination");
}
