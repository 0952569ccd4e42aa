//! A destination written in Rust outside the crate: examples/custom_destination.rs, registered
//! under its own kind with `sluice::destinations::register`, syncing to the records API emulator.

use crate::support;

#[path = "../../examples/custom_destination.rs"]
mod example;

use serde_json::json;
use support::records_api::{RecordsApi, TOKEN};
use support::{Env, SourceKind, StateKind};

#[tokio::test]
async fn the_rust_example_registers_its_kind_and_keeps_the_api_equal_to_the_model() {
    example::register();
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    let api = RecordsApi::start().await;
    env.add_destination("records", &format!("kind = \"records_api\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"", api.url));
    env.exec("CREATE TABLE people AS SELECT i AS id, 'p' || i || '@x.com' AS email FROM range(1, 6) t(i)").await;
    env.write_sync("people", "destination = \"records\"\nprimary_key = \"id\"\nmode = \"mirror\"", "SELECT id, email FROM people");
    api.with(|s| {
        s.refuse.insert("3".into());
        s.fail_next.push_back(503);
    });
    let report = env.run("people").await;
    // The 503 leaves its row for the next run; the 422 is a data problem, held.
    assert_eq!((report.written, report.rejected, report.retryable), (3, 1, 1), "{:?} {:?}", report.error, report.warnings);
    assert!(report.warnings.iter().any(|w| w.contains("(id=3) rejected: HTTP 422")), "{:?}", report.warnings);
    let records = api.records();
    assert_eq!(records.keys().map(String::as_str).collect::<Vec<_>>(), ["2", "4", "5"]);
    assert_eq!(records["4"], json!({"id": 4, "email": "p4@x.com"}));

    env.exec("DELETE FROM people WHERE id = 5").await;
    assert_eq!(env.run("people").await.written, 2, "the pending row and the delete");
    assert_eq!(api.records().keys().map(String::as_str).collect::<Vec<_>>(), ["1", "2", "4"]);

    // A kind nobody registered: the registered ones are suggested.
    let spec = sluice::project::DestinationSpec { kind: "records_apj".into(), settings: Default::default() };
    let error = sluice::destinations::build("typo", &spec, env.root()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("unknown kind `records_apj` (did you mean `records_api`?)"), "{error}");
}
