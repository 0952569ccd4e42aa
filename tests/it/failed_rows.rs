//! Failed rows: `sluice failures`, held rejected rows, `retry_rejected_after`, `sluice retry`.

use crate::support;

use serde_json::{json, Value};
use sluice::state::RunStatus;
use support::{Env, SourceKind, StateKind};

async fn project(header_extra: &str) -> Env {
    let env = Env::with_sink_settings(SourceKind::DuckDb, StateKind::Sqlite, "max_attempts = 2").await;
    env.exec("CREATE TABLE t AS SELECT i AS id, 'v' || i AS v FROM range(1, 6) r(i)").await;
    env.write_sync("f", &format!("destination = \"hook\"\nprimary_key = \"id\"\n{header_extra}"), "SELECT id, v FROM t");
    env
}

/// The CLI, on a blocking thread so the sink (on this runtime) can answer it.
async fn sluice(env: &Env, args: &[&str]) -> (i32, String) {
    let out = support::sluice_cli(env.root(), args, &[]).await;
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn failures_lists_rejected_and_pending_rows_with_attempts() {
    let env = project("").await;
    env.sink.reject(json!({"id": 2}));
    env.run("f").await;
    // The next run's batch fails as a whole, twice (both attempts), twice: its rows stay pending.
    env.exec("UPDATE t SET v = 'changed' WHERE id IN (3, 4)").await;
    for _ in 0..2 {
        env.sink.fail_next(503, None);
        env.sink.fail_next(503, None);
        assert_eq!(env.run("f").await.status, RunStatus::Failed);
    }
    let (code, text) = sluice(&env, &["failures", "f"]).await;
    assert_eq!(code, 0);
    assert!(text.contains("f: 1 rejected (held until they change or `sluice retry f`), 2 to retry on the next run"), "{text}");
    assert!(text.contains("{\"id\":2} rejected  1 attempt(s)") && text.contains("email is not valid"), "{text}");
    let (_, out) = sluice(&env, &["failures", "f", "--json"]).await;
    let parsed: Value = serde_json::from_str(&out).unwrap();
    let rows = parsed["syncs"][0]["rows"].as_array().unwrap();
    let pending: Vec<&Value> = rows.iter().filter(|r| r["kind"] == "retryable").collect();
    assert_eq!(pending.len(), 2, "{parsed}");
    assert!(pending.iter().all(|r| r["attempts"] == 2 && r["message"].as_str().unwrap().contains("503")), "{parsed}");
    assert!(rows.iter().all(|r| r["first_seen"].is_string() && r["last_seen"].is_string()));
    // Pending rows go out on the next run that works; the held rejected row does not.
    env.sink.take();
    let healed = env.run("f").await;
    assert_eq!((healed.written, healed.held), (2, 1));
}

#[tokio::test]
async fn a_held_row_is_sent_again_after_retry_rejected_after_or_on_retry() {
    let env = project("retry_rejected_after = \"1h\"").await;
    env.sink.reject(json!({"id": 5}));
    assert_eq!(env.run("f").await.rejected, 1);
    assert_eq!(env.run("f").await.held, 1, "held within the hour");
    // An hour and a bit later (the rejection's time, moved back).
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", env.root().join(".sluice/state.db").display())).await.unwrap();
    sqlx::query("UPDATE row_errors SET last_seen = '2020-01-01T00:00:00.000Z'").execute(&pool).await.unwrap();
    pool.close().await;
    let later = env.run("f").await;
    assert_eq!((later.held, later.rejected), (0, 1), "sent (and refused) again");
    env.sink.clear_rejects();
    let (code, text) = sluice(&env, &["retry", "f"]).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("1 written"), "{text}");
    let (_, text) = sluice(&env, &["failures", "f"]).await;
    assert!(text.contains("f: no failed rows"), "{text}");
}

#[tokio::test]
async fn the_project_wide_hold_applies_when_the_sync_sets_none() {
    let env = project("").await;
    let config = env.root().join("sluice.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\n[retry]\nrejected_after = \"0s\"\n")).unwrap();
    env.sink.reject(json!({"id": 1}));
    assert_eq!(env.run("f").await.rejected, 1);
    let again = env.run("f").await;
    assert_eq!((again.held, again.rejected), (0, 1), "a zero hold sends rejected rows every run");
}

#[tokio::test]
async fn a_rejected_change_that_is_undone_settles_its_error() {
    let env = project("").await;
    env.run("f").await;
    env.sink.reject(json!({"id": 3}));
    env.exec("UPDATE t SET v = 'bad' WHERE id = 3").await;
    assert_eq!(env.run("f").await.rejected, 1);
    // The model goes back to what the destination holds: nothing to send, nothing failed.
    env.exec("UPDATE t SET v = 'v3' WHERE id = 3").await;
    let back = env.run("f").await;
    assert_eq!((back.written, back.held, back.status), (0, 0, RunStatus::Success));
    let (_, text) = sluice(&env, &["failures", "f"]).await;
    assert!(text.contains("f: no failed rows"), "{text}");
}
