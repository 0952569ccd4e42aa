//! The command destination: a destination written as a program in any language. The two
//! documented examples (examples/command/) run against a records API; a small Python program
//! breaks the protocol on purpose: its unanswered rows must stay pending, never be written.

use crate::support;

use serde_json::json;
use sluice::state::RunStatus;
use support::records_api::{RecordsApi, TOKEN};
use support::{Env, SourceKind, StateKind};

fn toml_list(items: &[&str]) -> String {
    format!("[{}]", items.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", "))
}

async fn project(command: &[&str], extra: &str) -> (Env, RecordsApi) {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    let api = RecordsApi::start().await;
    env.add_destination(
        "records",
        &format!(
            "kind = \"command\"\ncommand = {}\nretry_initial_delay = \"10ms\"\n{extra}\n\
             env = {{ RECORDS_URL = \"{}\", RECORDS_TOKEN = \"{TOKEN}\" }}",
            toml_list(command),
            api.url
        ),
    );
    env.exec("CREATE TABLE people AS SELECT i AS id, 'p' || i || '@x.com' AS email, i + 0.25 AS score FROM range(1, 6) t(i)").await;
    env.write_sync("people", "destination = \"records\"\nprimary_key = \"id\"\nmode = \"mirror\"", "SELECT id, email, score FROM people");
    (env, api)
}

async fn stored_ids(env: &Env) -> Vec<Option<String>> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", env.root().join(".sluice/state.db").display())).await.unwrap();
    let ids = sqlx::query_scalar("SELECT destination_id FROM sync_rows ORDER BY key_json").fetch_all(&pool).await.unwrap();
    pool.close().await;
    ids
}

/// What both examples must do: upsert with ids stored, report a refusal with the API's words,
/// leave a row the API could not take now (503) for the next run, update a changed row,
/// delete a removed one.
async fn example_keeps_the_api_equal_to_the_model(command: &[&str]) {
    let (env, api) = project(command, "").await;
    api.with(|s| {
        s.refuse.insert("3".into());
        s.fail_next.push_back(503);
    });
    let report = env.run("people").await;
    assert_eq!((report.written, report.rejected, report.retryable), (3, 1, 1), "{:?}", report.warnings);
    let warned = |needle: &str| report.warnings.iter().any(|w| w.contains(needle));
    assert!(warned("(id=3) rejected: HTTP 422") && warned("email is not valid"), "{:?}", report.warnings);
    assert!(warned("(id=1) not written, will retry next run: HTTP 503"), "{:?}", report.warnings);
    let records = api.records();
    assert_eq!(records.keys().map(String::as_str).collect::<Vec<_>>(), ["2", "4", "5"]);
    assert_eq!(records["2"], json!({"id": 2, "email": "p2@x.com", "score": 2.25}));
    assert_eq!(stored_ids(&env).await, ["rec-2", "rec-4", "rec-5"].map(|s| Some(s.to_string())));

    env.exec("UPDATE people SET score = 0.5 WHERE id = 1; DELETE FROM people WHERE id = 5").await;
    let report = env.run("people").await;
    assert_eq!((report.written, report.held), (2, 1), "the pending row and a delete; the refused row is held: {:?}", report.warnings);
    let records = api.records();
    assert_eq!(records.keys().map(String::as_str).collect::<Vec<_>>(), ["1", "2", "4"]);
    assert_eq!(records["1"]["score"], json!(0.5));
}

#[tokio::test]
async fn the_python_example_keeps_the_api_equal_to_the_model() {
    let script = format!("{}/examples/command/records_api.py", env!("CARGO_MANIFEST_DIR"));
    example_keeps_the_api_equal_to_the_model(&["python3", &script]).await;
}

#[tokio::test]
async fn the_shell_example_keeps_the_api_equal_to_the_model() {
    let script = format!("{}/examples/command/records_api.sh", env!("CARGO_MANIFEST_DIR"));
    example_keeps_the_api_equal_to_the_model(&["sh", &script]).await;
}

/// Answers every row, except that the row with id 3 meets `$FAULT`. Logs each start.
const FAULTY: &str = r#"
import json, os, sys, time
open("starts.log", "a").write("started\n")
fault = os.environ.get("FAULT", "none")
for line in sys.stdin:
    row = json.loads(line)
    if row["key"]["id"] == 3:
        if fault == "crash":
            sys.exit(3)
        if fault == "garbage":
            print("this is not a result", flush=True)
            continue
        if fault == "hang":
            time.sleep(30)
        if fault == "skip":
            continue
    print(json.dumps({"key": row["key"], "ok": True}), flush=True)
"#;

async fn faulty(fault: &str, extra: &str) -> Env {
    let (env, _api) = project(&["python3", "faulty.py"], &format!("{extra}\nmax_attempts = 2")).await;
    std::fs::write(env.root().join("faulty.py"), FAULTY).unwrap();
    let config = env.root().join("sluice.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("RECORDS_TOKEN", &format!("FAULT = \"{fault}\", RECORDS_TOKEN"))).unwrap();
    env
}

fn starts(env: &Env) -> usize {
    std::fs::read_to_string(env.root().join("starts.log")).unwrap_or_default().lines().count()
}

#[tokio::test]
async fn a_crash_a_garbled_line_a_hang_or_a_missing_result_leaves_rows_pending_never_written() {
    for (fault, extra, pending, why) in [
        ("crash", "", 3, "the program exited (exit status: 3) after 0 of 3 results"),
        ("garbage", "", 3, "not a result"),
        ("hang", "timeout = \"1s\"", 3, "within the 1 s timeout"),
        // Once per batch: stdin closes after the batch, so a row without an answer shows.
        ("skip", "per_batch = true", 1, "after 0 of 1 results"),
    ] {
        let env = faulty(fault, extra).await;
        let report = env.run("people").await;
        // Answered rows are written; the rest is retried (max_attempts = 2), then the run stops
        // with the program's failure and those rows pending.
        assert_eq!(report.status, RunStatus::Failed, "{fault}");
        assert_eq!((report.written, report.retryable), (5 - pending, pending), "{fault}: {:?}", report.warnings);
        let error = report.error.clone().unwrap_or_default();
        assert!(error.contains(why) && error.contains("gave up after 2 attempts"), "{fault}: {error}");
        assert_eq!(stored_ids(&env).await.len(), 5 - pending as usize, "{fault}: only answered rows are in the state");
        // Mended: the pending rows go out on the next run, and nothing else.
        let config = env.root().join("sluice.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, text.replace(&format!("FAULT = \"{fault}\""), "FAULT = \"none\"")).unwrap();
        let healed = env.run("people").await;
        assert_eq!((healed.status, healed.written), (RunStatus::Success, pending), "{fault}: {:?}", healed.warnings);
    }
}

#[tokio::test]
async fn the_program_starts_once_per_run_or_once_per_batch() {
    let env = faulty("none", "max_batch_rows = 2").await;
    assert_eq!(env.run("people").await.written, 5);
    assert_eq!(starts(&env), 1, "one program for the run's three batches");
    let env = faulty("none", "max_batch_rows = 2\nper_batch = true").await;
    assert_eq!(env.run("people").await.written, 5);
    assert_eq!(starts(&env), 3, "one program per batch");
}

#[tokio::test]
async fn a_program_that_cannot_start_fails_the_run_and_check_names_a_missing_script() {
    let (env, _api) = project(&["./no-such-program"], "").await;
    let report = env.run("people").await;
    assert_eq!(report.status, RunStatus::Failed);
    let error = report.error.unwrap_or_default();
    assert!(error.contains("cannot start `./no-such-program`") && error.contains("[destinations.records]"), "{error}");
    let out = support::sluice_cli(env.root(), &["check"], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("`./no-such-program` does not exist"), "{text}");
}

#[tokio::test]
async fn max_in_flight_runs_copies_of_the_program_side_by_side_and_rate_limit_paces_batches() {
    let env = faulty("none", "max_batch_rows = 1\nmax_in_flight = 2").await;
    assert_eq!(env.run("people").await.written, 5);
    assert_eq!(starts(&env), 2, "two copies of the program, each given batches");
    // Two batches in any 300 ms: five take at least two more windows after the first.
    let env = faulty("none", "max_batch_rows = 1\nrate_limit = \"2/300ms\"").await;
    let started = std::time::Instant::now();
    let run = env.run("people").await;
    assert_eq!(run.written, 5);
    assert!(started.elapsed() >= std::time::Duration::from_millis(600), "5 batches in {:?}", started.elapsed());
    assert_eq!(run.sending.and_then(|s| s.rate_limit).as_deref(), Some("2/300ms"), "the report names the limit");
}
