//! The state store's commit path, on SQLite and on Postgres: batches are staged (appended) and
//! folded into `sync_rows` in key order, and whoever reads the state sees staged rows as
//! committed, including rows left staged by a run that died before its fold.

use crate::support;

use sluice::destinations::{Op, RowOutcome};
use sluice::state::{ChangeQuery, Committed, Store, FOLD_MERGE_MAX};
use sqlx::{AnyPool, Row};
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
    let raw = raw_pool(url, root).await;

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
    assert_eq!((planned.len(), planned.get(2)), (3, Some(20)));
    assert_eq!(count(&raw, "sync_rows_staged").await, 3, "a plan writes nothing");
    // ...and a run folds first: the run that staged these rows may have died before its fold.
    let snapshot = store.snapshot("s", true).await.unwrap();
    assert_eq!(snapshot.len(), 3);
    assert_eq!(snapshot.iter().collect::<Vec<_>>(), [(1, 10), (2, 20), (3, 30)]);
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
    let planned: Vec<_> = store.snapshot("s", false).await.unwrap().iter().collect();
    assert_eq!(planned, [(1, 11), (3, 30), (4, 41)]);
    // Another sync's staged rows are not touched by this sync's fold.
    store.commit_batch("other", "run-4", &[item(1, 99, Op::Upsert, &none, r#"[1]"#)]).await.unwrap();
    assert_eq!(store.fold("s").await.unwrap(), 4, "the written entries of `s` folded");
    assert_eq!(store.fold("s").await.unwrap(), 0, "folding twice does nothing");
    let pairs: Vec<_> = store.snapshot("s", true).await.unwrap().iter().collect();
    assert_eq!(pairs, [(1, 11), (3, 30), (4, 41)], "in key order");
    let ids = store.lookup("s", &[1, 4]).await.unwrap();
    assert_eq!(ids[&4].key_json, KEY4, "the stored key is the text committed");
    assert_eq!(ids[&1].destination_id.as_deref(), Some("rec-1"), "a write without a record id keeps the stored one");
    assert_eq!(count(&raw, "sync_rows_staged").await, 1, "only `other`'s entry is still staged");
    assert_eq!(store.snapshot("other", true).await.unwrap().get(1), Some(99));
    // The last row of a page goes: so does the page.
    store.commit_batch("other", "run-5", &[item(1, 0, Op::Delete, &none, r#"[1]"#)]).await.unwrap();
    assert!(store.snapshot("other", true).await.unwrap().is_empty());
    assert_eq!(count(&raw, "sync_row_pages WHERE sync = 'other'").await, 0);

    assert_eq!(store.reset("s").await.unwrap(), 3);
    assert!(store.snapshot("s", true).await.unwrap().is_empty());
    assert_eq!(count(&raw, "sync_row_pages").await, 0, "a reset forgets the packed state too");
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

/// Batches of plain rows (written, no record id, no values logged: most batches of a run) travel
/// in a cheaper form than the others (one string a row); what arrives must be the same.
async fn plain_batches_arrive_as_committed(url: &str, root: &std::path::Path) {
    let store = Store::open(url, root).await.expect("open store");
    let none = written(None);
    // A stored key that begins like the delete marker, and one that needs escapes.
    let dashes = r#"["----------------------------------", 5]"#;
    let batch = [item(1, 10, Op::Upsert, &none, KEY4), item(2, 20, Op::Upsert, &none, dashes), item(3, 30, Op::Upsert, &none, "[3]")];
    store.commit_batch("p", "run-1", &batch).await.unwrap();
    assert_eq!(store.fold("p").await.unwrap(), 3);
    assert_eq!(store.snapshot("p", true).await.unwrap().iter().collect::<Vec<_>>(), [(1, 10), (2, 20), (3, 30)]);
    let stored = store.lookup("p", &[1, 2, 3]).await.unwrap();
    assert_eq!((stored[&1].key_json.as_str(), stored[&2].key_json.as_str()), (KEY4, dashes), "the stored keys are the text committed");
    assert!(stored.values().all(|r| r.destination_id.is_none()));

    // Two answered batches committed at once: an upsert and a delete in one commit.
    store.commit_batch("p", "run-2", &[item(1, 11, Op::Upsert, &none, KEY4), item(3, 0, Op::Delete, &none, "[3]")]).await.unwrap();
    // Only deletes: logged with their operation.
    store.commit_batch("p", "run-3", &[item(2, 0, Op::Delete, &none, dashes)]).await.unwrap();
    let planned: Vec<_> = store.snapshot("p", false).await.unwrap().iter().collect();
    assert_eq!(planned, [(1, 11)], "the deletes are staged with no fingerprint");
    assert_eq!(store.fold("p").await.unwrap(), 3);
    assert_eq!(store.snapshot("p", true).await.unwrap().iter().collect::<Vec<_>>(), [(1, 11)]);
    assert_eq!(store.lookup("p", &[1]).await.unwrap()[&1].key_json, KEY4);

    let log = store.changes("p", &ChangeQuery { limit: 10, ..Default::default() }).await.unwrap();
    let seen: Vec<_> = log.iter().map(|c| (c.run_id.as_str(), c.key.to_string(), c.op.as_str(), c.outcome.as_str())).collect();
    assert_eq!(
        seen,
        [
            ("run-3", dashes.replace(", ", ","), "delete", "written"),
            ("run-2", "[3]".to_string(), "delete", "written"),
            ("run-2", KEY4.to_string(), "upsert", "written"),
            ("run-1", "[3]".to_string(), "upsert", "written"),
            ("run-1", dashes.replace(", ", ","), "upsert", "written"),
            ("run-1", KEY4.to_string(), "upsert", "written"),
        ]
    );
    assert!(log.iter().all(|c| c.destination_id.is_none() && c.error.is_none() && c.fields.is_none()));
    store.close().await;
}

on_both_stores!(sqlite_plain_batches_arrive, postgres_plain_batches_arrive, plain_batches_arrive_as_committed);

/// A bijection that spreads 1, 2, 3, ... over all 128 bits, so the hashes hold zero bytes
/// anywhere and the pages' key ranges have nothing to do with insertion order.
fn scatter(i: u128) -> u128 {
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835).rotate_left(61);
    x ^ (x >> 67)
}

/// What `sync_rows` holds for `sync`, read row by row: the truth the packed pages must equal.
async fn stored_pairs(raw: &AnyPool, sync: &str) -> Vec<(u128, u128)> {
    let rows = sqlx::query("SELECT key_hash, fingerprint FROM sync_rows WHERE sync = $1").bind(sync).fetch_all(raw).await.unwrap();
    let hash = |b: Vec<u8>| u128::from_be_bytes(b.try_into().expect("16-byte hash"));
    let mut pairs: Vec<_> = rows.iter().map(|r| (hash(r.get(0)), hash(r.get(1)))).collect();
    pairs.sort();
    pairs
}

fn sorted(snapshot: sluice::diff::Stored) -> Vec<(u128, u128)> {
    let pairs: Vec<_> = snapshot.iter().collect();
    assert!(pairs.is_sorted(), "a snapshot is in key order");
    pairs
}

async fn raw_pool(url: &str, root: &std::path::Path) -> AnyPool {
    sqlx::any::install_default_drivers();
    let raw_url =
        if url.starts_with("sqlite:") { format!("sqlite://{}?mode=rwc", root.join("state.db").display()) } else { url.to_string() };
    AnyPool::connect(&raw_url).await.unwrap()
}

async fn commit_all(store: &Store, items: Vec<Committed<'_>>) {
    for chunk in items.chunks(20_000) {
        store.commit_batch("big", "run", chunk).await.unwrap();
    }
}

/// The stored state loads from packed pages that each fold keeps equal to `sync_rows`: packed
/// again in SQL after a first sync (more staged rows than `FOLD_MERGE_MAX`), merged in memory
/// after a smaller run. Every pair must come back exactly, whatever bytes the hashes hold.
async fn snapshot_reads_every_page_exactly(url: &str, root: &std::path::Path) {
    let store = Store::open(url, root).await.expect("open store");
    let raw = raw_pool(url, root).await;
    // A first sync over the merge limit, with the extremes and NUL-heavy hashes too.
    let rows = FOLD_MERGE_MAX as u128 + 7;
    let mut pairs: Vec<(u128, u128)> = (1..=rows).map(|i| (scatter(i), scatter(i + (1 << 100)))).collect();
    pairs.extend([(0, u128::MAX), (u128::MAX, 0), (1 << 64, 1), (0x00ff_0000_0000_0000_0000_0000_0000_00ff, 1 << 127)]);
    let keys: Vec<String> = (0..pairs.len() + 1000).map(|i| format!("[{i}]")).collect();
    let none = written(None);
    commit_all(&store, pairs.iter().zip(&keys).map(|((k, f), json)| item(*k, *f, Op::Upsert, &none, json)).collect()).await;
    let snapshot = store.snapshot("big", true).await.unwrap();
    assert_eq!(snapshot.len(), pairs.len());
    let wrong: Vec<_> = pairs.iter().filter(|(k, f)| snapshot.get(*k) != Some(*f)).take(3).collect();
    assert!(wrong.is_empty(), "pairs read back wrong: {wrong:x?}");

    // A later run, merged into the pages: a thousand rows change, a thousand go (the extremes
    // among them), a thousand are new.
    let mut next = Vec::new();
    for (i, (k, _)) in pairs.iter().enumerate().step_by(97).take(1000) {
        next.push(item(*k, scatter(i as u128 + 7), Op::Upsert, &none, &keys[i]));
    }
    let gone = pairs.iter().enumerate().skip(50).step_by(89).filter(|(i, _)| i % 97 != 0).take(996);
    for (i, (k, _)) in gone.chain(pairs.iter().enumerate().rev().take(4)) {
        next.push(item(*k, 0, Op::Delete, &none, &keys[i]));
    }
    for i in 0..1000u128 {
        next.push(item(scatter(rows + 100 + i), i, Op::Upsert, &none, &keys[pairs.len() + i as usize]));
    }
    commit_all(&store, next).await;
    let loaded = sorted(store.snapshot("big", true).await.unwrap());
    let truth = stored_pairs(&raw, "big").await;
    assert_eq!(truth.len(), pairs.len() + 1000 - 1000, "the test's changes reached sync_rows");
    assert!(loaded == truth, "the pages differ from sync_rows after a merge ({} vs {} pairs)", loaded.len(), truth.len());
    raw.close().await;
    store.close().await;
}

on_both_stores!(sqlite_snapshot_reads_every_page_exactly, postgres_snapshot_reads_every_page_exactly, snapshot_reads_every_page_exactly);

/// A store written before the packed pages existed: the migration that adds them packs the
/// rows already there, and the first run reads them.
async fn stores_from_before_pages_are_packed_on_upgrade(url: &str, root: &std::path::Path) {
    let raw = raw_pool(url, root).await;
    let dialect = if url.starts_with("sqlite:") { "sqlite" } else { "postgres" };
    let old = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(format!("migrations/{dialect}")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.as_str() < "0007" {
            std::fs::copy(&path, old.path().join(&name)).unwrap();
        }
    }
    sqlx::migrate::Migrator::new(old.path()).await.unwrap().run(&raw).await.unwrap();
    let pairs: Vec<(u128, u128)> = (1..=3000u128).map(|i| (scatter(i), scatter(i + 5))).collect();
    for (i, (k, f)) in pairs.iter().enumerate() {
        sqlx::query("INSERT INTO sync_rows (sync, key_hash, key_json, fingerprint, updated_at) VALUES ($1, $2, $3, $4, 'then')")
            .bind(if i % 3 == 0 { "other" } else { "s" })
            .bind(k.to_be_bytes().to_vec())
            .bind(format!("[{i}]"))
            .bind(f.to_be_bytes().to_vec())
            .execute(&raw)
            .await
            .unwrap();
    }
    let store = Store::open(url, root).await.expect("the store upgrades");
    for sync in ["s", "other"] {
        let loaded = sorted(store.snapshot(sync, true).await.unwrap());
        assert_eq!(loaded.len(), 1000 + if sync == "s" { 1000 } else { 0 });
        assert!(loaded == stored_pairs(&raw, sync).await, "`{sync}`: the pages hold what sync_rows held");
    }
    raw.close().await;
    store.close().await;
}

on_both_stores!(sqlite_store_is_packed_on_upgrade, postgres_store_is_packed_on_upgrade, stores_from_before_pages_are_packed_on_upgrade);

/// A batch whose transaction is still open when a fold starts, and commits while the fold runs,
/// is never lost (Postgres: its row ids come from a sequence when it inserts, so a later batch
/// can commit before it with larger ids). The fold either waits for it or leaves it staged;
/// it never deletes a staged row it did not fold.
#[tokio::test]
async fn a_batch_committed_while_a_fold_runs_is_not_lost() {
    use sqlx::Connection;
    let schema = PgSchema::create().await;
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(&schema.url(), dir.path()).await.expect("open store"));
    let none = written(None);
    store.commit_batch("s", "run-1", &[item(1, 10, Op::Upsert, &none, "[1]")]).await.unwrap();
    store.fold("s").await.unwrap();

    // Key 2's batch stops inside its transaction, after its row got its id, until `gate` lets go.
    let gate_key = (xxhash_rust::xxh3::xxh3_64(schema.name.as_bytes()) >> 1) as i64;
    schema
        .exec(&format!(
            "CREATE FUNCTION hold_key_2() RETURNS trigger AS $$ BEGIN \
               IF NEW.key_json = '[2]' THEN PERFORM pg_advisory_lock_shared({gate_key}); PERFORM pg_advisory_unlock_shared({gate_key}); END IF; \
               RETURN NEW; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER hold_key_2 AFTER INSERT ON sync_rows_staged FOR EACH ROW EXECUTE FUNCTION hold_key_2();"
        ))
        .await;
    let mut gate = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
    let gate_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut gate).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)").bind(gate_key).execute(&mut gate).await.unwrap();
    // And the sync's page rows are locked, so a fold that got going stops at them.
    let mut pages = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
    let pages_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut pages).await.unwrap();
    sqlx::query("BEGIN").execute(&mut pages).await.unwrap();
    sqlx::query(&format!("SELECT page FROM {}.sync_row_pages WHERE sync = 's' FOR UPDATE", schema.name)).execute(&mut pages).await.unwrap();

    let blocked_by = |pid: i32| {
        let pool = schema.pool.clone();
        async move {
            let sql = "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))";
            sqlx::query_scalar::<_, i32>(sql).bind(pid).fetch_all(&pool).await.unwrap()
        }
    };
    let wait_for = |what: &'static str, pid: i32, n: usize| async move {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let waiting = blocked_by(pid).await;
            if waiting.len() >= n {
                return waiting;
            }
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };

    let slow = tokio::spawn({
        let store = store.clone();
        async move {
            let none = written(None);
            store.commit_batch("s", "run-2", &[item(2, 20, Op::Upsert, &none, "[2]")]).await
        }
    });
    let slow_pid = wait_for("key 2's batch to stop in its trigger", gate_pid, 1).await[0];
    // A later batch commits first, with a larger id.
    store.commit_batch("s", "run-2", &[item(3, 30, Op::Upsert, &none, "[3]")]).await.unwrap();
    let fold = tokio::spawn({
        let store = store.clone();
        async move { store.fold("s").await }
    });
    // The fold waits: for key 2's batch to end, or at the locked pages.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while blocked_by(slow_pid).await.is_empty() && blocked_by(pages_pid).await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for the fold to wait");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    sqlx::query("SELECT pg_advisory_unlock($1)").bind(gate_key).execute(&mut gate).await.unwrap();
    slow.await.unwrap().expect("key 2's batch commits");
    sqlx::query("COMMIT").execute(&mut pages).await.unwrap();
    fold.await.unwrap().expect("the fold");

    store.fold("s").await.unwrap();
    let raw = raw_pool(&schema.url(), dir.path()).await;
    assert_eq!(count(&raw, "sync_rows").await, 3, "key 2 was committed, so it is in the state");
    assert_eq!(sorted(store.snapshot("s", true).await.unwrap()), [(1, 10), (2, 20), (3, 30)]);
    raw.close().await;
    store.close().await;
}
