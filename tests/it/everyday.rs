//! The everyday command line (issue #32): the version names its commit, completions and the man
//! page come from the clap definitions, `check NAME` checks just those, `run --limit` and
//! `--fail-on-rejected`, progress for people and for machines, summary lines that never
//! contradict themselves, and error messages that point at the right place.

use crate::support;

use serde_json::json;
use support::{sluice_cli, Env, SourceKind, StateKind};

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

async fn project(rows: u32) -> Env {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec(&format!("CREATE TABLE t AS SELECT i AS id, i * 2 AS v FROM range(1, {}) r(i)", rows + 1)).await;
    env.write_sync("people", "destination = \"hook\"\nprimary_key = \"id\"", "SELECT id, v FROM t");
    env
}

#[tokio::test]
async fn the_version_names_the_commit_and_completions_and_the_man_page_come_from_the_cli() {
    let env = project(1).await;
    let out = sluice_cli(env.root(), &["--version"], &[]).await;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // The commit this binary was built from: the checkout's HEAD, as build.rs read it.
    let head = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).current_dir(env!("CARGO_MANIFEST_DIR")).output();
    let commit = head.ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let expected = format!("sluice {} ({})", env!("CARGO_PKG_VERSION"), commit.as_deref().unwrap_or("unknown"));
    assert_eq!(version, expected);

    let bash = sluice_cli(env.root(), &["completions", "bash"], &[]).await;
    let script = String::from_utf8_lossy(&bash.stdout);
    assert!(bash.status.success() && script.contains("complete -F _sluice") && script.contains("--fail-on-rejected"), "{script}");
    let zsh = sluice_cli(env.root(), &["completions", "zsh"], &[]).await;
    assert!(String::from_utf8_lossy(&zsh.stdout).starts_with("#compdef sluice"));
    let man = sluice_cli(env.root(), &["man"], &[]).await;
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(page.contains(".TH sluice 1") && page.contains("completions"), "{page}");
    let bad = sluice_cli(env.root(), &["completions", "tcsh"], &[]).await;
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}

#[tokio::test]
async fn check_takes_names_and_checks_destinations_no_sync_uses_at_their_line() {
    let env = project(3).await;
    env.write_sync("other", "destination = \"hook\"\nprimary_key = \"id\"", "SELECT id FROM missing_table");
    // A destination no sync uses, with a setting it does not take.
    env.add_destination("spare", "kind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nbogus = 1");

    let one = sluice_cli(env.root(), &["check", "people", "--json"], &[]).await;
    assert!(one.status.success(), "only `people` is checked: {}", text(&one));
    let names: Vec<String> = json_of(&one)["syncs"].as_array().unwrap().iter().map(|r| r["sync"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["people"]);

    let all = sluice_cli(env.root(), &["check"], &[]).await;
    let said = text(&all);
    assert_eq!(all.status.code(), Some(2), "{said}");
    let spare = said.lines().find(|l| l.contains("destination:spare")).unwrap_or_else(|| panic!("{said}"));
    assert!(spare.starts_with("ERROR") && spare.contains("sluice.toml:") && spare.contains("bogus"), "{spare}");
    let toml = std::fs::read_to_string(env.root().join("sluice.toml")).unwrap();
    let line = toml.lines().position(|l| l == "[destinations.spare]").unwrap() + 1;
    assert!(spare.contains(&format!("sluice.toml:{line}:")), "the table's own line ({line}): {spare}");

    let typo = sluice_cli(env.root(), &["check", "peple"], &[]).await;
    assert_eq!(typo.status.code(), Some(2));
    assert!(text(&typo).contains("peple") && text(&typo).contains("people"), "{}", text(&typo));
}

#[tokio::test]
async fn run_limit_sends_at_most_n_changes_and_the_next_run_sends_the_rest() {
    let env = project(10).await;
    let first = sluice_cli(env.root(), &["run", "--limit", "3"], &[]).await;
    let said = text(&first);
    assert!(first.status.success(), "{said}");
    assert!(said.contains("partial") && said.contains("7 left for the next run (--limit)"), "{said}");
    assert_eq!(env.sink.take().len(), 3);
    let status = json_of(&sluice_cli(env.root(), &["status", "people", "--json"], &[]).await);
    assert_eq!(status["syncs"][0]["runs"][0]["status"], "partial", "{status}");

    let rest = json_of(&sluice_cli(env.root(), &["run", "--json"], &[]).await);
    assert_eq!((&rest["syncs"][0]["written"], &rest["syncs"][0]["status"]), (&json!(7), &json!("success")), "{rest}");
    let mut ids: Vec<i64> = env.sink.take().iter().map(|r| r.key["id"].as_i64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids.len(), 7, "the 3 sent first are not sent again: {ids:?}");
}

#[tokio::test]
async fn rejected_rows_fail_the_command_only_when_asked() {
    let env = project(4).await;
    env.sink.reject(json!({"id": 2}));
    let plain = sluice_cli(env.root(), &["run"], &[]).await;
    assert_eq!(plain.status.code(), Some(0), "rejected rows are kept and retried: {}", text(&plain));

    env.exec("UPDATE t SET v = v + 1").await;
    let strict = sluice_cli(env.root(), &["run", "--fail-on-rejected"], &[]).await;
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict));
    assert!(text(&strict).contains("1 row(s) rejected, and rejected rows fail this command"), "{}", text(&strict));

    // The project's default, and the flag over it.
    env.append_config("\n[run]\nfail_on_rejected = true\n");
    env.exec("UPDATE t SET v = v + 1").await;
    assert_eq!(sluice_cli(env.root(), &["run"], &[]).await.status.code(), Some(1));
    env.exec("UPDATE t SET v = v + 1").await;
    assert_eq!(sluice_cli(env.root(), &["run", "--fail-on-rejected=false"], &[]).await.status.code(), Some(0));
}

#[tokio::test]
async fn progress_is_json_lines_for_machines_bars_on_a_terminal_and_nothing_on_a_pipe() {
    let env = project(2_000).await;
    let piped = sluice_cli(env.root(), &["run"], &[]).await;
    assert!(piped.status.success());
    assert!(String::from_utf8_lossy(&piped.stderr).trim().is_empty(), "nothing on a pipe: {}", text(&piped));

    env.exec("UPDATE t SET v = v + 1").await;
    let machine = sluice_cli(env.root(), &["run", "--json"], &[]).await;
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&machine.stderr).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert!(lines.iter().any(|l| l["progress"] == "scanning" && l["sync"] == "people"), "{lines:?}");
    let last = lines.iter().rfind(|l| l["progress"] == "sending").unwrap_or_else(|| panic!("{lines:?}"));
    assert_eq!((&last["sent"], &last["total"]), (&json!(2000), &json!(2000)), "the last line says it is done");
    assert_eq!(json_of(&machine)["syncs"][0]["written"], 2000, "stdout still holds one document");

    // On a terminal (a pseudo-terminal made by script(1)), a bar that says what it sends.
    env.exec("UPDATE t SET v = v + 1").await;
    let command = format!("{} run --project {}", support::sluice_bin().display(), env.root().display());
    let tty = tokio::task::spawn_blocking(move || {
        std::process::Command::new("script").args(["-qec", &command, "/dev/null"]).env("TERM", "xterm").output().expect("script(1)")
    })
    .await
    .unwrap();
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{screen}");
    assert!(screen.contains("people: sending [") && screen.contains("rows"), "{screen}");
}

#[tokio::test]
async fn a_run_stopped_before_sending_says_nothing_was_sent() {
    let env = project(3).await;
    env.write_sync("dupes", "destination = \"hook\"\nprimary_key = \"id\"", "SELECT 1 AS id, 1 AS v UNION ALL SELECT 1, 2");
    let out = sluice_cli(env.root(), &["run", "dupes"], &[]).await;
    let line = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string();
    assert_eq!(out.status.code(), Some(1));
    assert!(line.contains("nothing sent") && !line.contains("batch"), "{line}");
}

#[tokio::test]
async fn an_unknown_database_is_the_servers_answer_not_a_question_about_the_server() {
    let env = project(1).await;
    let base = std::env::var("SLUICE_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let url = format!("{}/sluice_no_such_db_{}", base.rsplit_once('/').unwrap().0, std::process::id());
    env.append_config(&format!("\n[sources.pg]\nkind = \"postgres\"\nurl = \"{url}\"\n"));
    env.write_sync("people", "source = \"pg\"\ndestination = \"hook\"\nprimary_key = \"id\"", "SELECT 1 AS id");
    let out = sluice_cli(env.root(), &["run", "people"], &[]).await;
    let said = text(&out);
    assert!(said.contains("does not exist") && said.contains("the server refused"), "{said}");
    assert!(!said.contains("is the server up"), "{said}");
}

#[tokio::test]
async fn mariadb_refusals_are_told_from_a_full_server() {
    // MariaDB's SQLSTATEs are shared with syntax errors, so sluice tells a refusal by number:
    // 1049 (unknown database) here must still read as one.
    let env = project(1).await;
    let url = format!("{}/sluice_no_such_db_{}", support::databases::mysql_url(), std::process::id());
    env.append_config(&format!("\n[sources.my]\nkind = \"mysql\"\nurl = \"{url}\"\n"));
    env.write_sync("people", "source = \"my\"\ndestination = \"hook\"\nprimary_key = \"id\"", "SELECT 1 AS id");
    let said = text(&sluice_cli(env.root(), &["run", "people"], &[]).await);
    assert!(said.contains("Unknown database") && said.contains("the server refused"), "{said}");
    assert!(!said.contains("did not take the connection") && !said.contains("is the server up"), "{said}");
}

#[tokio::test]
async fn a_full_server_is_not_blamed_on_the_password() {
    let env = project(1).await;
    let base = std::env::var("SLUICE_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    let role = format!("sluice_full_{}", std::process::id());
    // A role that may not connect at all: the server answers "too many connections" (53300).
    sqlx::query(&format!("DROP ROLE IF EXISTS {role}")).execute(&admin).await.unwrap();
    sqlx::query(&format!("CREATE ROLE {role} LOGIN CONNECTION LIMIT 0")).execute(&admin).await.unwrap();
    let (_, rest) = base.split_once("://").unwrap();
    let (_, host) = rest.split_once('@').unwrap_or(("", rest));
    env.append_config(&format!("\n[sources.pg]\nkind = \"postgres\"\nurl = \"postgres://{role}@{host}\"\n"));
    env.write_sync("people", "source = \"pg\"\ndestination = \"hook\"\nprimary_key = \"id\"", "SELECT 1 AS id");
    let out = sluice_cli(env.root(), &["run", "people"], &[]).await;
    sqlx::query(&format!("DROP ROLE {role}")).execute(&admin).await.unwrap();
    let said = text(&out);
    assert!(said.contains("too many connections") && said.contains("did not take the connection"), "{said}");
    assert!(!said.contains("check the user, password") && !said.contains("is the server up"), "{said}");
}

#[tokio::test]
async fn a_misspelt_destination_gets_a_did_you_mean() {
    let env = project(1).await;
    env.add_destination("crm", "kind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"");
    env.write_sync("people", "destination = \"cmr\"\nprimary_key = \"id\"", "SELECT 1 AS id");
    let said = text(&sluice_cli(env.root(), &["check"], &[]).await);
    assert!(said.contains("destination `cmr` is not defined") && said.contains("did you mean `crm`?"), "{said}");
    assert!(!said.contains("add a [destinations.cmr] table"), "{said}");
}

#[tokio::test]
async fn jsonl_files_keep_the_mapping_order() {
    let env = project(2).await;
    env.add_destination("out", "kind = \"file\"");
    env.write_sync(
        "ordered",
        "destination = \"out\"\nprimary_key = \"id\"\n\n[target]\npath = \"out/ordered.jsonl\"",
        "SELECT id, 'z' AS zebra, 'a' AS apple, 'm' AS mango FROM t",
    );
    let out = sluice_cli(env.root(), &["run", "ordered"], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let file = std::fs::read_to_string(env.root().join("out/ordered.jsonl")).unwrap();
    assert!(file.lines().next().unwrap().starts_with(r#"{"id":1,"zebra":"z","apple":"a","mango":"m"}"#), "{file}");
}

#[tokio::test]
async fn a_new_output_file_follows_the_umask_and_a_rewritten_one_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let env = project(3).await;
    env.add_destination("out", "kind = \"file\"");
    env.write_sync("fresh", "destination = \"out\"\nprimary_key = \"id\"\n\n[target]\npath = \"fresh.csv\"", "SELECT id FROM t");
    env.write_sync("kept", "destination = \"out\"\nprimary_key = \"id\"\n\n[target]\npath = \"kept.csv\"", "SELECT id FROM t");
    let kept = env.root().join("kept.csv");
    std::fs::write(&kept, "id\n").unwrap();
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o604)).unwrap();
    let command = format!("umask 027; exec {} run --project {}", support::sluice_bin().display(), env.root().display());
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("sh").args(["-c", &command]).output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let mode = |p: &str| std::fs::metadata(env.root().join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("fresh.csv"), 0o640, "0666 less the umask 027");
    assert_eq!(mode("kept.csv"), 0o604, "an existing file keeps its mode, whatever the umask");
}
