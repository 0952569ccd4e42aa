//! `diff = "warehouse"`: the diff runs in the source database against a table sluice keeps there
//! (Postgres, MariaDB; DuckDB: a file of sluice's own beside it). Only changed rows leave the database; the table advances only for rows the
//! destination accepted; removed rows are deleted or cleared once; duplicates fail the run with
//! nothing sent; switching to it, a full resync and `sluice reset` re-send everything; `check`
//! says what to GRANT; where it cannot work it is refused at the header's line.

use crate::support;

use serde_json::json;
use sluice::engine::RunOptions;
use sluice::state::RunStatus;
use sqlx::Row;
use support::{keys_of, sluice_cli, Env, SourceKind, StateKind};

const HEADER: &str = "destination = \"hook\"\nprimary_key = \"id\"\ndiff = \"warehouse\"";
const MAPPING: &str = "[mapping]\nid = \"id\"\nemail = \"email\"";

/// A project over a Postgres schema of its own, sluice's tables in `<schema>_state` (dropped
/// with it).
async fn pg_env() -> Env {
    let env = Env::new(SourceKind::Postgres, StateKind::Sqlite).await;
    let path = env.root().join("sluice.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    let schema = state_schema(&env);
    std::fs::write(&path, config.replace("[sources.wh]\n", &format!("[sources.wh]\nstate_schema = \"{schema}\"\n"))).unwrap();
    env
}

fn state_schema(env: &Env) -> String {
    format!("{}_state", env.pg_source.as_ref().expect("a Postgres source").name)
}

/// `people` with `n` rows, and a sync `people` over it diffing in the warehouse.
async fn project(n: i64, header_extra: &str) -> Env {
    let env = pg_env().await;
    env.exec(&format!(
        "CREATE TABLE people (id BIGINT PRIMARY KEY, email TEXT, note TEXT);
         INSERT INTO people SELECT i, 'p' || i || '@x.com', 'n' FROM generate_series(1, {n}) i;"
    ))
    .await;
    env.write_sync("people", &format!("{HEADER}\n{header_extra}\n{MAPPING}"), "SELECT id, email, note FROM people");
    env
}

/// The rows of the sync's table in the source: (sluice_key, fingerprint).
async fn table(env: &Env, name: &str) -> Vec<(String, String)> {
    let pg = env.pg_source.as_ref().expect("a Postgres source");
    let sql = format!("SELECT sluice_key, fingerprint FROM \"{}\".\"{name}\" ORDER BY sluice_key", state_schema(env));
    sqlx::query(&sql).fetch_all(&pg.pool).await.unwrap_or_default().iter().map(|r| (r.get(0), r.get(1))).collect()
}

#[tokio::test]
async fn only_changed_rows_leave_the_database_and_the_table_follows_what_was_written() {
    let env = project(1000, "mode = \"mirror\"").await;
    let name = "people";

    let first = env.run(name).await;
    assert_eq!(
        (first.status, first.rows_read, first.counts.added, first.written),
        (RunStatus::Success, 1000, 1000, 1000),
        "{:?}",
        first.error
    );
    assert_eq!(first.warehouse_rows, Some(1000));
    assert_eq!(table(&env, name).await.len(), 1000, "every written row is recorded in the source");
    env.sink.take();

    let idle = env.run(name).await;
    assert_eq!((idle.rows_read, idle.counts.unchanged, idle.written, idle.warehouse_rows), (1000, 1000, 0, Some(0)), "{:?}", idle.error);
    assert!(env.sink.rows().is_empty());

    // 10 changed, 5 added, 3 removed; a column the mapping does not read changes too, which
    // changes nothing sent.
    env.exec(
        "UPDATE people SET email = 'new' || id || '@x.com' WHERE id <= 10;
         UPDATE people SET note = 'touched' WHERE id BETWEEN 11 AND 500;
         INSERT INTO people SELECT i, 'p' || i || '@x.com', 'n' FROM generate_series(1001, 1005) i;
         DELETE FROM people WHERE id IN (998, 999, 1000);",
    )
    .await;
    let next = env.run(name).await;
    assert_eq!(
        (next.counts.added, next.counts.changed, next.counts.removed, next.counts.unchanged, next.rows_read),
        (5, 10, 3, 987, 1002),
        "{:?}",
        next.error
    );
    assert_eq!(next.warehouse_rows, Some(18), "only the changed rows left the database");
    let sent = env.sink.take();
    assert_eq!(sent.iter().filter(|r| r.op == "upsert").count(), 15);
    let mut deleted: Vec<String> = sent.iter().filter(|r| r.op == "delete").map(|r| r.key.to_string()).collect();
    deleted.sort();
    assert_eq!(deleted, vec![json!({"id": 1000}).to_string(), json!({"id": 998}).to_string(), json!({"id": 999}).to_string()]);
    let rows = table(&env, name).await;
    assert_eq!(rows.len(), 1002);
    assert!(rows.iter().all(|(k, _)| k != "[998]"), "deleted rows leave the table");
    assert!(env.run(name).await.warehouse_rows == Some(0), "and then all is quiet");
}

#[tokio::test]
async fn rejected_rows_are_not_recorded_and_come_back() {
    let env = project(20, "").await;
    let name = "people";
    env.sink.reject(json!({"id": 7}));
    let first = env.run(name).await;
    assert_eq!((first.written, first.rejected), (19, 1), "{:?}", first.error);
    assert!(!table(&env, name).await.iter().any(|(k, _)| k == "[7]"), "a rejected row is not recorded as held");
    env.sink.clear_rejects();
    env.sink.take();
    let retry = env.run_with(name, RunOptions { retry_rejected: true, ..Default::default() }).await;
    assert_eq!((retry.warehouse_rows, retry.written), (Some(1), 1), "only the rejected row comes back: {:?}", retry.error);
    assert_eq!(keys_of(&env.sink.take()), vec![json!({"id": 7}).to_string()]);
    assert_eq!(table(&env, name).await.len(), 20);
}

#[tokio::test]
async fn duplicate_keys_fail_the_run_with_nothing_sent() {
    let env = project(5, "").await;
    let name = "people";
    assert_eq!(env.run(name).await.written, 5);
    env.sink.take();
    // An exact copy of a row: unchanged against the table, still a duplicate.
    env.exec("ALTER TABLE people DROP CONSTRAINT people_pkey; INSERT INTO people SELECT * FROM people WHERE id = 3;").await;
    let run = env.run(name).await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.clone().unwrap_or_default();
    assert!(error.contains("duplicate primary key") && error.contains("id=3"), "{error}");
    assert!(env.sink.rows().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn switching_to_it_a_full_resync_and_a_reset_resend_every_row() {
    let env = pg_env().await;
    let name = "people";
    env.exec("CREATE TABLE people (id BIGINT, email TEXT); INSERT INTO people SELECT i, 'p' || i FROM generate_series(1, 30) i;").await;
    let local = "destination = \"hook\"\nprimary_key = \"id\"";
    env.write_sync(name, local, "SELECT id, email FROM people");
    assert_eq!(env.run(name).await.written, 30);
    env.write_sync(name, &format!("{local}\ndiff = \"warehouse\""), "SELECT id, email FROM people");
    let plan = env.plan(name).await;
    assert!(plan.config_changed && plan.warnings.iter().any(|w| w.contains("`diff` changed")), "{:?}", plan.warnings);
    assert_eq!(plan.to_send.upsert, 30);
    assert!(plan.warehouse_rows.is_some(), "the plan diffed in the source");
    let pg = env.pg_source.as_ref().unwrap();
    let created: bool =
        sqlx::query_scalar(&format!("SELECT to_regclass('{}.people') IS NOT NULL", state_schema(&env))).fetch_one(&pg.pool).await.unwrap();
    assert!(!created, "a plan writes nothing, not even the sync's table");
    assert_eq!(env.run(name).await.written, 30, "switching is a full resync");
    assert_eq!(env.run(name).await.written, 0);
    let full = env.run_with(name, RunOptions { full_resync: true, ..Default::default() }).await;
    assert_eq!((full.written, full.warehouse_rows), (30, Some(30)), "{:?}", full.error);
    let out = sluice_cli(env.root(), &["reset", name], &[]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(table(&env, name).await.is_empty(), "a reset empties the sync's table in the source");
    assert_eq!(env.run(name).await.written, 30, "and every row is sent again");
}

#[tokio::test]
async fn in_insert_mode_changed_rows_stay_in_the_database() {
    let env = project(10, "mode = \"insert\"").await;
    assert_eq!(env.run("people").await.written, 10);
    env.exec("UPDATE people SET email = 'changed' WHERE id = 1; INSERT INTO people VALUES (11, 'p11@x.com', 'n');").await;
    let run = env.run("people").await;
    assert_eq!(
        (run.counts.added, run.written, run.warehouse_rows),
        (1, 1, Some(1)),
        "insert mode never sends a change: it does not come out"
    );
    assert_eq!(env.run("people").await.warehouse_rows, Some(0));
}

#[tokio::test]
async fn removed_rows_are_cleared_once() {
    let env = project(4, "on_remove = \"clear\"").await;
    let name = "people";
    assert_eq!(env.run(name).await.written, 4);
    env.exec("DELETE FROM people WHERE id = 2").await;
    env.sink.take();
    let run = env.run(name).await;
    assert_eq!((run.counts.removed, run.to_send.clear, run.written), (1, 1, 1), "{:?}", run.error);
    assert_eq!(env.sink.take().iter().map(|r| r.op.as_str()).collect::<Vec<_>>(), ["clear"]);
    assert!(table(&env, name).await.contains(&("[2]".to_string(), "cleared".to_string())), "kept, marked cleared");
    let again = env.run(name).await;
    assert_eq!((again.to_send.clear, again.written), (0, 0), "cleared once");
    env.exec("INSERT INTO people VALUES (2, 'back@x.com', 'n')").await;
    let back = env.run(name).await;
    assert_eq!((back.counts.changed, back.written), (1, 1), "a cleared row that comes back is written again");
}

#[tokio::test]
async fn it_is_refused_where_it_cannot_work_at_the_headers_line() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.append_config("\n[sources.program]\nkind = \"command\"\ncommand = [\"echo\", \"{\\\"id\\\": 1}\"]\n");
    env.write_sync(
        "on_command",
        "source = \"program\"\ndestination = \"hook\"\nprimary_key = \"id\"\ndiff = \"warehouse\"",
        "SELECT id FROM input",
    );
    let run = env.run("on_command").await;
    assert!(
        run.error
            .as_deref()
            .unwrap_or("")
            .contains("syncs/on_command.sql:5: diff = \"warehouse\" needs a Postgres, MariaDB/MySQL or DuckDB source"),
        "{:?}",
        run.error
    );

    let pg = pg_env().await;
    pg.exec("CREATE TABLE t (id INT, at TIMESTAMPTZ, sluice_key TEXT)").await;
    pg.write_sync(
        "with_cursor",
        "destination = \"hook\"\nprimary_key = \"id\"\ncursor = \"at\"\ndiff = \"warehouse\"",
        "SELECT id, at FROM t",
    );
    let run = pg.run("with_cursor").await;
    assert!(
        run.error.as_deref().unwrap_or("").contains("with_cursor.sql:5: diff = \"warehouse\" does not go with `cursor`"),
        "{:?}",
        run.error
    );
    pg.write_sync("clash", "destination = \"hook\"\nprimary_key = \"id\"\ndiff = \"warehouse\"", "SELECT id, sluice_key FROM t");
    let run = pg.run("clash").await;
    assert!(run.error.as_deref().unwrap_or("").contains("column `sluice_key`"), "{:?}", run.error);
    let out = sluice_cli(pg.root(), &["check"], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("does not go with `cursor`"), "check says so too: {text}");
}

#[tokio::test]
async fn check_names_the_grants_a_role_lacks() {
    let env = Env::new(SourceKind::Postgres, StateKind::Sqlite).await;
    let pg = env.pg_source.as_ref().unwrap();
    let role = format!("sluice_ro_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let schema = format!("{}_state", pg.name);
    env.exec(&format!(
        "CREATE TABLE people (id INT, email TEXT);
         CREATE ROLE {role} LOGIN;
         GRANT USAGE ON SCHEMA {0} TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA {0} TO {role};",
        pg.name
    ))
    .await;
    // The role's URL: the test server trusts local connections.
    let mut url = reqwest::Url::parse(&pg.url()).unwrap();
    url.set_username(&role).unwrap();
    url.set_password(None).unwrap();
    let url = url.to_string();
    let config = std::fs::read_to_string(env.root().join("sluice.toml")).unwrap();
    let config = config.replace(&pg.url(), &url).replace("[sources.wh]\n", &format!("[sources.wh]\nstate_schema = \"{schema}\"\n"));
    std::fs::write(env.root().join("sluice.toml"), config).unwrap();
    env.write_sync("people", "destination = \"hook\"\nprimary_key = \"id\"\ndiff = \"warehouse\"", "SELECT id, email FROM people");
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("syncs/people.sql:4:") && text.contains("GRANT CREATE ON DATABASE"), "{text}");

    env.exec(&format!("CREATE SCHEMA {schema}; GRANT USAGE ON SCHEMA {schema} TO {role};")).await;
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains(&format!("GRANT USAGE, CREATE ON SCHEMA \"{schema}\" TO \"{role}\";")), "{text}");

    env.exec(&format!("GRANT CREATE ON SCHEMA {schema} TO {role};")).await;
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let run = env.run("people").await;
    assert_eq!(run.status, RunStatus::Success, "the role keeps its table: {:?}", run.error);
    env.exec(&format!("DROP SCHEMA {schema} CASCADE; DROP OWNED BY {role}; DROP ROLE {role};")).await;
}

/// The commit rule holds with the table in the source: killed at random moments, a run loses
/// nothing, the table never claims a row the destination did not get, and a kill re-sends at
/// most the batches in flight. The seed is printed; `SLUICE_CRASH_SEED=n` replays it.
#[tokio::test(flavor = "multi_thread")]
async fn sigkills_lose_nothing_and_resend_only_batches_in_flight() {
    sigkills_on(SourceKind::Postgres).await;
}

/// The same on DuckDB, whose table is a file of sluice's: a kill may land in a commit or in the
/// next run's fold of what the last one staged.
#[tokio::test(flavor = "multi_thread")]
async fn on_duckdb_sigkills_lose_nothing_and_resend_only_batches_in_flight() {
    sigkills_on(SourceKind::DuckDb).await;
}

async fn sigkills_on(kind: SourceKind) {
    const ROWS: usize = 20_000;
    const BATCH: usize = 500;
    const KILLS: usize = 8;
    let env = Env::with_sink_settings(kind, StateKind::Sqlite, &format!("max_batch_rows = {BATCH}\nmax_in_flight = 4")).await;
    if kind == SourceKind::Postgres {
        let path = env.root().join("sluice.toml");
        let schema = state_schema(&env);
        let config =
            std::fs::read_to_string(&path).unwrap().replace("[sources.wh]\n", &format!("[sources.wh]\nstate_schema = \"{schema}\"\n"));
        std::fs::write(&path, config).unwrap();
        env.exec(&format!("CREATE TABLE t AS SELECT i::bigint AS id, 'v' || i AS v FROM generate_series(1, {ROWS}) i")).await;
    } else {
        env.exec(&format!("CREATE TABLE t AS SELECT i::BIGINT AS id, 'v' || i AS v FROM range(1, {}) r(i)", ROWS + 1)).await;
    }
    env.write_sync("big", HEADER, "SELECT id, v FROM t");
    // 40 batches of 150 ms, 4 at a time: about 1.5 s of sending for the kills to land in.
    env.sink.slow(std::time::Duration::from_millis(150));
    let distinct = |rows: &[support::SinkRow]| rows.iter().map(|r| r.key.to_string()).collect::<std::collections::HashSet<_>>().len();
    let in_flight = sluice::engine::batches_in_flight(4) * BATCH;
    let mut rng = fastrand::Rng::with_seed(support::faults::seed("SLUICE_CRASH_SEED"));
    let (mut midway, mut unrecorded) = (0, 0);
    for kill in 1..=KILLS {
        crate::crash::interrupt(&env, &mut rng, "KILL").await;
        let (seen, recorded) = (distinct(&env.sink.rows()), recorded(&env, "big").await);
        // The table never claims a row the destination did not get, and a kill adds at most the
        // batches in flight to what it got and the table lacks. (Not "at most the batches in
        // flight" in all: the diff's rows come in no set order, so rows a kill left unrecorded
        // may still wait, unsent, behind the next run's own when it is killed.)
        assert!(
            recorded <= seen && seen - recorded <= unrecorded + in_flight,
            "kill {kill}: {seen} distinct rows received, {recorded} in the table, {unrecorded} unrecorded before"
        );
        unrecorded = seen - recorded;
        midway += usize::from(recorded < ROWS && seen > 0);
    }
    assert!(midway > 0, "no kill landed while rows were being sent");
    let last = env.run("big").await;
    assert_eq!(last.status, RunStatus::Success, "{:?}", last.error);
    let received = env.sink.rows();
    assert_eq!((distinct(&received), recorded(&env, "big").await), (ROWS, ROWS), "every row reached the destination, once recorded");
    assert!(received.len() - ROWS <= KILLS * in_flight, "{} rows sent twice", received.len() - ROWS);
    assert_eq!(env.run("big").await.to_send.total(), 0, "the table agrees with the destination");
}

/// How many rows sluice's table for sync `name` says the destination holds.
async fn recorded(env: &Env, name: &str) -> usize {
    match env.source {
        SourceKind::DuckDb => duck_table(env, name).await.len(),
        _ => table(env, name).await.len(),
    }
}

/// The rows a DuckDB source's file for sync `name` records (the folded rows and what the last
/// run staged, as the next run folds them): (key hash, fingerprint or "cleared").
async fn duck_table(env: &Env, name: &str) -> Vec<(String, String)> {
    let path = env.root().join(".sluice/warehouse/wh").join(format!("{name}.duckdb"));
    if !path.exists() {
        return Vec::new();
    }
    tokio::task::spawn_blocking(move || {
        let config = duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly).unwrap();
        let conn = duckdb::Connection::open_with_flags(&path, config).expect("open the sync's file");
        // A kill between the file's creation and its tables' leaves a file with none.
        let tables: i64 = conn
            .query_row("SELECT COUNT(*) FROM duckdb_tables() WHERE table_name IN ('sluice_rows', 'sluice_staged')", [], |r| r.get(0))
            .expect("list the file's tables");
        if tables < 2 {
            return Vec::new();
        }
        let sql = "WITH folded AS (
                       SELECT lpad(lower(hex(key_hash)), 32, '0') AS h, COALESCE(fingerprint::VARCHAR, 'cleared') AS f, 0 AS seq, 'hold' AS op FROM sluice_rows
                       UNION ALL SELECT key_hash, COALESCE(fingerprint, 'cleared'), seq, op FROM sluice_staged)
                   SELECT h, CASE op WHEN 'clear' THEN 'cleared' ELSE f END FROM folded
                   QUALIFY row_number() OVER (PARTITION BY h ORDER BY seq DESC) = 1 AND op <> 'delete' ORDER BY h";
        let mut stmt = conn.prepare(sql).expect("read the sync's file");
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).expect("rows");
        rows.map(|r| r.expect("a row")).collect()
    })
    .await
    .expect("duckdb task")
}

/// The run after `people` (300 rows) changed as the MariaDB and DuckDB tests change it: 4 rows
/// changed, 2 added, 1 removed (id 300), an unmapped column touched in others. Only those leave
/// the database, and they are sent.
async fn run_after_the_changes(env: &Env) {
    let next = env.run("people").await;
    assert_eq!(
        (next.counts.added, next.counts.changed, next.counts.removed, next.counts.unchanged, next.warehouse_rows),
        (2, 4, 1, 295, Some(7)),
        "{:?}",
        next.error
    );
    let sent = env.sink.take();
    assert_eq!(sent.iter().filter(|r| r.op == "upsert").count(), 6);
    assert_eq!(sent.iter().filter(|r| r.op == "delete").map(|r| r.key.to_string()).collect::<Vec<_>>(), [json!({"id": 300}).to_string()]);
}

/// A kill while DuckDB creates a sync's file (before its header is written) must not leave a
/// file DuckDB refuses for ever: files are made whole, then linked into place, and an empty one
/// (what such a kill left before) is made again.
#[tokio::test]
async fn on_duckdb_a_file_left_empty_by_a_kill_is_made_again() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec("CREATE TABLE people AS SELECT i::BIGINT AS id, 'p' || i || '@x.com' AS email FROM range(1, 11) r(i)").await;
    env.write_sync("people", &format!("{HEADER}\n{MAPPING}"), "SELECT * FROM people");
    let dir = env.root().join(".sluice/warehouse/wh");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("people.duckdb"), b"").unwrap();
    let run = env.run("people").await;
    assert_eq!((run.status, run.written), (RunStatus::Success, 10), "{:?}", run.error);
    assert_eq!(duck_table(&env, "people").await.len(), 10);
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(left.iter().all(|n| !n.ends_with(".new")), "no file left half-made: {left:?}");
}

/// On DuckDB: the source file stays read-only (sluice's table is a file of its own under
/// `.sluice/warehouse/<source>/`), the join runs in sluice's process, and the behaviours hold:
/// only changed rows leave, plans write nothing, cleared and deleted records, reset, duplicates.
#[tokio::test]
async fn on_duckdb_only_changed_rows_leave_the_database() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    let path = env.root().join("sluice.toml");
    let config = std::fs::read_to_string(&path).unwrap().replace("[sources.wh]\n", "[sources.wh]\nmemory_limit = \"256MB\"\n");
    std::fs::write(&path, config).unwrap();
    env.exec(
        "CREATE TABLE people AS SELECT i::BIGINT AS id, 'p' || i || '@x.com' AS email, 'n' AS note,
             (TIMESTAMP '2026-01-01 00:00:00.25' + to_seconds(i))::TIMESTAMPTZ AS seen, i / 3.0 AS score
         FROM range(1, 301) r(i);",
    )
    .await;
    env.write_sync(
        "people",
        &format!("{HEADER}\nmode = \"mirror\"\n{MAPPING}\nseen = \"seen\"\nscore = \"score\""),
        "SELECT * FROM people",
    );
    let file = env.root().join(".sluice/warehouse/wh/people.duckdb");
    let checked = sluice_cli(env.root(), &["check"], &[]).await;
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stdout));
    assert!(file.exists(), "check creates the sync's file, as a first run would");

    let first = env.run("people").await;
    assert_eq!((first.status, first.written, first.warehouse_rows), (RunStatus::Success, 300, Some(300)), "{:?}", first.error);
    assert_eq!(duck_table(&env, "people").await.len(), 300);
    env.sink.take();
    let idle = env.run("people").await;
    assert_eq!((idle.rows_read, idle.counts.unchanged, idle.warehouse_rows), (300, 300, Some(0)), "{:?}", idle.error);

    env.exec(
        "UPDATE people SET email = 'new' || id WHERE id <= 4;
         UPDATE people SET note = 'touched' WHERE id > 100;
         INSERT INTO people VALUES (301, 'a@x.com', 'n', NULL, 1), (302, 'b@x.com', 'n', NULL, 2);
         DELETE FROM people WHERE id = 300;",
    )
    .await;
    // A plan sees the same changes and writes nothing: a new sync's plan creates no file.
    let plan = env.plan("people").await;
    assert_eq!((plan.to_send.upsert, plan.to_send.delete), (6, 1), "{:?}", plan.error);
    env.write_sync("fresh", &format!("{HEADER}\n{MAPPING}"), "SELECT * FROM people");
    let fresh = env.plan("fresh").await;
    assert_eq!((fresh.counts.added, fresh.status), (301, RunStatus::Success), "{:?}", fresh.error);
    assert!(!env.root().join(".sluice/warehouse/wh/fresh.duckdb").exists(), "a plan creates nothing");

    run_after_the_changes(&env).await;
    assert_eq!(duck_table(&env, "people").await.len(), 301);
    assert_eq!(env.run("people").await.warehouse_rows, Some(0), "and then all is quiet");

    // The source file holds only what the test put there: sluice never wrote to it.
    let source = env.root().join("warehouse.duckdb");
    let tables: Vec<String> = tokio::task::spawn_blocking(move || {
        let conn = duckdb::Connection::open(&source).unwrap();
        let mut stmt = conn.prepare("SELECT table_name FROM information_schema.tables ORDER BY 1").unwrap();
        let names = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap().map(|r| r.unwrap()).collect();
        names
    })
    .await
    .unwrap();
    assert_eq!(tables, ["people"]);

    // `sluice reset` empties the sync's file: every row is sent again.
    let out = sluice_cli(env.root(), &["reset", "people"], &[]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(duck_table(&env, "people").await.is_empty());
    let again = env.run("people").await;
    assert_eq!((again.counts.added, again.written), (301, 301), "{:?}", again.error);

    // Duplicates fail the run before anything is sent.
    env.sink.take();
    env.exec("INSERT INTO people SELECT * FROM people WHERE id = 5;").await;
    let dup = env.run("people").await;
    assert!(dup.error.as_deref().unwrap_or("").contains("id=5"), "{:?}", dup.error);
    assert!(env.sink.rows().is_empty());
}

/// The same on MariaDB: no FULL JOIN there, a database for sluice's tables, the model still
/// read on a read-only session.
#[tokio::test]
async fn on_mariadb_only_changed_rows_leave_the_database() {
    let env = Env::new(SourceKind::Mysql, StateKind::Sqlite).await;
    let db = env.my_source.as_ref().expect("a MariaDB source");
    let state = format!("{}_state", db.schema);
    let path = env.root().join("sluice.toml");
    let config = std::fs::read_to_string(&path).unwrap().replace("[sources.wh]\n", &format!("[sources.wh]\nstate_schema = \"{state}\"\n"));
    std::fs::write(&path, config).unwrap();
    env.exec(
        "CREATE TABLE people (id BIGINT PRIMARY KEY, email VARCHAR(64), note VARCHAR(16), seen DATETIME(3));
         INSERT INTO people WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 300)
             SELECT i, CONCAT('p', i, '@x.com'), 'n', '2026-01-01 00:00:00.250' FROM s;",
    )
    .await;
    env.write_sync(
        "people",
        &format!("{HEADER}\nmode = \"mirror\"\n{MAPPING}\nseen = \"seen\""),
        "SELECT id, email, note, seen FROM people",
    );
    let checked = sluice_cli(env.root(), &["check"], &[]).await;
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stdout));
    let first = env.run("people").await;
    assert_eq!((first.status, first.written, first.warehouse_rows), (RunStatus::Success, 300, Some(300)), "{:?}", first.error);
    env.sink.take();
    let idle = env.run("people").await;
    assert_eq!((idle.rows_read, idle.counts.unchanged, idle.warehouse_rows), (300, 300, Some(0)), "{:?}", idle.error);
    env.exec(
        "UPDATE people SET email = CONCAT('new', id) WHERE id <= 4;
         UPDATE people SET note = 'touched' WHERE id > 100;
         INSERT INTO people VALUES (301, 'a@x.com', 'n', NULL), (302, 'b@x.com', 'n', NULL);
         DELETE FROM people WHERE id = 300;",
    )
    .await;
    run_after_the_changes(&env).await;
    let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {state}.people")).fetch_one(&db.pool).await.unwrap();
    assert_eq!(rows, 301);
    // Duplicates fail the run before anything is sent.
    env.exec("ALTER TABLE people DROP PRIMARY KEY; INSERT INTO people SELECT * FROM people WHERE id = 5;").await;
    let dup = env.run("people").await;
    assert!(dup.error.as_deref().unwrap_or("").contains("id=5"), "{:?}", dup.error);
    assert!(env.sink.rows().is_empty());
}
