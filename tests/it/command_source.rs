//! `kind = "command"` sources: a program's output (JSON lines, CSV, a Parquet file) is the
//! table `input` of the model; a program that fails, hangs or writes garbage fails the run
//! before anything is sent, saying why.

use crate::support;

use sluice::state::RunStatus;
use support::*;

/// A project with a command source `prog` running `command` (a TOML array) with `extra`
/// settings, and a JSON-lines file destination.
async fn project(command: &str, extra: &str, model: &str) -> Env {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    let path = env.root().join("sluice.toml");
    let mut config = std::fs::read_to_string(&path).expect("sluice.toml");
    config.push_str(&format!(
        "\n[sources.prog]\nkind = \"command\"\ncommand = {command}\n{extra}\n\n[destinations.out]\nkind = \"file\"\npath = \"out.jsonl\"\n"
    ));
    std::fs::write(&path, config).expect("sluice.toml");
    env.write_sync("scores", "source = \"prog\"\ndestination = \"out\"\nprimary_key = \"id\"", model);
    env
}

fn out(env: &Env) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(env.root().join("out.jsonl")).unwrap_or_default();
    let mut rows: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    rows.sort_by_key(|r| r["id"].to_string());
    rows
}

fn python(script: &str) -> String {
    format!("[\"python3\", \"-c\", {}]", toml::Value::String(script.to_string()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_programs_json_lines_are_the_models_input() {
    let script = "import json\nfor i in range(1, 6):\n    print(json.dumps({'id': i, 'email': f'c{i}@x', 'risk': i / 5}))";
    let env = project(&python(script), "", "SELECT id, email, risk FROM input WHERE risk > 0.5").await;
    let report = env.run("scores").await;
    assert_eq!(report.status, RunStatus::Success, "{:?}", report.error);
    let rows = out(&env);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0], serde_json::json!({"id": 3, "email": "c3@x", "risk": 0.6}));
    // The same output again: nothing to send.
    assert_eq!(env.run("scores").await.to_send.total(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_output_with_a_pinned_column_type_keeps_leading_zeros() {
    let script = "print('id,zip,n')\nprint('1,00501,2')\nprint('2,10001,3')";
    let env = project(&python(script), "format = \"csv\"\n[sources.prog.columns]\nzip = \"VARCHAR\"", "SELECT id, zip, n FROM input").await;
    let report = env.run("scores").await;
    assert_eq!(report.status, RunStatus::Success, "{:?}", report.error);
    assert_eq!(out(&env)[0], serde_json::json!({"id": 1, "zip": "00501", "n": 2}));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parquet_file_the_program_names_is_read() {
    let env = project("[\"sh\", \"-c\", \"echo data/scores.parquet\"]", "format = \"parquet\"", "SELECT id, v FROM input").await;
    std::fs::create_dir_all(env.root().join("data")).unwrap();
    let file = env.root().join("data/scores.parquet");
    let sql = format!("COPY (SELECT i AS id, 'v' || i AS v FROM range(1, 4) r(i)) TO '{}' (FORMAT parquet)", file.display());
    tokio::task::spawn_blocking(move || duckdb::Connection::open_in_memory().unwrap().execute_batch(&sql).unwrap()).await.unwrap();
    let report = env.run("scores").await;
    assert_eq!(report.status, RunStatus::Success, "{:?}", report.error);
    assert_eq!(out(&env).len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_program_fails_the_run_with_its_stderr_and_sends_nothing() {
    let script = "import sys\nprint('{\"id\": 1}')\nprint('connecting to the warehouse', file=sys.stderr)\nprint('Traceback: KeyError: churn', file=sys.stderr)\nsys.exit(3)";
    let env = project(&python(script), "", "SELECT id FROM input").await;
    let report = env.run("scores").await;
    assert_eq!(report.status, RunStatus::Failed);
    let error = report.error.unwrap_or_default();
    assert!(error.contains("source `prog`") && error.contains("exit status: 3") && error.contains("KeyError: churn"), "{error}");
    assert!(!env.root().join("out.jsonl").exists(), "nothing sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_program_past_its_timeout_is_killed_with_its_children() {
    let marker = tempfile::tempdir().unwrap();
    let late = marker.path().join("late");
    // The child of the shell would write the marker after 3 s if it survived the kill.
    let command = format!("[\"sh\", \"-c\", \"(sleep 3; touch {}) & sleep 30\"]", late.display());
    let env = project(&command, "timeout = \"500ms\"", "SELECT 1 AS id FROM input").await;
    let started = std::time::Instant::now();
    let report = env.run("scores").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let error = report.error.unwrap_or_default();
    assert!(error.contains("longer than `timeout` (500ms)") && error.contains("killed"), "{error}");
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert!(!late.exists(), "the program's child was killed too");
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_output_is_an_error_naming_its_line() {
    let script = "print('{\"id\": 1}')\nprint('{\"id\": 2}')\nprint('id=3 oops')";
    let env = project(&python(script), "", "SELECT id FROM input").await;
    let report = env.run("scores").await;
    assert_eq!(report.status, RunStatus::Failed);
    let error = report.error.unwrap_or_default();
    assert!(error.contains("not valid JSON lines") && error.contains("line 3"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_program_gets_a_clean_environment_and_its_env() {
    let script = "import json, os\nprint(json.dumps({'id': 1, 'leak': os.environ.get('SLUICE_TEST_LEAK'), 'given': os.environ.get('API_KEY'), 'source': os.environ.get('SLUICE_SOURCE')}))";
    let env = project(&python(script), "[sources.prog.env]\nAPI_KEY = \"${SLUICE_TEST_GIVEN}\"", "SELECT * FROM input").await;
    let run = sluice_cli(env.root(), &["run"], &[("SLUICE_TEST_LEAK", "secret"), ("SLUICE_TEST_GIVEN", "k-123")]).await;
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(out(&env).len(), 1, "{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert_eq!(out(&env)[0], serde_json::json!({"id": 1, "leak": null, "given": "k-123", "source": "prog"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_output_needs_pinned_columns() {
    let env = project("[\"true\"]", "", "SELECT id FROM input").await;
    let error = env.run("scores").await.error.unwrap_or_default();
    assert!(error.contains("wrote nothing") && error.contains("[sources.NAME.columns]"), "{error}");

    let env = project("[\"true\"]", "[sources.prog.columns]\nid = \"BIGINT\"", "SELECT id FROM input").await;
    let report = env.run("scores").await;
    assert_eq!((report.status, report.rows_read), (RunStatus::Success, 0), "{:?}", report.error);
}
