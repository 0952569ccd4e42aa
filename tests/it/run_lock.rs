//! One run of a sync at a time, whoever starts it: the daemon (its schedule or its API), `sluice
//! run`, `retry` and `reset` by hand; on a SQLite and on a Postgres state store. A run that finds
//! the sync locked sends nothing and says who holds it; a run that loses its lock stops before
//! it commits.

use crate::support;

use std::time::Duration;

use sluice::engine::RunOptions;
use support::daemon::*;
use support::{keys_of, sluice_cli, StateKind};

const WAIT: Duration = Duration::from_secs(20);

fn output(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Each of the 30 rows of `project`'s model reached the sink exactly once.
fn delivered_once(env: &support::Env) {
    let keys = keys_of(&env.sink.rows());
    let mut unique = keys.clone();
    unique.dedup();
    assert_eq!((keys.len(), unique.len()), (30, 30), "every row once: {keys:?}");
}

/// A project with a sync `people` of 30 rows in batches of 10, whose first batch the
/// destination holds (until `release`): the run that sends it holds the sync meanwhile.
async fn people(state: StateKind) -> support::Env {
    let env = project(state, "max_batch_rows = 10").await;
    env.write_sync("people", "destination = \"hook\"\nprimary_key = \"id\"", "SELECT id, v FROM t");
    env.sink.hold_one(0);
    env
}

async fn cli_commands_beside_a_daemon_run_send_nothing(state: StateKind) {
    // The daemon's first batch waits at the destination: its run holds the sync meanwhile.
    let env = people(state).await;
    let mut daemon = Daemon::start(env.root(), &[]);
    let base = daemon.base_url().await;
    let http = reqwest::Client::new();
    assert_eq!(http.post(format!("{base}/api/syncs/people/run")).bearer_auth(api_token(&env)).send().await.unwrap().status(), 202);
    eventually(WAIT, "the daemon's run is sending", || async { env.sink.requests() >= 1 }).await;

    for command in ["run", "retry", "reset"] {
        let out = sluice_cli(env.root(), &[command, "people"], &[]).await;
        let text = output(&out);
        assert_eq!(out.status.code(), Some(1), "`sluice {command}` beside the daemon's run: {text}");
        assert!(text.contains("`people` is running already, started by an API request to the daemon (pid"), "{text}");
    }
    assert_eq!(env.sink.requests(), 1, "nothing but the daemon's batch reached the destination");
    env.sink.release();
    eventually(WAIT, "the daemon's run ends", || async { completed(&env, "people").await == 1 }).await;
    // Recorded is not yet over: the run keeps the sync's lock through its alerts and report, and
    // lets go before the daemon logs its end.
    eventually(WAIT, "the daemon logs the run's end", || async { daemon.logs().contains("run finished") }).await;
    let history = runs(&env, "people").await;
    assert_eq!(history.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["success"], "no run was marked interrupted");
    delivered_once(&env);

    // With the daemon's run over, a run by hand is welcome, and has nothing to send.
    let out = sluice_cli(env.root(), &["run", "people"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output(&out));
    delivered_once(&env);
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(WAIT).await, 0, "{}", daemon.logs());
}

async fn a_daemon_run_beside_a_cli_run_is_skipped_and_counted(state: StateKind) {
    let env = people(state).await;
    let mut daemon = Daemon::start(env.root(), &[]);
    let base = daemon.base_url().await;
    let cli = {
        let root = env.root().to_path_buf();
        tokio::spawn(async move { sluice_cli(&root, &["run", "people"], &[]).await })
    };
    eventually(WAIT, "the CLI run is sending", || async { env.sink.requests() >= 1 }).await;
    let http = reqwest::Client::new();
    assert_eq!(http.post(format!("{base}/api/syncs/people/run")).bearer_auth(api_token(&env)).send().await.unwrap().status(), 202);
    let skipped = || async {
        let text = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        samples(&text).iter().any(|(n, v)| n == "sluice_skipped_ticks_total{sync=\"people\"}" && *v == 1.0)
    };
    eventually(WAIT, "the daemon's run skipped and counted", skipped).await;
    assert!(daemon.logs().contains("`sluice run` (pid"), "the daemon says who holds the sync: {}", daemon.logs());
    assert_eq!(env.sink.requests(), 1, "the daemon sent nothing");
    env.sink.release();
    let out = cli.await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output(&out));
    delivered_once(&env);
    assert_eq!(runs(&env, "people").await.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["success"]);
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(WAIT).await, 0, "{}", daemon.logs());
}

/// A run whose lock goes away under it commits nothing more and fails saying so; the next run
/// sends what it did not commit.
async fn a_run_that_loses_its_lock_stops_before_committing(state: StateKind) {
    let env = people(state).await;
    let tag = format!("lock-test-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let opts = RunOptions { started_by: tag.clone(), ..Default::default() };
    let take_the_lock_away = async {
        eventually(WAIT, "the run is sending", || async { env.sink.requests() >= 1 }).await;
        match &env.pg_state {
            // The lock's connection dies (a failover, a network cut, an admin).
            Some(pg) => {
                let sql = "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE $1";
                let killed: i64 = sqlx::query_scalar(sql).bind(format!("sluice: {tag}%")).fetch_one(&pg.pool).await.unwrap();
                assert_eq!(killed, 1, "the lock's own connection");
            }
            // Someone removes the state directory's lock files.
            None => std::fs::remove_dir_all(env.root().join(".sluice/state.db.locks")).unwrap(),
        }
        env.sink.release();
    };
    let (report, ()) = tokio::join!(env.run_with("people", opts), take_the_lock_away);
    let error = report.error.clone().unwrap_or_default();
    assert!(report.failed() && error.contains("lost the lock of `people`"), "{report:?}");
    let history = runs(&env, "people").await;
    assert_eq!(history.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["failed"]);
    // Nothing was committed: the next run sends every row (the one batch the destination took
    // before the lock was found gone arrives twice: it could not be recorded).
    let again = env.run("people").await;
    assert_eq!((again.error.as_deref(), again.written), (None, 30), "{again:?}");
}

macro_rules! on_both_stores {
    ($check:ident, $sqlite:ident, $postgres:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            $check(StateKind::Sqlite).await;
        }
        #[tokio::test]
        async fn $postgres() {
            $check(StateKind::Postgres).await;
        }
    };
}

on_both_stores!(cli_commands_beside_a_daemon_run_send_nothing, cli_beside_the_daemon_sqlite, cli_beside_the_daemon_postgres);
on_both_stores!(a_daemon_run_beside_a_cli_run_is_skipped_and_counted, daemon_beside_the_cli_sqlite, daemon_beside_the_cli_postgres);
on_both_stores!(a_run_that_loses_its_lock_stops_before_committing, lost_lock_sqlite, lost_lock_postgres);
