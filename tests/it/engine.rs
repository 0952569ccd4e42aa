//! The sync semantics, against real DuckDB and real Postgres sources, with the state store in
//! SQLite and in Postgres: every scenario runs over the whole matrix.

use crate::support;

use serde_json::json;
use sluice::engine::RunOptions;
use sluice::state::RunStatus;
use support::*;

const HEADER: &str = "source = \"wh\"\ndestination = \"hook\"\nprimary_key = \"id\"\nmode = \"MODE\"\n[mapping]\nemail = \"email\"\nname = \"name\"\nscore = \"score\"";
const MODEL: &str = "SELECT id, email, name, score, note FROM customers";

fn header(mode: &str) -> String {
    HEADER.replace("MODE", mode)
}

/// `customers` with ids 1..=n (no key constraint, so tests can add duplicates and NULLs).
async fn seed(env: &Env, n: i64) {
    let values: Vec<String> = (1..=n).map(|i| format!("({i}, 'user{i}@x.com', 'User {i}', {i}.25, 'note')")).collect();
    env.exec(&format!(
        "CREATE TABLE customers (id INTEGER, email TEXT, name TEXT, score DECIMAL(10,2), note TEXT); INSERT INTO customers VALUES {};",
        values.join(", ")
    ))
    .await;
}

fn ids(rows: &[SinkRow]) -> Vec<i64> {
    let mut ids: Vec<i64> = rows.iter().map(|r| r.key["id"].as_i64().expect("integer id")).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn upsert_sends_everything_once_then_only_changes() {
    for (source, state) in MATRIX {
        let env = Env::new(source, state).await;
        let ctx = format!("{source:?}/{state:?}");
        seed(&env, 20).await;
        env.write_sync("c", &header("upsert"), MODEL);

        let first = env.run("c").await;
        assert_eq!(first.status, RunStatus::Success, "{ctx}: {:?}", first.error);
        let rows = env.sink.take();
        assert_eq!(ids(&rows), (1..=20).collect::<Vec<_>>(), "{ctx}: first run sends all");
        assert!(rows.iter().all(|r| r.op == "upsert"));
        let r5 = rows.iter().find(|r| r.key == json!({"id": 5})).unwrap();
        assert_eq!(r5.fields, json!({"email": "user5@x.com", "name": "User 5", "score": 5.25}), "{ctx}");

        let second = env.run("c").await;
        assert_eq!((second.counts.unchanged, second.to_send.total()), (20, 0), "{ctx}");
        assert!(env.sink.take().is_empty(), "{ctx}: second run sends nothing");

        env.exec("UPDATE customers SET email = 'new' || id || '@x.com' WHERE id IN (2, 7, 19)").await;
        let third = env.run("c").await;
        assert_eq!(third.counts.changed, 3, "{ctx}");
        assert_eq!(ids(&env.sink.take()), vec![2, 7, 19], "{ctx}: exactly the 3 changed rows");

        env.exec("UPDATE customers SET note = 'edited' WHERE id <= 5").await;
        let unmapped = env.run("c").await;
        assert_eq!(unmapped.to_send.total(), 0, "{ctx}: an unmapped column change sends nothing");
        assert!(env.sink.take().is_empty());

        env.exec("DELETE FROM customers WHERE id IN (3, 4)").await;
        let removed = env.run("c").await;
        assert_eq!((removed.counts.removed, removed.to_send.delete), (2, 0), "{ctx}: upsert never deletes");
        assert!(env.sink.take().is_empty());
    }
}

#[tokio::test]
async fn mirror_deletes_rows_that_left_the_model() {
    for (source, state) in MATRIX {
        let env = Env::new(source, state).await;
        let ctx = format!("{source:?}/{state:?}");
        seed(&env, 10).await;
        env.write_sync("m", &header("mirror"), MODEL);
        env.run("m").await;
        assert_eq!(env.sink.take().len(), 10, "{ctx}");

        env.exec("DELETE FROM customers WHERE id IN (3, 8)").await;
        let plan = env.plan("m").await;
        assert_eq!(plan.to_send.delete, 2, "{ctx}: plan shows the deletes");
        assert!(env.sink.take().is_empty(), "{ctx}: plan sends nothing");
        let run = env.run("m").await;
        assert_eq!(run.status, RunStatus::Success, "{ctx}: {:?}", run.error);
        let rows = env.sink.take();
        assert_eq!(ids(&rows), vec![3, 8], "{ctx}");
        assert!(rows.iter().all(|r| r.op == "delete" && r.fields == json!({})), "{ctx}: {rows:?}");

        assert!(env.run("m").await.to_send.total() == 0, "{ctx}: deletes are not repeated");
    }
}

#[tokio::test]
async fn insert_mode_sends_only_new_keys() {
    for (source, state) in MATRIX {
        let env = Env::new(source, state).await;
        let ctx = format!("{source:?}/{state:?}");
        seed(&env, 5).await;
        env.write_sync("i", &header("insert"), MODEL);
        env.run("i").await;
        assert_eq!(ids(&env.sink.take()), vec![1, 2, 3, 4, 5], "{ctx}");

        env.exec(
            "UPDATE customers SET email = 'changed@x.com' WHERE id = 1; INSERT INTO customers VALUES (6, 'six@x.com', 'Six', 6, 'n');",
        )
        .await;
        let run = env.run("i").await;
        let rows = env.sink.take();
        assert_eq!(ids(&rows), vec![6], "{ctx}: only the new key");
        assert_eq!(rows[0].op, "insert");
        assert_eq!(run.counts.changed, 1, "{ctx}: the change is seen but not sent");
    }
}

#[tokio::test]
async fn rejected_rows_are_held_until_they_change_or_are_retried() {
    for (source, state) in MATRIX {
        let env = Env::new(source, state).await;
        let ctx = format!("{source:?}/{state:?}");
        seed(&env, 6).await;
        env.write_sync("r", &header("upsert"), MODEL);
        env.sink.reject(json!({"id": 4}));

        let first = env.run("r").await;
        assert_eq!((first.status, first.written, first.rejected), (RunStatus::Partial, 5, 1), "{ctx}");
        assert!(first.warnings.iter().any(|w| w.contains("id=4") && w.contains("email is not valid")), "{ctx}: {:?}", first.warnings);

        let project = sluice::project::Project::load(env.root()).unwrap();
        let engine = sluice::engine::Engine::open(&project).await.unwrap();
        assert_eq!(engine.store.error_counts("r").await.unwrap(), (1, 0), "{ctx}");
        let errors = engine.store.row_errors("r", 10).await.unwrap();
        assert_eq!(errors[0].key, json!({"id": 4}), "{ctx}");
        assert_eq!((errors[0].attempts, errors[0].message.as_str()), (1, "email is not valid"));
        engine.store.close().await;
        env.sink.take();

        // Unchanged, it is not sent again: the destination would refuse it again.
        let second = env.run("r").await;
        assert_eq!((second.status, second.to_send.upsert, second.held), (RunStatus::Partial, 0, 1), "{ctx}");
        assert!(second.warnings.iter().any(|w| w.contains("held back") && w.contains("sluice retry r")), "{ctx}: {:?}", second.warnings);
        assert_eq!(env.sink.requests(), 0, "{ctx}");

        // Changed, it is sent (and refused) again.
        env.exec("UPDATE customers SET email = 'fixed@x.com' WHERE id = 4").await;
        let third = env.run("r").await;
        assert_eq!((third.to_send.upsert, third.rejected), (1, 1), "{ctx}");

        // `sluice retry`: sent now, though unchanged.
        env.sink.clear_rejects();
        env.sink.take();
        let retried = env.run_with("r", sluice::engine::RunOptions { retry_rejected: true, ..Default::default() }).await;
        assert_eq!((retried.status, retried.written), (RunStatus::Success, 1), "{ctx}");
        assert_eq!(ids(&env.sink.take()), vec![4], "{ctx}");
        let engine = sluice::engine::Engine::open(&project).await.unwrap();
        assert_eq!(engine.store.error_counts("r").await.unwrap(), (0, 0), "{ctx}: written rows leave the error list");
        engine.store.close().await;
    }
}

#[tokio::test]
async fn a_mapping_change_resends_every_row() {
    for (source, state) in MATRIX {
        let env = Env::new(source, state).await;
        let ctx = format!("{source:?}/{state:?}");
        seed(&env, 8).await;
        env.write_sync("c", &header("upsert"), MODEL);
        env.run("c").await;
        env.sink.take();

        env.write_sync("c", &header("upsert").replace("email = \"email\"", "\"E-mail\" = \"email\""), MODEL);
        let plan = env.plan("c").await;
        assert!(plan.config_changed, "{ctx}: plan says the definition changed");
        assert!(plan.warnings.iter().any(|w| w.contains("every row is re-sent")), "{ctx}");
        let run = env.run("c").await;
        assert_eq!(run.to_send.upsert, 8, "{ctx}");
        let rows = env.sink.take();
        assert_eq!(rows.len(), 8);
        assert!(rows.iter().all(|r| r.fields.get("E-mail").is_some()), "{ctx}: new field name sent");
        assert_eq!(env.run("c").await.to_send.total(), 0, "{ctx}: and then nothing again");
    }
}

#[tokio::test]
async fn duplicate_keys_fail_the_run_before_anything_is_sent() {
    for (source, state) in MATRIX {
        let env = Env::new(source, state).await;
        let ctx = format!("{source:?}/{state:?}");
        seed(&env, 5).await;
        env.exec("INSERT INTO customers VALUES (2, 'dup@x.com', 'Dup', 1, 'n'), (5, 'dup5@x.com', 'Dup', 1, 'n')").await;
        env.write_sync("d", &header("upsert"), MODEL);
        let run = env.run("d").await;
        assert_eq!(run.status, RunStatus::Failed, "{ctx}");
        let error = run.error.unwrap();
        assert!(error.contains("2 duplicate primary key") && error.contains("(id=2)") && error.contains("(id=5)"), "{ctx}: {error}");
        assert_eq!(env.sink.requests(), 0, "{ctx}: nothing sent");
    }
}

#[tokio::test]
async fn a_null_key_rejects_that_row_only() {
    for (source, state) in MATRIX {
        let env = Env::new(source, state).await;
        let ctx = format!("{source:?}/{state:?}");
        seed(&env, 4).await;
        env.exec("INSERT INTO customers VALUES (NULL, 'nokey@x.com', 'No key', 1, 'n')").await;
        env.write_sync("n", &header("upsert"), MODEL);
        let run = env.run("n").await;
        assert_eq!((run.status, run.written, run.null_keys), (RunStatus::Partial, 4, 1), "{ctx}");
        assert!(run.warnings.iter().any(|w| w.contains("NULL in primary key column `id`")), "{ctx}: {:?}", run.warnings);
        assert_eq!(ids(&env.sink.take()), vec![1, 2, 3, 4]);
    }
}

#[tokio::test]
async fn transient_failures_are_retried_within_the_run() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    seed(&env, 3).await;
    env.write_sync("t", &header("upsert"), MODEL);
    env.sink.fail_next(503, None);
    env.sink.fail_next(429, Some("0"));
    let run = env.run("t").await;
    assert_eq!((run.status, run.written), (RunStatus::Success, 3), "{:?}", run.error);
    assert_eq!(ids(&env.sink.take()), vec![1, 2, 3]);
}

#[tokio::test]
async fn a_destination_that_keeps_failing_leaves_rows_pending() {
    let env = Env::with_sink_settings(SourceKind::DuckDb, StateKind::Sqlite, "max_attempts = 2").await;
    seed(&env, 3).await;
    env.write_sync("t", &header("upsert"), MODEL);
    env.sink.fail_next(503, None);
    env.sink.fail_next(503, None);
    let run = env.run("t").await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap();
    assert!(error.contains("503") && error.contains("gave up after 2 attempts"), "{error}");
    assert!(!error.contains("/hook"), "errors show the host, not the full URL: {error}");
    // Next run: the rows are still to be sent, and are.
    let again = env.run("t").await;
    assert_eq!((again.status, again.written), (RunStatus::Success, 3), "{:?}", again.error);
}

#[tokio::test]
async fn batches_respect_the_destination_limit_and_ids_come_back() {
    let env = Env::with_sink_settings(SourceKind::DuckDb, StateKind::Sqlite, "max_batch_rows = 4").await;
    seed(&env, 10).await;
    env.write_sync("b", &header("upsert"), MODEL);
    env.sink.always_results();
    let run = env.run("b").await;
    assert_eq!(run.batches, 3);
    assert_eq!(env.sink.batches().iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 2]);
    env.sink.take();
    env.exec("UPDATE customers SET name = 'Renamed' WHERE id = 9").await;
    env.run("b").await;
    let rows = env.sink.take();
    assert_eq!(rows[0].destination_id.as_deref(), Some("rec-{\"id\":9}"), "the stored record id is sent back");
}

#[tokio::test]
async fn full_resync_and_reset_send_everything_again() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    seed(&env, 4).await;
    env.write_sync("f", &header("upsert"), MODEL);
    env.run("f").await;
    env.sink.take();
    let full = env.run_with("f", RunOptions { full_resync: true, ..Default::default() }).await;
    assert_eq!((full.counts.changed, full.written), (4, 4));
    assert_eq!(env.sink.take().len(), 4);

    let project = sluice::project::Project::load(env.root()).unwrap();
    let engine = sluice::engine::Engine::open(&project).await.unwrap();
    assert_eq!(engine.store.reset("f").await.unwrap(), 4);
    engine.store.close().await;
    let after = env.run("f").await;
    assert_eq!(after.counts.added, 4);
}

#[tokio::test]
async fn webhook_requests_carry_headers_and_a_verifiable_signature() {
    use hmac::{Hmac, Mac};
    std::env::set_var("SLUICE_TEST_HOOK_TOKEN", "t0ken");
    let env = Env::with_sink_settings(
        SourceKind::DuckDb,
        StateKind::Sqlite,
        "signing_secret = \"s3cret\"\n[destinations.hook.headers]\nAuthorization = \"Bearer ${SLUICE_TEST_HOOK_TOKEN}\"",
    )
    .await;
    seed(&env, 2).await;
    env.write_sync("s", &header("upsert"), MODEL);
    let run = env.run("s").await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    let headers = env.sink.headers();
    assert_eq!(headers[0]["authorization"], "Bearer t0ken");
    let signature = headers[0]["x-sluice-signature"].to_str().unwrap().to_string();
    // Recomputed over the exact bytes the sink received, as a receiver verifies it.
    let body = &env.sink.bodies()[0];
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(body);
    assert_eq!(signature, format!("sha256={}", hex::encode(mac.finalize().into_bytes())));
}

#[tokio::test]
async fn an_unsupported_postgres_type_names_the_column_and_a_cast() {
    let env = Env::new(SourceKind::Postgres, StateKind::Sqlite).await;
    env.exec("CREATE TABLE spans (id INTEGER, took INTERVAL); INSERT INTO spans VALUES (1, '5 minutes')").await;
    env.write_sync("u", "source = \"wh\"\ndestination = \"hook\"\nprimary_key = \"id\"", "SELECT id, took FROM spans");
    let run = env.run("u").await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap();
    assert!(error.contains("column `took` has type INTERVAL") && error.contains("took::text"), "{error}");
}

#[tokio::test]
async fn errors_of_rows_that_left_the_model_are_forgotten() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    seed(&env, 3).await;
    env.write_sync("g", &header("upsert"), MODEL);
    env.sink.reject(json!({"id": 2}));
    assert_eq!(env.run("g").await.rejected, 1);
    env.exec("DELETE FROM customers WHERE id = 2").await;
    env.run("g").await;
    let project = sluice::project::Project::load(env.root()).unwrap();
    let engine = sluice::engine::Engine::open(&project).await.unwrap();
    assert_eq!(engine.store.error_counts("g").await.unwrap(), (0, 0));
    engine.store.close().await;
}

/// A column of the untyped NULL (DuckDB's SQLNULL: `NULL AS x`, or a JSON field that is null in
/// every line) is read as NULLs. It once panicked DuckDB's reader thread, and the run ended
/// "successfully" with the rows read so far.
#[tokio::test(flavor = "multi_thread")]
async fn a_column_that_is_null_in_every_row_is_read_as_nulls() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.write_sync(
        "nulls",
        "source = \"wh\"\ndestination = \"hook\"\nprimary_key = \"id\"",
        "SELECT i AS id, NULL AS x FROM range(1, 4) r(i)",
    );
    let report = env.run("nulls").await;
    assert_eq!((report.status, report.rows_read, report.written), (sluice::state::RunStatus::Success, 3, 3), "{:?}", report.error);
}
