//! Several batches on the wire at once: as many as the destination takes (`max_in_flight`) and
//! no more, fewer when the receiver pushes back, and never faster than its published rate limit.
//! (A kill with several batches in flight is `crash.rs`.)

use crate::support;

use std::collections::HashSet;
use std::time::Duration;

use sluice::state::RunStatus;
use support::*;

const HEADER: &str = "source = \"wh\"\ndestination = \"hook\"\nprimary_key = \"id\"";

/// A project whose webhook takes `settings`, over a model of `rows` rows.
async fn env_with(settings: &str, rows: usize) -> Env {
    let env = Env::with_sink_settings(SourceKind::DuckDb, StateKind::Sqlite, settings).await;
    env.exec(&format!("CREATE TABLE t AS SELECT i AS id, 'v' || i AS v FROM range(1, {}) r(i)", rows + 1)).await;
    env.write_sync("s", HEADER, "SELECT id, v FROM t");
    env
}

fn landed(env: &Env) -> usize {
    env.sink.rows().iter().map(|r| r.key.to_string()).collect::<HashSet<_>>().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_overlap_up_to_the_ceiling_and_never_more() {
    for ceiling in [1, 4] {
        // 200 batches answered after 30 ms each: enough round trips to grow to any ceiling.
        let env = env_with(&format!("max_batch_rows = 20\nmax_in_flight = {ceiling}"), 4_000).await;
        env.sink.slow(Duration::from_millis(30));
        let run = env.run("s").await;
        assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
        assert_eq!(landed(&env), 4_000);
        assert_eq!(env.sink.requests(), 200, "each batch sent once");
        assert_eq!(env.sink.most_in_flight(), ceiling, "with max_in_flight = {ceiling}");
        assert_eq!(env.run("s").await.to_send.total(), 0, "every answered batch was committed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_pushes_back_gets_fewer_batches_at_once() {
    // The receiver serves two requests at once and answers 429 to a third. Sent blindly at the
    // ceiling of 8, three requests in four would be refused; backing off, fewer than one in four.
    let env = env_with("max_batch_rows = 20\nmax_in_flight = 8\nmax_attempts = 20", 4_000).await;
    env.sink.slow(Duration::from_millis(30));
    env.sink.capacity(2);
    let run = env.run("s").await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    assert_eq!(landed(&env), 4_000);
    let (refused, arrived) = (env.sink.over_capacity(), env.sink.arrivals().len());
    println!("{refused} of {arrived} requests answered 429");
    assert!(refused > 0, "the limit grew until the receiver pushed back");
    assert!(refused * 4 < arrived, "{refused} of {arrived} requests refused: the run did not back off");
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_wait_for_the_published_rate_limit() {
    // 10 requests in any 300 ms; 60 batches need at least five more windows after the first.
    let env = env_with("max_batch_rows = 10\nmax_in_flight = 8\nrate_limit = \"10/300ms\"", 600).await;
    env.sink.slow(Duration::from_millis(10));
    let started = std::time::Instant::now();
    let run = env.run("s").await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    assert_eq!(landed(&env), 600);
    assert!(started.elapsed() >= Duration::from_millis(1_500), "60 requests in {:?}", started.elapsed());
    // Arrival times wobble with scheduling: a window a little shorter than the limit's still
    // never holds more than 10 (unpaced, 8 at a time answered in 10 ms, it would hold dozens).
    let sending = run.sending.clone().expect("the report says how sending went");
    assert_eq!(sending.rate_limit.as_deref(), Some("10/300ms"));
    assert!(sending.rate_limit_used.is_some_and(|u| u > 0.3), "the run used much of what the limit allowed: {sending:?}");
    let arrivals = env.sink.arrivals();
    let window = Duration::from_millis(250);
    let busiest = arrivals.iter().map(|t| arrivals.iter().filter(|u| **u >= *t && **u - *t < window).count()).max().unwrap_or(0);
    assert!(busiest <= 10, "{busiest} requests arrived within {window:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_on_one_postgres_store_share_the_rate_limit() {
    // Two syncs to one receiver that allows 10 requests a second, run as two `sluice run`
    // processes at once: each alone would send 10 a second, so together twice the limit.
    let settings = "max_batch_rows = 10\nmax_in_flight = 4\nrate_limit = \"10/1s\"\nmax_attempts = 1";
    let env = Env::with_sink_settings(SourceKind::DuckDb, StateKind::Postgres, settings).await;
    env.exec("CREATE TABLE t AS SELECT i AS id, 'v' || i AS v FROM range(1, 401) r(i)").await;
    env.write_sync("a", HEADER, "SELECT id, v FROM t WHERE id <= 200");
    env.write_sync("b", HEADER, "SELECT id, v FROM t WHERE id > 200");
    env.sink.slow(Duration::from_millis(20));
    // A window a little shorter than the limit's absorbs the wobble of arrival times; a 429
    // fails the run (one attempt).
    env.sink.rate_limit(10, Duration::from_millis(900));
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(sluice_cli(env.root(), &["run", "a"], &[]), sluice_cli(env.root(), &["run", "b"], &[]));
    for (name, out) in [("a", &a), ("b", &b)] {
        assert!(
            out.status.success(),
            "sluice run {name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(env.sink.refused(), 0, "together the two processes went over the limit");
    assert_eq!(landed(&env), 400);
    // 40 requests at 10 a second: the first 10 at once, then three more windows.
    assert!(started.elapsed() >= Duration::from_secs(3), "40 requests in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn hubspot_and_salesforce_batches_go_side_by_side_within_their_ceilings() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec(
        "CREATE TABLE people AS SELECT 'c' || i AS id, 'p' || i || '@example.com' AS email, 'Name ' || i AS name FROM range(1, 3001) r(i)",
    )
    .await;
    let latency = || Some(support::faults::Latency::new(Duration::from_millis(40), Duration::ZERO, 1));
    let hs = support::hubspot::HubSpot::start().await;
    hs.with(|s| s.latency = latency());
    env.add_destination("crm", &hs.destination_toml("max_in_flight = 3"));
    env.write_sync(
        "contacts",
        "destination = \"crm\"\nprimary_key = \"id\"\n[target]\nobject = \"contacts\"\nid_property = \"customer_id\"\n\
         [mapping]\ncustomer_id = \"id\"\nemail = \"email\"\nfirstname = \"name\"",
        "SELECT * FROM people",
    );
    let sf = support::salesforce::Salesforce::start().await;
    sf.with(|s| s.latency = latency());
    env.add_destination("sf", &sf.destination_toml(env.root(), "max_in_flight = 3"));
    env.write_sync(
        "accounts",
        "destination = \"sf\"\nprimary_key = \"id\"\n[target]\nobject = \"Contact\"\nexternal_id = \"Customer_Id__c\"\n\
         [mapping]\nCustomer_Id__c = \"id\"\nEmail = \"email\"\nLastName = \"name\"",
        "SELECT * FROM people",
    );
    for (sync, served) in [("contacts", hs.in_flight.clone()), ("accounts", sf.in_flight.clone())] {
        let run = env.run(sync).await;
        assert_eq!(run.status, RunStatus::Success, "{sync}: {:?}", run.error);
        assert_eq!(run.written, 3_000, "{sync}");
        let sending = run.sending.expect("the report says how sending went");
        assert_eq!((sending.max_in_flight, served.most()), (3, 3), "{sync}: up to the ceiling of 3 side by side, never more");
    }
    assert_eq!(hs.records("contacts").len(), 3_000);
}
