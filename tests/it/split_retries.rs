//! Split retries: a destination that refuses a whole batch for one bad row (a webhook's 400, a
//! HubSpot batch create) gets the batch again in halves until the bad row stands alone. The
//! rest is written; the bad row is rejected with the destination's own words; the number of
//! extra requests stays within 2 x the batch size.

use crate::support;

use serde_json::json;
use sluice::state::RunStatus;
use support::{Env, SourceKind, StateKind};

#[tokio::test]
async fn a_400_for_a_500_row_batch_ends_with_499_written_and_1_rejected() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec("CREATE TABLE people AS SELECT i AS id, 'p' || i || '@x.com' AS email FROM range(1, 501) t(i)").await;
    env.write_sync("people", "primary_key = \"id\"", "SELECT id, email FROM people");
    env.sink.refuse_batches_with(json!({"id": 137}));

    let report = env.run("people").await;
    assert_eq!((report.status, report.written, report.rejected), (RunStatus::Partial, 499, 1), "{:?}", report.error);
    assert!(
        report.warnings.iter().any(|w| w.starts_with("row (id=137) rejected: HTTP 400 Bad Request:") && w.contains("invalid email")),
        "{:?}",
        report.warnings
    );
    let mut written: Vec<i64> = env.sink.rows().iter().map(|r| r.key["id"].as_i64().unwrap()).collect();
    written.sort();
    assert_eq!(written, (1..=500).filter(|&i| i != 137).collect::<Vec<_>>(), "every good row once, the bad one never");
    let requests = env.sink.requests();
    assert!(requests <= 1 + 2 * 500, "{requests} requests");
    // Halving 500 rows down to one takes 9 levels of 2 requests: far under the bound.
    assert!(requests <= 1 + 2 * 9 + 3, "{requests} requests: the split should be logarithmic");

    let again = env.run("people").await;
    assert_eq!((again.written, again.held), (0, 1), "the rejected row is held until it changes");
}

#[tokio::test]
async fn several_bad_rows_are_each_rejected_alone() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec("CREATE TABLE people AS SELECT i AS id, 'p' || i || '@x.com' AS email FROM range(1, 65) t(i)").await;
    env.write_sync("people", "primary_key = \"id\"", "SELECT id, email FROM people");
    for bad in [3, 4, 40] {
        env.sink.refuse_batches_with(json!({ "id": bad }));
    }
    let report = env.run("people").await;
    assert_eq!((report.written, report.rejected), (61, 3), "{:?}", report.warnings);
    assert!(env.sink.requests() <= 1 + 2 * 64);
}

#[tokio::test]
async fn a_batch_refused_whatever_its_rows_stops_splitting_after_a_few_single_rows() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec("CREATE TABLE people AS SELECT i AS id, 'p' || i || '@x.com' AS email FROM range(1, 501) t(i)").await;
    env.write_sync("people", "primary_key = \"id\"", "SELECT id, email FROM people");
    for id in 1..=500 {
        env.sink.refuse_batches_with(json!({ "id": id }));
    }
    let report = env.run("people").await;
    // The probed rows were refused alone: rejected. The rest is not proven bad: it waits.
    assert_eq!((report.written, report.rejected, report.retryable), (0, 8, 492));
    let requests = env.sink.requests();
    // Three levels of halves (1 + 2 + 4 + 8 requests) and one row of each of 8 groups: 23, not 1,000.
    assert!(requests <= 25, "{requests} requests for a batch no row of which could pass");
    assert!(report.warnings.iter().any(|w| w.contains("the request, not the rows, looks at fault")), "{:?}", report.warnings);
}
