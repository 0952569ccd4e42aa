//! The state store's commit path, on SQLite and on Postgres: batches are staged (appended) and
//! folded into `sync_rows` in key order, and whoever reads the state sees staged rows as
//! committed, including rows left staged by a run that died before its fold.

mod support;

use sluice::destinations::{Op, RowOutcome};
use sluice::state::{ChangeQuery, Committed, Store, SNAPSHOT_PAGE};
use sqlx::AnyPool;
use support::*;

fn written(id: Option<&str>) -> RowOutcome {
    RowOutcome::Written { destination_id: id.map(str::to_string) }
}

fn item<'a>(key: u128, fingerprint: u128, op: Op, outcome: &'a RowOutcome, key_json: &'a str) -> Committed<'a> {
    Committed { key_hash: key, key_json, fingerprint, op, outcome, shown_key: key_json, fields_json: None }
}

/// A key whose JSON needs escaping on its way through the packed batch.
const KEY4: &str = r#"["O'Brien \"é\" \\ 4"]"#;

async fn count(pool: &AnyPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(pool).await.unwrap()
}

async fn staged_rows_fold_in_and_every_reader_sees_them(url: &str, root: &std::path::Path) {
    let store = Store::open(url, root).await.expect("open store");
    sqlx::any::install_default_drivers();
    let raw_url = if url.starts_with("sqlite:") { format!("sqlite://{}", root.join("state.db").display()) } else { url.to_string() };
    let raw = AnyPool::connect(&raw_url).await.unwrap();

    let (a, none, bad) = (written(Some("rec-1")), written(None), RowOutcome::Rejected("bad email".into()));
    store
        .commit_batch(
            "s",
            "run-1",
            &[item(1, 10, Op::Upsert, &a, r#"[1]"#), item(2, 20, Op::Upsert, &none, r#"[2]"#), item(3, 30, Op::Upsert, &none, r#"[3]"#)],
        )
        .await
        .unwrap();
    assert_eq!(count(&raw, "sync_rows_staged").await, 3, "a batch is staged, not written into sync_rows");
    assert_eq!(count(&raw, "sync_rows").await, 0);

    // A plan reads them without writing (it lays the staged rows over `sync_rows`)...
    let planned = store.snapshot("s", false).await.unwrap();
    assert_eq!((planned.len(), planned[&2]), (3, 20));
    assert_eq!(count(&raw, "sync_rows_staged").await, 3, "a plan writes nothing");
    // ...and a run folds first: the run that staged these rows may have died before its fold.
    let snapshot = store.snapshot("s", true).await.unwrap();
    assert_eq!(snapshot.len(), 3);
    assert_eq!((snapshot[&1], snapshot[&2], snapshot[&3]), (10, 20, 30));
    assert_eq!((count(&raw, "sync_rows").await, count(&raw, "sync_rows_staged").await), (3, 0));

    // Next run: key 1 changes (no new record id: the stored one stays), key 2 is deleted, key 3
    // is rejected (its state stays), key 4 is new. Key 4 is then staged again before any fold
    // (runs never do that: each folds first); the newest entry wins.
    store
        .commit_batch(
            "s",
            "run-2",
            &[
                item(1, 11, Op::Upsert, &none, r#"[1]"#),
                item(2, 0, Op::Delete, &none, r#"[2]"#),
                item(3, 31, Op::Upsert, &bad, r#"[3]"#),
                item(4, 40, Op::Upsert, &none, KEY4),
            ],
        )
        .await
        .unwrap();
    let fields = r#"{"note":"line\nbreak"}"#;
    let logged = Committed { fields_json: Some(fields), ..item(4, 41, Op::Upsert, &none, KEY4) };
    store.commit_batch("s", "run-3", &[logged]).await.unwrap();
    // The change log has every operation with its outcome, newest first, text unchanged.
    let log = store.changes("s", &ChangeQuery { limit: 10, ..Default::default() }).await.unwrap();
    let seen: Vec<_> = log.iter().map(|c| (c.run_id.as_str(), c.key.to_string(), c.op.as_str(), c.outcome.as_str())).collect();
    assert_eq!(
        seen,
        [
            ("run-3", KEY4.to_string(), "upsert", "written"),
            ("run-2", KEY4.to_string(), "upsert", "written"),
            ("run-2", "[3]".to_string(), "upsert", "rejected"),
            ("run-2", "[2]".to_string(), "delete", "written"),
            ("run-2", "[1]".to_string(), "upsert", "written"),
            ("run-1", "[3]".to_string(), "upsert", "written"),
            ("run-1", "[2]".to_string(), "upsert", "written"),
            ("run-1", "[1]".to_string(), "upsert", "written"),
        ]
    );
    assert_eq!((log[2].error.as_deref(), log[7].destination_id.as_deref()), (Some("bad email"), Some("rec-1")));
    assert_eq!(log[0].fields.as_ref().map(|f| f.to_string()), Some(fields.to_string()));
    // What a plan sees before the fold is what the fold makes.
    let mut planned: Vec<_> = store.snapshot("s", false).await.unwrap().into_iter().collect();
    planned.sort();
    assert_eq!(planned, [(1, 11), (3, 30), (4, 41)]);
    // Another sync's staged rows are not touched by this sync's fold.
    store.commit_batch("other", "run-4", &[item(1, 99, Op::Upsert, &none, r#"[1]"#)]).await.unwrap();
    assert_eq!(store.fold("s").await.unwrap(), 4, "the written entries of `s` folded");
    assert_eq!(store.fold("s").await.unwrap(), 0, "folding twice does nothing");
    let snapshot = store.snapshot("s", true).await.unwrap();
    let mut pairs: Vec<_> = snapshot.into_iter().collect();
    pairs.sort();
    assert_eq!(pairs, [(1, 11), (3, 30), (4, 41)]);
    let ids = store.lookup("s", &[1, 4]).await.unwrap();
    assert_eq!(ids[&4].key_json, KEY4, "the stored key is the text committed");
    assert_eq!(ids[&1].destination_id.as_deref(), Some("rec-1"), "a write without a record id keeps the stored one");
    assert_eq!(count(&raw, "sync_rows_staged").await, 1, "only `other`'s entry is still staged");
    assert_eq!(store.snapshot("other", true).await.unwrap()[&1], 99);

    assert_eq!(store.reset("s").await.unwrap(), 3);
    assert!(store.snapshot("s", true).await.unwrap().is_empty());
    raw.close().await;
    store.close().await;
}

/// One test per store kind: `$check(url, root)` against a SQLite file in a temporary directory
/// and against a Postgres schema of its own.
macro_rules! on_both_stores {
    ($sqlite:ident, $postgres:ident, $check:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            let dir = tempfile::tempdir().unwrap();
            $check("sqlite://state.db", dir.path()).await;
        }

        #[tokio::test]
        async fn $postgres() {
            let schema = PgSchema::create().await;
            let dir = tempfile::tempdir().unwrap();
            $check(&schema.url(), dir.path()).await;
        }
    };
}

on_both_stores!(sqlite_store_stages_and_folds, postgres_store_stages_and_folds, staged_rows_fold_in_and_every_reader_sees_them);

/// A bijection that spreads 1, 2, 3, ... over all 128 bits, so the hashes hold zero bytes
/// anywhere and the pages' key ranges have nothing to do with insertion order.
fn scatter(i: u128) -> u128 {
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835).rotate_left(61);
    x ^ (x >> 67)
}

/// The stored state loads in pages packed by the database into one blob each: every pair must
/// come back exactly, across page bounds, whatever bytes the hashes hold.
async fn snapshot_reads_every_page_exactly(url: &str, root: &std::path::Path) {
    let store = Store::open(url, root).await.expect("open store");
    // Two full pages and a partial one; the extremes and NUL-heavy hashes too.
    let rows = 2 * SNAPSHOT_PAGE as u128 + 7;
    let mut pairs: Vec<(u128, u128)> = (1..=rows).map(|i| (scatter(i), scatter(i + (1 << 100)))).collect();
    pairs.extend([(0, u128::MAX), (u128::MAX, 0), (1 << 64, 1), (0x00ff_0000_0000_0000_0000_0000_0000_00ff, 1 << 127)]);
    let keys: Vec<String> = (0..pairs.len()).map(|i| format!("[{i}]")).collect();
    let none = written(None);
    for chunk in pairs.iter().zip(&keys).collect::<Vec<_>>().chunks(20_000) {
        let items: Vec<_> = chunk.iter().map(|((k, f), json)| item(*k, *f, Op::Upsert, &none, json)).collect();
        store.commit_batch("big", "run-1", &items).await.unwrap();
    }
    let snapshot = store.snapshot("big", true).await.unwrap();
    assert_eq!(snapshot.len(), pairs.len());
    let wrong: Vec<_> = pairs.iter().filter(|(k, f)| snapshot.get(k) != Some(f)).take(3).collect();
    assert!(wrong.is_empty(), "pairs read back wrong: {wrong:x?}");
    store.close().await;
}

on_both_stores!(sqlite_snapshot_reads_every_page_exactly, postgres_snapshot_reads_every_page_exactly, snapshot_reads_every_page_exactly);
