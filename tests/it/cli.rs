//! The command line as a user meets it: init, check, plan, run, status, reset, exit codes,
//! `--json`, and error messages that say what, where and what to do.

use crate::support;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn sluice(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(support::sluice_bin());
    cmd.arg("--project").arg(dir).env_remove("SLUICE_PROJECT").env("NO_COLOR", "1");
    cmd
}

fn json_of(output: &[u8]) -> Value {
    serde_json::from_slice(output).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(output)))
}

#[test]
fn init_scaffolds_a_project_that_checks_plans_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("my-syncs");
    Command::new(support::sluice_bin()).arg("init").arg(&dir).assert().success().stdout(predicate::str::contains("created"));
    sluice(&dir).arg("check").assert().success().stdout(predicate::str::contains("ok     high_value_customers"));

    let plan = sluice(&dir).args(["plan", "--json"]).assert().success();
    let plan = json_of(&plan.get_output().stdout);
    let hv = plan["syncs"].as_array().unwrap().iter().find(|s| s["sync"] == "high_value_customers").unwrap().clone();
    let added = hv["added"].as_u64().unwrap();
    assert!(added > 0 && hv["to_send"]["upsert"] == added, "{hv}");
    assert!(!dir.join("out").exists(), "plan writes nothing");

    let run = sluice(&dir).args(["run", "--json"]).assert().success();
    let run = json_of(&run.get_output().stdout);
    for s in run["syncs"].as_array().unwrap() {
        assert_eq!(s["status"], "success", "{s}");
    }
    let csv = std::fs::read_to_string(dir.join("out/high_value_customers.csv")).unwrap();
    assert!(csv.starts_with("Customer ID,Email,Lifetime value,Orders\n"), "{csv}");
    assert_eq!(csv.lines().count() as u64, added + 1);
    let jsonl = std::fs::read_to_string(dir.join("out/churn_risk.jsonl")).unwrap();
    let first: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert!(first["churn_risk"].as_f64().unwrap() >= 0.5, "{first}");

    // Nothing changed: nothing sent, and the text output says so.
    sluice(&dir).arg("run").assert().success().stdout(predicate::str::contains("nothing to send"));
    let status = sluice(&dir).args(["status", "--json"]).assert().success();
    let status = json_of(&status.get_output().stdout);
    assert_eq!(status["syncs"][0]["runs"][0]["status"], "success", "{status}");

    sluice(&dir).args(["reset", "churn_risk"]).assert().success().stdout(predicate::str::contains("forgot"));
    let again = sluice(&dir).args(["run", "churn_risk", "--json"]).assert().success();
    let again = json_of(&again.get_output().stdout);
    assert!(again["syncs"][0]["added"].as_u64().unwrap() > 0, "after reset every row is new: {again}");
}

#[test]
fn init_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("sluice.toml"), "").unwrap();
    Command::new(support::sluice_bin()).arg("init").arg(tmp.path()).assert().code(2).stderr(predicate::str::contains("already holds"));
}

fn project(config: &str, syncs: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("sluice.toml"), config).unwrap();
    std::fs::create_dir_all(tmp.path().join("syncs")).unwrap();
    for (name, text) in syncs {
        std::fs::write(tmp.path().join("syncs").join(name), text).unwrap();
    }
    tmp
}

const CONFIG: &str = "[sources.local]\nkind = \"duckdb\"\n\n[destinations.out]\nkind = \"file\"\npath = \"out/x.csv\"\n";

#[test]
fn check_points_at_file_and_line_with_a_suggestion() {
    let bad_key = "/* sluice\nprimary_key = \"id\"\nshedule = \"@daily\"\n*/\nSELECT 1 AS id\n";
    let bad_column = "/* sluice\nprimary_key = \"id\"\n[mapping]\nEmail = \"emial\"\n*/\nSELECT 1 AS id, 'a' AS email\n";
    let bad_dest = "/* sluice\nprimary_key = \"id\"\ndestination = \"outt\"\n*/\nSELECT 1 AS id\n";
    let good = "/* sluice\nprimary_key = \"id\"\n*/\nSELECT 1 AS id\n";
    let tmp = project(CONFIG, &[("a.sql", bad_key), ("b.sql", bad_column), ("c.sql", bad_dest), ("d.sql", good)]);
    let out = sluice(tmp.path()).arg("check").assert().code(2);
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(text.contains("syncs/a.sql:3:") && text.contains("did you mean `schedule`?"), "{text}");
    assert!(
        text.contains("syncs/b.sql:4:") && text.contains("`emial` is not a column") && text.contains("did you mean `email`?"),
        "{text}"
    );
    assert!(text.contains("syncs/c.sql:3:") && text.contains("did you mean `out`?"), "{text}");
    assert!(text.contains("ok     d:"), "{text}");

    // `run` reports the invalid syncs and runs the others: `b` fails on its model's columns
    // (exit 1 wins over 2), `d` is written.
    let run = sluice(tmp.path()).arg("run").assert().code(1);
    assert!(String::from_utf8_lossy(&run.get_output().stderr).contains("invalid sync: syncs/a.sql:3:"));
    assert!(tmp.path().join("out/x.csv").exists(), "the valid sync still ran");
}

#[test]
fn config_errors_name_the_key_and_line() {
    let tmp =
        project("[sources.local]\nkind = \"duckdb\"\n\n[destinations.out]\nkind = \"file\"\npath = \"${SLUICE_TEST_UNSET_VAR_X}\"\n", &[]);
    sluice(tmp.path())
        .arg("check")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("sluice.toml:6:").and(predicate::str::contains("SLUICE_TEST_UNSET_VAR_X")));

    let tmp = project("[sorces.local]\nkind = \"duckdb\"\n", &[]);
    sluice(tmp.path()).arg("check").assert().code(2).stderr(predicate::str::contains("did you mean `sources`?"));

    let tmp = tempfile::tempdir().unwrap();
    sluice(tmp.path()).arg("check").assert().code(2).stderr(predicate::str::contains("sluice init"));
}

#[test]
fn secrets_from_files_and_environment_never_reach_output() {
    let tmp = project(
        "[sources.local]\nkind = \"duckdb\"\n\n[destinations.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/hook?token=${SLUICE_TEST_TOKEN}\"\nmax_attempts = 1\n[destinations.hook.headers]\nAuthorization_file = \"secret.txt\"\n",
        &[("s.sql", "/* sluice\nprimary_key = \"id\"\n*/\nSELECT 1 AS id\n")],
    );
    std::fs::write(tmp.path().join("secret.txt"), "Bearer file-secret-123\n").unwrap();
    let out = sluice(tmp.path()).args(["run", "--json", "-vv"]).env("SLUICE_TEST_TOKEN", "env-secret-456").assert().code(1);
    let all = format!("{}{}", String::from_utf8_lossy(&out.get_output().stdout), String::from_utf8_lossy(&out.get_output().stderr));
    assert!(all.contains("could not connect"), "{all}");
    assert!(!all.contains("file-secret-123") && !all.contains("env-secret-456"), "a secret leaked: {all}");
}

#[test]
fn exit_code_1_when_a_sync_fails() {
    let failing = "/* sluice\nprimary_key = \"id\"\n*/\nSELECT * FROM no_such_table\n";
    let tmp = project(CONFIG, &[("f.sql", failing)]);
    let out = sluice(tmp.path()).args(["run", "--json"]).assert().code(1);
    let v = json_of(&out.get_output().stdout);
    assert_eq!(v["syncs"][0]["status"], "failed");
    assert!(v["syncs"][0]["error"].as_str().unwrap().contains("no_such_table"), "{v}");
    sluice(tmp.path()).arg("status").assert().success().stdout(predicate::str::contains("f: failed"));
    sluice(tmp.path()).args(["run", "nope"]).assert().code(2).stderr(predicate::str::contains("no sync named `nope`"));
}

#[test]
fn environment_overrides_config_and_syncs_may_live_in_subfolders() {
    let tmp = project(CONFIG, &[]);
    std::fs::create_dir_all(tmp.path().join("syncs/team")).unwrap();
    std::fs::write(tmp.path().join("syncs/team/deep.sql"), "/* sluice\nprimary_key = \"id\"\n*/\nSELECT 1 AS id\n").unwrap();
    sluice(tmp.path())
        .args(["run", "deep"])
        .env("SLUICE__STATE__URL", "sqlite://elsewhere/state.db")
        .assert()
        .success()
        .stdout(predicate::str::contains("ok      deep:"));
    assert!(tmp.path().join("elsewhere/state.db").exists(), "SLUICE__STATE__URL moved the state store");
    assert!(!tmp.path().join(".sluice").exists());
}
