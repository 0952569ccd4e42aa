//! A destination that fails a fifth of its requests, in every way: the run still ends with the
//! destination equal to the model.

use crate::support;

use std::collections::HashSet;

use sluice::state::RunStatus;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn twenty_percent_faults_still_end_with_the_destination_equal_to_the_model() {
    let env =
        Env::with_sink_settings(SourceKind::DuckDb, StateKind::Sqlite, "max_batch_rows = 50\nmax_attempts = 12\ntimeout = \"1s\"").await;
    env.exec("CREATE TABLE t AS SELECT i AS id, 'v' || i AS v FROM range(1, 2001) r(i)").await;
    env.write_sync("f", "source = \"wh\"\ndestination = \"hook\"\nprimary_key = \"id\"\nmode = \"mirror\"", "SELECT id, v FROM t");
    let seed = support::faults::seed("SLUICE_FAULT_SEED");
    env.sink.fault_rate(0.2, seed);
    let first = env.run("f").await;
    assert_eq!((first.status, first.written), (RunStatus::Success, 2000), "seed {seed}: {:?}", first.error);
    assert!(env.sink.faults_injected() >= 4, "faults were injected: {}", env.sink.faults_injected());
    let keys: HashSet<String> = env.sink.rows().iter().map(|r| r.key.to_string()).collect();
    assert_eq!(keys.len(), 2000, "seed {seed}: every row landed");

    // Changes and removals through the same faults.
    env.exec("UPDATE t SET v = 'new' WHERE id % 10 = 0; DELETE FROM t WHERE id > 1900").await;
    env.sink.take();
    let second = env.run("f").await;
    assert_eq!((second.status, second.written), (RunStatus::Success, 290), "seed {seed}: {:?}", second.error);
    let sent = env.sink.take();
    let deleted: HashSet<String> = sent.iter().filter(|r| r.op == "delete").map(|r| r.key.to_string()).collect();
    let changed: HashSet<String> = sent.iter().filter(|r| r.op == "upsert").map(|r| r.key.to_string()).collect();
    assert_eq!((deleted.len(), changed.len()), (100, 190), "seed {seed}");
    assert_eq!(env.run("f").await.to_send.total(), 0, "the state agrees");
}
