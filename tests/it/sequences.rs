//! `after = [...]`: a sync runs after the syncs it names. `sluice run` orders them and skips the
//! dependants of one that failed (recorded, alerted); the daemon runs a sync only once what it
//! waits for got through, waits while that runs, and starts followers when it ends; unknown
//! names and cycles are errors at their line.

use crate::support;

use std::time::Duration;

use support::daemon::*;
use support::{sluice_cli, Env, Sink, SourceKind, StateKind};

const WAIT: Duration = Duration::from_secs(30);

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn run_goes_in_after_order_and_skips_what_waits_for_a_failed_sync() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec("CREATE TABLE t AS SELECT i AS id, i * 2 AS v FROM range(1, 31) r(i)").await;
    let pager = Sink::start().await;
    env.add_destination("pager", &format!("kind = \"webhook\"\nurl = \"{}\"", pager.url));
    // Default `on`: failure, recovery and skipped.
    env.append_config("\n[alerts]\ndestination = \"pager\"\n");
    let header = |after: &str| format!("destination = \"hook\"\nprimary_key = \"id\"\n{after}");
    // File order is not run order: a_contacts waits for b_accounts.
    env.write_sync("a_contacts", &header("after = \"b_accounts\""), "SELECT id, v FROM t");
    env.write_sync("b_accounts", &header(""), "SELECT id, v FROM accounts");
    env.write_sync("c_deals", &header("after = [\"a_contacts\"]"), "SELECT id, v FROM t");
    env.write_sync("d_other", &header(""), "SELECT id, v FROM t");

    let out = sluice_cli(env.root(), &["run", "--json"], &[]).await;
    assert_eq!(out.status.code(), Some(1), "a sync failed: {}", String::from_utf8_lossy(&out.stderr));
    let report = json_of(&out);
    let ran: Vec<(&str, &str)> =
        report["syncs"].as_array().unwrap().iter().map(|r| (r["sync"].as_str().unwrap(), r["status"].as_str().unwrap())).collect();
    assert_eq!(ran, [("b_accounts", "failed"), ("a_contacts", "skipped"), ("c_deals", "skipped"), ("d_other", "success")]);
    let error = |i: usize| report["syncs"][i]["error"].as_str().unwrap_or_default().to_string();
    assert!(error(1).starts_with("it runs after `b_accounts`, which failed in this command: "), "{}", error(1));
    assert_eq!(error(2), "it runs after `a_contacts`, which was skipped in this command");
    assert_eq!(env.sink.rows().len(), 30, "only d_other sent rows");

    // In the run history, with the reason; and alerted.
    let history = runs(&env, "a_contacts").await;
    assert_eq!(history.iter().map(|(s, _, _)| s.as_str()).collect::<Vec<_>>(), ["skipped"]);
    let status = json_of(&sluice_cli(env.root(), &["status", "a_contacts", "--json"], &[]).await);
    let last = &status["syncs"][0]["runs"][0];
    assert_eq!(last["status"], "skipped");
    assert!(last["error"].as_str().unwrap().contains("runs after `b_accounts`"), "{last}");
    let mut events: Vec<(String, String)> = pager
        .rows()
        .iter()
        .map(|r| (r.fields["sync"].as_str().unwrap().to_string(), r.fields["event"].as_str().unwrap().to_string()))
        .collect();
    events.sort();
    assert_eq!(
        events,
        [("a_contacts".into(), "skipped".into()), ("b_accounts".into(), "failure".into()), ("c_deals".into(), "skipped".into())]
    );

    // Fixed: everything runs, each after what it waits for.
    env.exec("CREATE TABLE accounts AS SELECT i AS id, i AS v FROM range(1, 11) r(i)").await;
    let out = sluice_cli(env.root(), &["run"], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let order: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ')).filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(order, ["b_accounts:", "a_contacts:", "c_deals:", "d_other:"], "{text}");
    let accounts = runs(&env, "b_accounts").await;
    let contacts = runs(&env, "a_contacts").await;
    let (accounts_done, contacts_started) = (accounts.last().unwrap().2.clone().unwrap(), contacts.last().unwrap().1.clone());
    assert!(contacts_started >= accounts_done, "a_contacts started {contacts_started}, before b_accounts ended {accounts_done}");

    // Naming a sync runs it, whatever the syncs it waits for did last: the person asked.
    env.exec("DROP TABLE accounts").await;
    assert!(!sluice_cli(env.root(), &["run", "b_accounts"], &[]).await.status.success());
    let out = sluice_cli(env.root(), &["run", "a_contacts", "--json"], &[]).await;
    assert_eq!(json_of(&out)["syncs"][0]["status"], "success");
}

#[tokio::test]
async fn unknown_names_and_cycles_are_refused_at_their_line() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    let header = |after: &str| format!("destination = \"hook\"\nprimary_key = \"id\"\n{after}");
    env.write_sync("accounts", &header(""), "SELECT 1 AS id");
    env.write_sync("contacts", &header("after = \"acounts\""), "SELECT 1 AS id");
    env.write_sync("x", &header("after = \"y\""), "SELECT 1 AS id");
    env.write_sync("y", &header("after = \"x\""), "SELECT 1 AS id");
    env.write_sync("z", &header("after = \"y\""), "SELECT 1 AS id");
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(2), "{text}");
    let line = |sync: &str| text.lines().find(|l| l.contains(&format!(" {sync}: "))).unwrap_or_default().to_string();
    assert!(line("contacts").contains("syncs/contacts.sql:4: `after` names `acounts`, which is no sync"), "{text}");
    assert!(line("contacts").contains("did you mean `accounts`?"), "{text}");
    assert!(line("x").contains("syncs/x.sql:4: `after` makes a cycle: `x` -> `y` -> `x`"), "{text}");
    assert!(line("z").contains("`after` names `y`, whose sync file (syncs/y.sql) is invalid"), "{text}");
    assert!(line("accounts").starts_with("ok"), "{text}");
}

#[tokio::test]
async fn the_daemon_runs_a_sync_only_after_what_it_waits_for_got_through() {
    let env = project(StateKind::Sqlite, "").await;
    // `scored` has a schedule of its own, gated by `accounts`; `contacts` has none: it follows.
    env.write_sync("accounts", &sync_header("manual", ""), "SELECT id, v FROM acc");
    env.write_sync("contacts", &sync_header("manual", "after = \"accounts\""), "SELECT id, v FROM t");
    env.write_sync("scored", &sync_header(EVERY_SECOND, "after = [\"accounts\"]"), "SELECT id, v FROM t");
    let mut daemon = Daemon::start(env.root(), &[]);
    let base = daemon.base_url().await;
    let token = api_token(&env);
    let http = reqwest::Client::new();
    let run_accounts = || http.post(format!("{base}/api/syncs/accounts/run")).bearer_auth(&token).send();
    let skipped_with = |sync: &'static str, why: &'static str| {
        let env = &env;
        async move {
            let sql = "SELECT error FROM runs WHERE sync = $1 AND status = 'skipped'";
            let path = env.root().join(".sluice/state.db");
            let Ok(pool) = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", path.display())).await else { return false };
            let errors: Vec<Option<String>> = sqlx::query_scalar(sql).bind(sync).fetch_all(&pool).await.unwrap_or_default();
            pool.close().await;
            errors.iter().flatten().any(|e| e.contains(why))
        }
    };

    eventually(WAIT, "scored skipped: accounts never ran", || skipped_with("scored", "runs after `accounts`, which has not run yet")).await;
    assert_eq!(runs(&env, "contacts").await.len(), 0, "a follower waits for its sync's run");

    // accounts fails (no table): its follower is skipped, with the reason.
    assert_eq!(run_accounts().await.unwrap().status(), 202);
    eventually(WAIT, "contacts skipped: accounts failed", || skipped_with("contacts", "whose latest run")).await;
    let contacts = runs(&env, "contacts").await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert!(env.sink.rows().is_empty(), "nothing ran");

    // accounts works now, but its request is held: scored waits for it to end.
    env.exec("CREATE TABLE acc AS SELECT i AS id, i AS v FROM range(1, 11) r(i)").await;
    env.sink.hold_from(0);
    assert_eq!(run_accounts().await.unwrap().status(), 202);
    eventually(WAIT, "scored waits for accounts", || async { daemon.logs().contains("waiting for `accounts` to end") }).await;
    env.sink.release();
    eventually(WAIT, "contacts and scored ran", || async {
        completed(&env, "contacts").await == 1 && completed(&env, "scored").await >= 1
    })
    .await;
    let accounts = runs(&env, "accounts").await;
    let done = accounts.iter().find(|(s, _, _)| s == "success").and_then(|(_, _, f)| f.clone()).expect("accounts got through");
    for sync in ["contacts", "scored"] {
        for (status, started, _) in runs(&env, sync).await.iter().filter(|(s, _, _)| s != "skipped") {
            assert!(*started >= done, "{sync} ran ({status}) at {started}, before accounts ended at {done}");
        }
    }
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(WAIT).await, 0, "{}", daemon.logs());
}

#[tokio::test]
async fn a_follower_still_running_when_its_sync_ends_again_runs_once_more() {
    let env = project(StateKind::Sqlite, "").await;
    env.exec("CREATE TABLE acc AS SELECT i AS id, i AS v FROM range(1, 11) r(i)").await;
    env.write_sync("accounts", &sync_header("manual", ""), "SELECT id, v FROM acc");
    env.write_sync("contacts", &sync_header("manual", "after = \"accounts\""), "SELECT id, v FROM t");
    let mut daemon = Daemon::start(env.root(), &[]);
    let base = daemon.base_url().await;
    let token = api_token(&env);
    let http = reqwest::Client::new();
    let run_accounts = || http.post(format!("{base}/api/syncs/accounts/run")).bearer_auth(&token).send();
    // Request 0 is accounts' batch, request 1 contacts': held, so contacts is still running when
    // accounts' second run (nothing changed: no request) ends.
    env.sink.hold_one(1);
    assert_eq!(run_accounts().await.unwrap().status(), 202);
    eventually(WAIT, "contacts holding", || async { env.sink.requests() >= 2 }).await;
    assert_eq!(run_accounts().await.unwrap().status(), 202);
    eventually(WAIT, "accounts' second run", || async { completed(&env, "accounts").await == 2 }).await;
    assert_eq!(completed(&env, "contacts").await, 0, "still held");
    env.sink.release();
    eventually(WAIT, "contacts ran again after its own run", || async { completed(&env, "contacts").await == 2 }).await;
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(WAIT).await, 0, "{}", daemon.logs());
}
