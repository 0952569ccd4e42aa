//! Cursor-incremental syncs on both sources and both state stores: a run reads only the rows
//! past the stored high-water mark, still diffs them, never treats unread rows as removed, and
//! the mark moves only after a run that committed what it read.

use crate::support;

use sluice::engine::RunOptions;
use sluice::state::RunStatus;
use support::{keys_of, sluice_cli, Env, SourceKind, StateKind, MATRIX};

/// `accounts` with 5 rows updated one minute apart; a zone-aware cursor on Postgres, a plain
/// timestamp on DuckDB (both kinds of binding are exercised).
async fn project(source: SourceKind, state: StateKind, extra: &str) -> Env {
    let env = Env::with_sink_settings(source, state, extra).await;
    let ts = if source == SourceKind::Postgres { "TIMESTAMPTZ" } else { "TIMESTAMP" };
    let at = |t: &str| at(source, t);
    env.exec(&format!(
        "CREATE TABLE accounts (id INTEGER, plan TEXT, updated_at {ts});
         INSERT INTO accounts VALUES (1, 'free', {}), (2, 'free', {}), (3, 'team', {}), (4, 'team', {}), (5, 'pro', {});",
        at("00:01:00"),
        at("00:02:00"),
        at("00:03:00"),
        at("00:04:00"),
        at("00:05:00.250")
    ))
    .await;
    env.write_sync(
        "accounts",
        "primary_key = \"id\"\ncursor = \"updated_at\"\n[mapping]\nid = \"id\"\nplan = \"plan\"",
        "SELECT id, plan, updated_at FROM accounts",
    );
    env
}

/// A time on 2026-01-01 as a literal: in UTC on Postgres whatever the server's zone.
fn at(source: SourceKind, time: &str) -> String {
    let zone = if source == SourceKind::Postgres { "+00" } else { "" };
    format!("'2026-01-01 {time}{zone}'")
}

#[tokio::test]
async fn runs_read_only_rows_past_the_cursor_and_still_diff_them() {
    for (source, state) in MATRIX {
        let env = project(source, state, "").await;
        let what = format!("{source:?} source, {state:?} state");

        let first = env.run("accounts").await;
        assert_eq!((first.status, first.rows_read, first.written), (RunStatus::Success, 5, 5), "{what}: {:?}", first.error);
        let cursor = first.cursor.clone().expect("a cursor report");
        assert!(cursor.after.is_none() && cursor.full_read.is_some(), "{what}: the first run reads everything: {cursor:?}");
        assert_eq!(cursor.next.as_deref(), Some("2026-01-01T00:05:00.250Z"), "{what}");
        env.sink.take();

        // The row at the mark is read again (a row written later with the same value must not
        // be missed) and, unchanged, sends nothing.
        let idle = env.run("accounts").await;
        assert_eq!((idle.rows_read, idle.counts.unchanged, idle.written), (1, 1, 0), "{what}: only the row at the cursor");
        assert_eq!(idle.cursor.as_ref().and_then(|c| c.after.as_deref()), Some("2026-01-01T00:05:00.250Z"), "{what}");

        // One row really changed; another only touched (its mapped fields are the same).
        env.exec(&format!(
            "UPDATE accounts SET plan = 'pro', updated_at = {} WHERE id = 2;
             UPDATE accounts SET updated_at = {} WHERE id = 3;
             DELETE FROM accounts WHERE id = 4;",
            at(source, "00:10:00"),
            at(source, "00:11:00")
        ))
        .await;
        let third = env.run("accounts").await;
        assert_eq!((third.rows_read, third.counts.changed, third.counts.unchanged), (3, 1, 2), "{what}");
        assert_eq!(third.counts.removed, 0, "{what}: rows not read have not left the model");
        assert_eq!(keys_of(&env.sink.take()), ["{\"id\":2}"], "{what}: the touched row sends nothing");
        assert_eq!(third.cursor.and_then(|c| c.next).as_deref(), Some("2026-01-01T00:11:00Z"), "{what}");

        // --full-resync ignores the cursor once: every row is read and sent.
        let full = env.run_with("accounts", RunOptions { full_resync: true, ..Default::default() }).await;
        assert_eq!((full.rows_read, full.written), (4, 4), "{what}");
        assert_eq!(full.cursor.and_then(|c| c.full_read), Some("--full-resync"), "{what}");
        let after = env.run("accounts").await;
        assert_eq!(after.rows_read, 1, "{what}: the cursor is back in use after a full resync");
    }
}

#[tokio::test]
async fn the_cursor_stays_put_when_a_run_fails_and_moves_when_the_model_changes() {
    let env = project(SourceKind::DuckDb, StateKind::Sqlite, "max_attempts = 1").await;
    env.run("accounts").await;
    env.sink.take();

    env.exec(&format!("UPDATE accounts SET plan = 'enterprise', updated_at = {} WHERE id = 1", at(SourceKind::DuckDb, "00:30:00"))).await;
    env.sink.fail_next(503, None);
    let failed = env.run("accounts").await;
    assert_eq!(failed.status, RunStatus::Failed);
    assert!(failed.cursor.as_ref().is_some_and(|c| c.next.is_none()), "a failed run stores no new mark");
    let again = env.run("accounts").await;
    assert_eq!((again.rows_read, again.written), (2, 1), "the next run reads the unsent row again (and the one at the mark)");
    assert_eq!(keys_of(&env.sink.take()), ["{\"id\":1}"]);

    // An edited model reads everything once: the old mark says nothing about the new model.
    env.write_sync(
        "accounts",
        "primary_key = \"id\"\ncursor = \"updated_at\"\n[mapping]\nid = \"id\"\nplan = \"plan\"",
        "SELECT id, upper(plan) AS plan, updated_at FROM accounts",
    );
    let edited = env.run("accounts").await;
    assert_eq!((edited.rows_read, edited.written), (5, 5), "{:?}", edited.cursor);
}

#[tokio::test]
async fn check_refuses_a_text_cursor_and_a_cursor_in_mirror_mode() {
    let env = project(SourceKind::DuckDb, StateKind::Sqlite, "").await;
    env.write_sync("accounts", "primary_key = \"id\"\ncursor = \"plan\"", "SELECT id, plan, updated_at FROM accounts");
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("syncs/accounts.sql:3: cursor column `plan` has type VARCHAR"), "{text}");

    env.write_sync("accounts", "primary_key = \"id\"\nmode = \"mirror\"\ncursor = \"updated_at\"", "SELECT * FROM accounts");
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("syncs/accounts.sql:4: a cursor sync cannot use mode = \"mirror\""), "{text}");
}

#[tokio::test]
async fn a_rejected_row_whose_hold_ran_out_is_read_again() {
    let env = project(SourceKind::DuckDb, StateKind::Sqlite, "").await;
    env.write_sync(
        "accounts",
        "primary_key = \"id\"\ncursor = \"updated_at\"\nretry_rejected_after = \"1ms\"\n[mapping]\nid = \"id\"\nplan = \"plan\"",
        "SELECT id, plan, updated_at FROM accounts",
    );
    env.sink.reject(serde_json::json!({"id": 2}));
    let first = env.run("accounts").await;
    assert_eq!((first.written, first.rejected), (4, 1));
    env.sink.clear_rejects();
    let second = env.run("accounts").await;
    let cursor = second.cursor.clone().unwrap_or_default();
    assert_eq!(cursor.full_read, Some("a rejected row's retry_rejected_after ran out"), "{cursor:?}");
    assert_eq!((second.rows_read, second.written), (5, 1), "row 2 (behind the mark) is read and sent again");
}
