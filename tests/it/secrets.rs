//! Canary secrets in config and environment never show up in anything sluice prints, logs or
//! serves: CLI output (text and JSON), debug logs, failing runs, the daemon's logs, API and
//! console pages.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use support::hubspot::HubSpot;
use support::{Env, SourceKind, StateKind};

const CANARIES: [&str; 6] = ["CANARYURLTOKEN", "CANARYHEADER", "CANARYSIGNING", "CANARYHUBSPOT", "CANARYPGPASSWORD", "CANARYMYPASSWORD"];

/// Runs the CLI on a blocking thread (the emulators answer on this runtime); stdout + stderr.
async fn sluice(env: &Env, args: &[&str]) -> String {
    let out = support::sluice_cli(env.root(), args, &[("SLUICE_CANARY_HEADER", "CANARYHEADER")]).await;
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

async fn project() -> (Env, HubSpot) {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    let hubspot = HubSpot::start().await;
    let path = env.root().join("sluice.toml");
    let config = std::fs::read_to_string(&path).unwrap().replace(&env.sink.url, &format!("{}?token=CANARYURLTOKEN", env.sink.url));
    std::fs::write(
        &path,
        format!(
            "{config}signing_secret = \"CANARYSIGNING\"\n[destinations.hook.headers]\nAuthorization = \"Bearer ${{SLUICE_CANARY_HEADER}}\"\n\n\
             [destinations.crm]\nkind = \"hubspot\"\ntoken_file = \"hubspot.token\"\nbase_url = \"{}\"\nmax_attempts = 1\n\n\
             [sources.pg]\nkind = \"postgres\"\nurl = \"postgres://sluice:CANARYPGPASSWORD@127.0.0.1:1/nope\"\n\n\
             [sources.my]\nkind = \"mysql\"\nurl = \"mysql://sluice:CANARYMYPASSWORD@127.0.0.1:1/nope\"\n\n[daemon]\nlisten = \"127.0.0.1:0\"\n",
            hubspot.base_url
        ),
    )
    .unwrap();
    std::fs::write(env.root().join("hubspot.token"), "CANARYHUBSPOT").unwrap();
    std::fs::set_permissions(env.root().join("hubspot.token"), std::fs::Permissions::from_mode(0o600)).unwrap();
    env.exec("CREATE TABLE t AS SELECT i AS id, 'p' || i || '@x.com' AS email FROM range(1, 4) r(i)").await;
    env.write_sync("to_hook", "source = \"wh\"\ndestination = \"hook\"\nprimary_key = \"id\"", "SELECT id, email FROM t");
    env.write_sync(
        "to_crm",
        "source = \"wh\"\ndestination = \"crm\"\nprimary_key = \"id\"\n[target]\nobject = \"contacts\"\nid_property = \"email\"\n[mapping]\nemail = \"email\"",
        "SELECT id, email FROM t",
    );
    env.write_sync("from_pg", "source = \"pg\"\ndestination = \"hook\"\nprimary_key = \"id\"", "SELECT 1 AS id");
    env.write_sync("from_my", "source = \"my\"\ndestination = \"hook\"\nprimary_key = \"id\"", "SELECT 1 AS id");
    (env, hubspot)
}

fn assert_clean(what: &str, text: &str) {
    for canary in CANARIES {
        assert!(!text.contains(canary), "{what} shows the secret {canary}:\n{text}");
    }
}

#[tokio::test]
async fn no_command_log_or_api_answer_shows_a_secret() {
    let (env, _hubspot) = project().await;
    let mut seen = String::new();
    for args in [
        vec!["check"],
        vec!["check", "--json"],
        vec!["plan", "--json", "-vv"],
        vec!["run", "-vv"],
        vec!["run", "--json", "-vv"],
        vec!["status", "--json"],
        vec!["failures"],
        vec!["failures", "--json"],
    ] {
        let out = sluice(&env, &args).await;
        assert_clean(&format!("`sluice {}`", args.join(" ")), &out);
        seen.push_str(&out);
    }
    // The runs happened and failed for the reasons the canaries sit in.
    assert!(seen.contains("HTTP 401 INVALID_AUTHENTICATION"), "{seen}");
    assert!(
        seen.contains("cannot connect to source `pg`: 127.0.0.1:1:") && seen.contains("refused"),
        "the source is named by host: {seen}"
    );
    assert!(seen.contains("cannot connect to source `my`: 127.0.0.1:1:"), "the MariaDB source too: {seen}");
    assert!(
        env.sink.requests() > 0 && env.sink.headers().iter().all(|h| h["authorization"] == "Bearer CANARYHEADER"),
        "the secrets were used"
    );

    // The daemon: debug logs, then its API.
    let log = env.root().join("daemon.log");
    let mut child = Command::new(support::sluice_bin())
        .args(["-vv", "daemon", "--project"])
        .arg(env.root())
        .env("SLUICE_CANARY_HEADER", "CANARYHEADER")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let port = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(p) = text
            .lines()
            .find(|l| l.contains("HTTP endpoint"))
            .and_then(|l| l.split("addr=127.0.0.1:").nth(1))
            .and_then(|p| p.split_whitespace().next())
        {
            break p.to_string();
        }
        assert!(Instant::now() < deadline, "no endpoint: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let http = reqwest::Client::new();
    for path in ["/api/syncs", "/api/syncs/to_crm", "/metrics", "/healthz"] {
        let body = http.get(format!("http://127.0.0.1:{port}{path}")).send().await.unwrap().text().await.unwrap();
        assert_clean(&format!("GET {path}"), &body);
    }
    let token = std::fs::read_to_string(env.root().join(".sluice/api_token")).expect("the generated API token");
    for sync in ["to_crm", "from_pg", "from_my"] {
        let started = http.post(format!("http://127.0.0.1:{port}/api/syncs/{sync}/run")).bearer_auth(token.trim()).send().await.unwrap();
        assert_eq!(started.status(), 202);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&log).unwrap_or_default().matches("run failed").count() < 3 {
        assert!(Instant::now() < deadline, "the failing runs: {}", std::fs::read_to_string(&log).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every page of the console, signed in (it shows run errors and the syncs' definitions).
    let base = format!("http://127.0.0.1:{port}");
    let console = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed_in = console.post(format!("{base}/login")).form(&[("token", token.trim())]).send().await.unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let mut pages = vec!["/login".to_string(), "/".to_string()];
    for sync in ["to_hook", "to_crm", "from_pg", "from_my"] {
        pages.push(format!("/syncs/{sync}"));
        pages.push(format!("/syncs/{sync}/reset"));
        let status: serde_json::Value =
            http.get(format!("{base}/api/syncs/{sync}")).bearer_auth(token.trim()).send().await.unwrap().json().await.unwrap();
        for run in status["last_runs"].as_array().unwrap() {
            pages.push(format!("/syncs/{sync}/runs/{}", run["id"].as_str().unwrap()));
        }
    }
    let mut failed_runs_shown = 0;
    for path in &pages {
        let answer = console.get(format!("{base}{path}")).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(answer.status(), 200, "GET {path}");
        let body = answer.text().await.unwrap();
        assert_clean(&format!("the console's {path}"), &body);
        failed_runs_shown += body.matches("✕ failed").count();
    }
    assert!(failed_runs_shown >= 2, "the pages show the failed runs (whose errors are where secrets could leak)");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    assert_clean("the daemon's log", &std::fs::read_to_string(&log).unwrap());
}

#[tokio::test]
async fn secret_files_readable_by_everyone_are_warned_about() {
    let (env, _hubspot) = project().await;
    std::fs::set_permissions(env.root().join("sluice.toml"), std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(!sluice(&env, &["check"]).await.contains("readable by every user"), "0600 and 0640 are fine");
    std::fs::set_permissions(env.root().join("hubspot.token"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = sluice(&env, &["check"]).await;
    assert!(out.contains("the secret file of `destinations.crm.token_file`") && out.contains("chmod o-r"), "{out}");
    // A world-readable sluice.toml is worth a warning when it holds a secret itself.
    std::fs::set_permissions(env.root().join("sluice.toml"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = sluice(&env, &["check"]).await;
    assert!(out.contains("the project config (it sets `signing_secret` literally)"), "{out}");
}

/// The state directory and its files are the owner's only (they say what was sent where; the
/// lock files say who runs what), whatever the umask.
#[tokio::test]
async fn the_state_directory_is_private() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec("CREATE TABLE t AS SELECT 1 AS id").await;
    env.write_sync("s", "destination = \"hook\"\nprimary_key = \"id\"", "SELECT id FROM t");
    assert_eq!(env.run("s").await.written, 1);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let state = env.root().join(".sluice");
    assert_eq!(mode(&state), 0o700, "{}", state.display());
    for entry in std::fs::read_dir(&state).unwrap() {
        let path = entry.unwrap().path();
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), expected, "{}", path.display());
        if path.is_dir() {
            for inner in std::fs::read_dir(&path).unwrap() {
                let inner = inner.unwrap().path();
                assert_eq!(mode(&inner), 0o600, "{}", inner.display());
            }
        }
    }
}

/// A command destination's program runs in a process group of its own: a timeout kills the
/// whole group, so a script's children do not live on.
#[tokio::test]
async fn a_command_that_times_out_is_killed_with_its_children() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec("CREATE TABLE t AS SELECT 1 AS id").await;
    // The script starts a child that would outlive it, records the child's pid, and hangs.
    let script = env.root().join("hang.sh");
    std::fs::write(&script, "#!/bin/sh\nsleep 300 &\necho $! > child.pid\nwhile true; do sleep 1; done\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.add_destination("cmd", &format!("kind = \"command\"\ncommand = [\"{}\"]\ntimeout = \"1s\"\nmax_attempts = 1", script.display()));
    env.write_sync("s", "destination = \"cmd\"\nprimary_key = \"id\"", "SELECT id FROM t");
    let report = env.run("s").await;
    assert_eq!(report.written, 0, "{report:?}");
    let pid: u32 = std::fs::read_to_string(env.root().join("child.pid")).unwrap().trim().parse().unwrap();
    // Killed and reaped (by whoever adopted it): its /proc entry goes, or it is a zombie.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()).unwrap_or("");
        if stat.is_empty() || state == "Z" {
            break;
        }
        assert!(Instant::now() < deadline, "the script's child {pid} lives on: {stat}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
