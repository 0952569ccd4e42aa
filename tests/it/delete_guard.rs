//! The delete guard: mirror runs that would remove too much send nothing unless allowed.

use crate::support;

use sluice::engine::RunOptions;
use sluice::state::RunStatus;
use support::{Env, SourceKind, StateKind};

async fn mirror(header_extra: &str, project_extra: &str) -> Env {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    if !project_extra.is_empty() {
        let path = env.root().join("sluice.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(path, format!("{text}\n{project_extra}\n")).unwrap();
    }
    env.exec("CREATE TABLE t AS SELECT i AS id FROM range(1, 11) r(i)").await;
    env.write_sync("m", &format!("destination = \"hook\"\nprimary_key = \"id\"\nmode = \"mirror\"\n{header_extra}"), "SELECT id FROM t");
    let first = env.run("m").await;
    assert_eq!((first.status, first.written), (RunStatus::Success, 10));
    env
}

/// The CLI, on a blocking thread so the sink (on this runtime) can answer it.
async fn sluice(env: &Env, args: &[&str]) -> std::process::Output {
    support::sluice_cli(env.root(), args, &[]).await
}

async fn stored(env: &Env) -> i64 {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", env.root().join(".sluice/state.db").display())).await.unwrap();
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM sync_rows").fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

#[tokio::test]
async fn removing_more_than_half_sends_nothing_until_allowed() {
    let env = mirror("", "").await;
    env.exec("DELETE FROM t WHERE id > 4; INSERT INTO t VALUES (11)").await;
    let requests = env.sink.requests();
    let stopped = env.run("m").await;
    assert_eq!(stopped.status, RunStatus::Failed);
    let error = stopped.error.unwrap();
    assert!(
        error.contains("would remove 6 of 10 row(s) (60%), more than max_delete_pct = 50") && error.contains("--allow-deletes"),
        "{error}"
    );
    assert_eq!(env.sink.requests(), requests, "nothing was sent, not even the new row");
    assert_eq!(stored(&env).await, 10);
    let plan = env.plan("m").await;
    assert!(plan.warnings.iter().any(|w| w.contains("a real run would stop here")), "{:?}", plan.warnings);

    let allowed = env.run_with("m", RunOptions { allow_deletes: true, ..Default::default() }).await;
    assert_eq!((allowed.status, allowed.written), (RunStatus::Success, 7), "6 deletes and the new row");
    assert_eq!(stored(&env).await, 5);
}

#[tokio::test]
async fn an_empty_model_never_wipes_the_destination_without_confirmation() {
    let env = mirror("max_delete_pct = 100", "").await;
    env.exec("DELETE FROM t").await;
    let stopped = env.run("m").await;
    assert!(stopped.error.as_deref().unwrap_or("").contains("the model returned no rows"), "{:?}", stopped.error);
    assert_eq!(stored(&env).await, 10);
    // The CLI says the same, exits 1, and lets it through with --allow-deletes.
    let out = sluice(&env, &["run", "m"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("delete guard"), "{}", String::from_utf8_lossy(&out.stdout));
    let out = sluice(&env, &["run", "m", "--allow-deletes"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(stored(&env).await, 0);
}

#[tokio::test]
async fn limits_come_from_the_sync_or_the_project() {
    let env = mirror("max_deletes = 2", "").await;
    env.exec("DELETE FROM t WHERE id <= 3").await;
    assert!(env.run("m").await.error.unwrap_or_default().contains("more than max_deletes = 2"));

    let env = mirror("", "[delete_guard]\nmax_delete_pct = 10").await;
    env.exec("DELETE FROM t WHERE id <= 2").await;
    assert!(env.run("m").await.error.unwrap_or_default().contains("2 of 10 row(s) (20%), more than max_delete_pct = 10"));

    // The sync's own limit wins over the project's.
    let env = mirror("max_delete_pct = 30", "[delete_guard]\nmax_delete_pct = 10").await;
    env.exec("DELETE FROM t WHERE id <= 2").await;
    assert_eq!(env.run("m").await.status, RunStatus::Success);
}
