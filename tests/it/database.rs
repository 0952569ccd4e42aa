//! The `postgres` and `mysql` destinations against the real local servers: a table kept equal
//! to the model in every mode, created and widened from the model's types, names of any shape,
//! rows the database refuses rejected alone, two syncs sharing a table, and the checks.

use crate::support;

use sluice::state::RunStatus;
use support::databases::{DestDb, Dialect};
use support::*;

const BOTH: [Dialect; 2] = [Dialect::Postgres, Dialect::Mysql];

/// A DuckDB project with a destination `app_db` in a fresh schema of `dialect`'s server.
async fn project(dialect: Dialect) -> (Env, DestDb) {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    let db = DestDb::create(dialect).await;
    env.add_destination("app_db", &db.destination());
    (env, db)
}

fn sync_header(db: &DestDb, table: &str, rest: &str) -> String {
    format!("source = \"wh\"\ndestination = \"app_db\"\nprimary_key = \"id\"\n{rest}\n[target]\ntable = \"{}\"", db.table(table))
}

fn ok(report: &sluice::engine::SyncReport) {
    assert_eq!(report.status, RunStatus::Success, "{:?} {:?}", report.error, report.warnings);
}

fn cell(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn mirror_creates_the_table_and_keeps_it_equal_to_the_model() {
    for dialect in BOTH {
        let (env, db) = project(dialect).await;
        env.exec(
            "CREATE TABLE people AS SELECT i AS id, 'p' || i AS name, CAST(i * 1.25 AS DECIMAL(10,2)) AS score FROM range(1, 101) r(i)",
        )
        .await;
        env.write_sync("people", &sync_header(&db, "people", "mode = \"mirror\""), "SELECT id, name, score FROM people");
        let report = env.run("people").await;
        ok(&report);
        assert_eq!(report.written, 100, "{dialect:?}");
        assert_eq!(db.columns("people").await, ["id", "name", "score"], "{dialect:?}: created from the model's columns");
        let rows = db.rows("people", &["id", "name", "score"]).await;
        assert_eq!(rows["7"], [cell("7"), cell("p7"), cell("8.75")], "{dialect:?}");

        // Someone adds a column of their own; the model changes and loses rows.
        db.exec(&format!("ALTER TABLE {} ADD COLUMN note VARCHAR(20)", db.qualified("people"))).await;
        db.exec(&format!("UPDATE {} SET note = 'kept' WHERE id IN (1, 2)", db.qualified("people"))).await;
        env.exec("UPDATE people SET name = 'renamed' WHERE id <= 10; DELETE FROM people WHERE id > 90").await;
        let report = env.run("people").await;
        ok(&report);
        assert_eq!((report.counts.changed, report.counts.removed), (10, 10), "{dialect:?}");
        assert_eq!(db.count("people").await, 90, "{dialect:?}");
        let rows = db.rows("people", &["id", "name", "note"]).await;
        assert_eq!(rows["1"], [cell("1"), cell("renamed"), cell("kept")], "{dialect:?}: the user's column untouched");
        assert_eq!(rows["11"], [cell("11"), cell("p11"), None], "{dialect:?}");
        assert!(!rows.contains_key("95"), "{dialect:?}: removed rows deleted");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn update_insert_and_clear_modes_do_what_they_say() {
    for dialect in BOTH {
        let (env, db) = project(dialect).await;
        env.exec("CREATE TABLE t AS SELECT i AS id, 'v' || i AS v FROM range(1, 6) r(i)").await;
        // Seed rows 1..3 through an upsert sync, so the table exists with the sync's key.
        env.write_sync("seed", &sync_header(&db, "t", "mode = \"upsert\""), "SELECT id, v FROM t WHERE id <= 3");
        ok(&env.run("seed").await);

        // Update mode: rows 4 and 5 have no row to update and are rejected with the reason.
        env.write_sync("upd", &sync_header(&db, "t", "mode = \"update\""), "SELECT id, 'u' || id AS v FROM t");
        let report = env.run("upd").await;
        assert_eq!((report.written, report.rejected), (3, 2), "{dialect:?}: {:?}", report.error);
        let rows = db.rows("t", &["id", "v"]).await;
        assert_eq!(rows.len(), 3, "{dialect:?}: update inserts nothing");
        assert_eq!(rows["2"][1], cell("u2"), "{dialect:?}");

        // Insert mode: new keys go in, stored rows stay as they are.
        env.write_sync("ins", &sync_header(&db, "t", "mode = \"insert\""), "SELECT id, 'i' || id AS v FROM t");
        ok(&env.run("ins").await);
        let rows = db.rows("t", &["id", "v"]).await;
        assert_eq!((rows.len(), rows["2"][1].clone(), rows["5"][1].clone()), (5, cell("u2"), cell("i5")), "{dialect:?}");

        // on_remove = "clear": a row that leaves the model keeps its key, its columns emptied.
        env.write_sync("clr", &sync_header(&db, "t", "mode = \"upsert\"\non_remove = \"clear\""), "SELECT id, 'c' || id AS v FROM t");
        ok(&env.run("clr").await);
        env.exec("DELETE FROM t WHERE id = 4").await;
        let report = env.run("clr").await;
        ok(&report);
        let rows = db.rows("t", &["id", "v"]).await;
        assert_eq!((rows.len(), rows["4"][1].clone(), rows["3"][1].clone()), (5, None, cell("c3")), "{dialect:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn skipped_nulls_and_if_empty_fields_keep_what_the_table_holds() {
    for dialect in BOTH {
        let (env, db) = project(dialect).await;
        env.exec("CREATE TABLE t (id INTEGER, email VARCHAR, phone VARCHAR); INSERT INTO t VALUES (1, 'a@x', '111'), (2, 'b@x', NULL)")
            .await;
        let header = format!(
            "{}\n[mapping]\nid = \"id\"\nemail = \"email\"\nphone = {{ column = \"phone\", write = \"if_empty\" }}",
            sync_header(&db, "t", "nulls = \"skip\"")
        );
        env.write_sync("t", &header, "SELECT id, email, phone FROM t");
        ok(&env.run("t").await);
        env.exec("UPDATE t SET email = NULL, phone = '999' WHERE id = 1; UPDATE t SET phone = '222', email = 'b2@x' WHERE id = 2").await;
        ok(&env.run("t").await);
        let rows = db.rows("t", &["id", "email", "phone"]).await;
        assert_eq!(rows["1"], [cell("1"), cell("a@x"), cell("111")], "{dialect:?}: a NULL skipped, a filled phone kept");
        assert_eq!(rows["2"], [cell("2"), cell("b2@x"), cell("222")], "{dialect:?}: an empty phone filled");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_the_database_refuses_is_rejected_alone() {
    for dialect in BOTH {
        let (env, db) = project(dialect).await;
        db.exec(&format!("CREATE TABLE {} (id BIGINT PRIMARY KEY, code VARCHAR(5), score INTEGER CHECK (score >= 0))", db.qualified("t")))
            .await;
        env.exec(
            "CREATE TABLE t AS SELECT i AS id, CASE WHEN i = 7 THEN 'toolong' ELSE 'c' || i END AS code, \
             CASE WHEN i = 13 THEN -1 ELSE i END AS score FROM range(1, 41) r(i)",
        )
        .await;
        env.write_sync("t", &sync_header(&db, "t", ""), "SELECT id, code, CAST(score AS INTEGER) AS score FROM t");
        let report = env.run("t").await;
        assert_eq!((report.written, report.rejected), (38, 2), "{dialect:?}: {:?}", report.error);
        assert_eq!(db.count("t").await, 38, "{dialect:?}: the good rows of the batch are written");
        let errors = sluice_cli(env.root(), &["failures", "t"], &[]).await;
        let text = String::from_utf8_lossy(&errors.stdout).to_lowercase();
        assert!(text.contains("too long") || text.contains("data too long"), "{dialect:?}: {text}");
        // Postgres: "violates check constraint"; MariaDB: "CONSTRAINT `t.score` failed".
        assert!(text.contains("{\"id\":13}") && text.contains("constraint"), "{dialect:?}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn names_with_spaces_quotes_capitals_and_reserved_words_are_quoted() {
    for dialect in BOTH {
        let (env, db) = project(dialect).await;
        env.exec("CREATE TABLE t AS SELECT i AS id, 'o' || i AS o, i * 2 AS s FROM range(1, 4) r(i)").await;
        let header = format!(
            "source = \"wh\"\ndestination = \"app_db\"\nprimary_key = \"id\"\n[target]\ntable = \"Customer Scores\"\nschema = \"{}\"\n\
             [mapping]\n\"Customer ID\" = \"id\"\n\"select\" = \"o\"\n'Score \"x\" `y`' = \"s\"",
            db.schema
        );
        env.write_sync("t", &header, "SELECT id, o, s FROM t");
        let report = env.run("t").await;
        ok(&report);
        assert_eq!(db.columns("Customer Scores").await, ["Customer ID", "select", "Score \"x\" `y`"], "{dialect:?}");
        let rows = db.rows("Customer Scores", &["Customer ID", "select", "Score \"x\" `y`"]).await;
        assert_eq!(rows["2"], [cell("2"), cell("o2"), cell("4")], "{dialect:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_sync_adds_its_columns_to_the_same_table() {
    for dialect in BOTH {
        let (env, db) = project(dialect).await;
        env.exec("CREATE TABLE t AS SELECT i AS id, i * 10 AS score, 'e' || i || '@x' AS email FROM range(1, 6) r(i)").await;
        env.write_sync("scores", &sync_header(&db, "accounts", ""), "SELECT id, score FROM t");
        env.write_sync("emails", &sync_header(&db, "accounts", ""), "SELECT id, email FROM t WHERE id <= 3");
        ok(&env.run("scores").await);
        ok(&env.run("emails").await);
        assert_eq!(db.columns("accounts").await, ["id", "score", "email"], "{dialect:?}");
        let rows = db.rows("accounts", &["id", "score", "email"]).await;
        assert_eq!(rows["2"], [cell("2"), cell("20"), cell("e2@x")], "{dialect:?}");
        assert_eq!(rows["5"], [cell("5"), cell("50"), None], "{dialect:?}");
        // The first sync's next change leaves the second's column alone.
        env.exec("UPDATE t SET score = 0").await;
        ok(&env.run("scores").await);
        let rows = db.rows("accounts", &["id", "score", "email"]).await;
        assert_eq!(rows["2"], [cell("2"), cell("0"), cell("e2@x")], "{dialect:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_type_conflict_is_an_error_naming_the_column_and_both_types() {
    for dialect in BOTH {
        let (env, db) = project(dialect).await;
        db.exec(&format!("CREATE TABLE {} (id BIGINT PRIMARY KEY, score VARCHAR(10))", db.qualified("t"))).await;
        env.exec("CREATE TABLE t AS SELECT 1 AS id, 2.5::DOUBLE AS score").await;
        env.write_sync("t", &sync_header(&db, "t", ""), "SELECT id, score FROM t");
        let report = env.run("t").await;
        assert_eq!(report.status, RunStatus::Failed, "{dialect:?}");
        let error = report.error.unwrap_or_default();
        assert!(error.contains("column `score`") && error.contains("floating point"), "{dialect:?}: {error}");
        assert!(error.to_lowercase().contains("varchar(10)") || error.contains("character varying(10)"), "{dialect:?}: {error}");
        assert_eq!(db.count("t").await, 0, "{dialect:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_without_a_unique_key_and_create_false_are_explained() {
    for dialect in BOTH {
        let (env, db) = project(dialect).await;
        db.exec(&format!("CREATE TABLE {} (id BIGINT, v TEXT)", db.qualified("nokey"))).await;
        env.exec("CREATE TABLE t AS SELECT 1 AS id, 'a' AS v").await;
        env.write_sync("nokey", &sync_header(&db, "nokey", ""), "SELECT id, v FROM t");
        let error = env.run("nokey").await.error.unwrap_or_default();
        assert!(error.contains("no primary key or unique index") && error.contains("ADD PRIMARY KEY"), "{dialect:?}: {error}");

        env.write_sync("absent", &format!("{}\ncreate = false", sync_header(&db, "absent", "")), "SELECT id, v FROM t");
        let error = env.run("absent").await.error.unwrap_or_default();
        assert!(error.contains("create = false") && error.contains("CREATE TABLE"), "{dialect:?}: {error}");
        let check = sluice_cli(env.root(), &["check"], &[]).await;
        let text = String::from_utf8_lossy(&check.stdout).to_string() + &String::from_utf8_lossy(&check.stderr);
        assert!(!check.status.success() && text.contains("CREATE TABLE"), "{dialect:?}: {text}");
    }
}

/// The JSON-lines file's rows by `id`.
fn jsonl(path: &std::path::Path) -> std::collections::BTreeMap<String, serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            (v["id"].to_string(), v)
        })
        .collect()
}

const DUCKDB_TYPES: &str = "SELECT i AS id, i % 2 = 0 AS b, CAST(i AS TINYINT) AS ti, CAST(i AS BIGINT) * 1000000000000 AS i64, \
    CAST('18446744073709551615' AS UBIGINT) AS ubig, CAST('170141183460469231731687303715884105727' AS HUGEINT) AS huge, \
    CAST(i AS DOUBLE) / 3 AS dbl, CAST(0.1 AS FLOAT) AS flt, \
    CASE WHEN i = 1 THEN 'NaN'::DOUBLE WHEN i = 2 THEN '-inf'::DOUBLE ELSE 1e300 END AS special, \
    CAST(i / 8 AS DECIMAL(18,3)) AS dec, 'text \"' || i || ''' é 😀' AS txt, CAST('\\xDE\\xAD' AS BLOB) AS blb, \
    DATE '2024-02-29' + CAST(i AS INTEGER) AS d, TIME '13:14:15.123456' AS tm, \
    TIMESTAMP '2024-01-01 10:00:00.123456' + INTERVAL (i) HOUR AS ts, TIMESTAMPTZ '2024-01-01 10:00:00+02' AS tstz, \
    CAST('6f1c1b2e-8a4b-4f5e-9d3c-2a1b0c9d8e7f' AS UUID) AS u, '{\"b\": [1, 2.50], \"a\": null}'::JSON AS js, \
    [i, NULL, 3] AS ints, ['a', NULL, 'c\"'] AS texts, {'k': i, 'n': 'x'} AS st, MAP {'x': 1} AS mp, \
    CASE WHEN i = 3 THEN NULL ELSE 'x' END AS maybe FROM range(1, 5) r(i)";

const POSTGRES_TYPES: &str = "SELECT i AS id, i % 2 = 0 AS b, i::int2 AS i16, i::int4 AS i32, (i::int8 * 1000000000000) AS i64, \
    (i / 3.0)::float4 AS f32, (i / 3.0)::float8 AS f64, CASE WHEN i = 1 THEN 'NaN'::float8 ELSE 'Infinity'::float8 END AS special, \
    (i / 7.0)::numeric AS num, 123456789012345678901234567890.123456789::numeric AS wide, 't \"' || i || E'\\' é' AS txt, \
    ('v' || i)::varchar(10) AS vc, decode('dead00beef', 'hex') AS blb, DATE '2024-02-29' + i AS d, TIME '01:02:03.5' AS tm, \
    TIMESTAMP '2024-01-01 10:00:00.000001' + i * INTERVAL '1 hour' AS ts, TIMESTAMPTZ '2024-01-01 10:00:00+02' AS tstz, \
    '6f1c1b2e-8a4b-4f5e-9d3c-2a1b0c9d8e7f'::uuid AS u, '{\"b\": [1, 2.50], \"a\": null}'::jsonb AS jb, '[1, {\"x\": 2}]'::json AS j, \
    ARRAY[i, NULL, 3] AS ints, ARRAY['a', NULL, 'c\"', 'NULL'] AS texts, ARRAY[1.5, 2]::numeric[] AS nums, \
    ARRAY[TIMESTAMPTZ '2024-01-01 00:00:00+00'] AS stamps, CASE WHEN i = 3 THEN NULL ELSE 'x' END AS maybe \
    FROM generate_series(1, 4) AS g(i)";

#[tokio::test(flavor = "multi_thread")]
async fn every_type_the_sources_produce_round_trips_through_postgres_exactly() {
    for (source, model) in [(SourceKind::DuckDb, DUCKDB_TYPES), (SourceKind::Postgres, POSTGRES_TYPES)] {
        let env = Env::new(source, StateKind::Sqlite).await;
        let db = DestDb::create(Dialect::Postgres).await;
        env.add_destination("app_db", &db.destination());
        env.add_destination("out", "kind = \"file\"");
        env.append_config(&format!("\n[sources.back]\nkind = \"postgres\"\nurl = \"{}\"\n", db.url));
        env.write_sync("direct", "source = \"wh\"\ndestination = \"out\"\nprimary_key = \"id\"\n[target]\npath = \"direct.jsonl\"", model);
        env.write_sync("to_table", &sync_header(&db, "types", ""), model);
        env.write_sync(
            "back",
            "source = \"back\"\ndestination = \"out\"\nprimary_key = \"id\"\n[target]\npath = \"back.jsonl\"",
            &format!("SELECT * FROM {}", db.qualified("types")),
        );
        ok(&env.run("direct").await);
        let report = env.run("to_table").await;
        ok(&report);
        assert_eq!(report.written, 4, "{source:?}");
        ok(&env.run("back").await);
        let (direct, back) = (jsonl(&env.root().join("direct.jsonl")), jsonl(&env.root().join("back.jsonl")));
        assert_eq!(direct.len(), 4);
        for (id, row) in &direct {
            assert_eq!(Some(row), back.get(id), "{source:?}: row {id} read back from the table");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_type_the_sources_produce_is_stored_exactly_in_mysql() {
    let (env, db) = project(Dialect::Mysql).await;
    env.write_sync("types", &sync_header(&db, "types", ""), DUCKDB_TYPES);
    let report = env.run("types").await;
    // The row holding NaN and the one holding -inf: MySQL's DOUBLE holds neither.
    assert_eq!((report.written, report.rejected), (2, 2), "{:?}", report.error);
    let errors = sluice_cli(env.root(), &["failures", "types"], &[]).await;
    assert!(String::from_utf8_lossy(&errors.stdout).contains("NaN or infinity"));
    let columns = [
        "id", "b", "ti", "i64", "ubig", "huge", "dbl", "flt", "special", "dec", "txt", "d", "tm", "ts", "tstz", "u", "js", "ints", "texts",
        "st", "mp", "maybe",
    ];
    let rows = db.rows("types", &columns).await;
    let row: Vec<Option<&str>> = rows["4"].iter().map(|c| c.as_deref()).collect();
    assert_eq!(
        row,
        [
            Some("4"),
            Some("1"),
            Some("4"),
            Some("4000000000000"),
            Some("18446744073709551615"),
            Some("170141183460469231731687303715884105727"),
            Some("1.3333333333333333"),
            Some("0.10000000149011612"),
            Some("1e300"),
            Some("0.500"),
            Some("text \"4' é 😀"),
            Some("2024-03-04"),
            Some("13:14:15.123456"),
            Some("2024-01-01 14:00:00.123456"),
            Some("2024-01-01 08:00:00.000000"),
            Some("6f1c1b2e-8a4b-4f5e-9d3c-2a1b0c9d8e7f"),
            // The canonical JSON the model gave (its numbers in their shortest form).
            Some("{\"a\":null,\"b\":[1,2.5]}"),
            Some("[4,null,3]"),
            Some("[\"a\",null,\"c\\\"\"]"),
            Some("{\"k\":4,\"n\":\"x\"}"),
            Some("{\"x\":1}"),
            Some("x"),
        ]
    );
    let hex: String = sqlx::query_scalar(&format!("SELECT CAST(HEX(blb) AS CHAR(16)) FROM {} WHERE id = 4", db.qualified("types")))
        .fetch_one(&db.pool)
        .await
        .expect("blob");
    assert_eq!(hex, "DEAD");
}

/// `sluice run` on 20,000 rows killed (SIGKILL) three times after batches reached the table,
/// then run to the end: the table ends equal to the model.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_mid_way_loses_nothing_and_ends_equal_to_the_model() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    for dialect in BOTH {
        let (env, db) = project(dialect).await;
        env.append_config("max_batch_rows = 500\nmax_in_flight = 4\n");
        env.exec("CREATE TABLE big AS SELECT i AS id, 'v' || i AS v, i * 3 AS n FROM range(1, 20001) r(i)").await;
        env.write_sync("big", &sync_header(&db, "big", "mode = \"mirror\""), "SELECT id, v, n FROM big");
        let mut seen = 0;
        let mut killed_mid_way = 0;
        for kill in 1..=3 {
            let mut child = Command::new(sluice_bin())
                .args(["run", "big", "--project"])
                .arg(env.root())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn sluice");
            // Kill it once more rows than before are in the table: mid-way through sending.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let n = if db.columns("big").await.is_empty() { 0 } else { db.count("big").await };
                if child.try_wait().expect("try_wait").is_some() {
                    break;
                }
                if n > seen {
                    seen = n;
                    let _ = child.kill();
                    killed_mid_way += 1;
                    break;
                }
                assert!(Instant::now() < deadline, "kill {kill}: no rows reached the table");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let _ = child.wait();
        }
        assert!(killed_mid_way >= 1 && seen > 0, "{dialect:?}: at least one run was killed while sending ({seen} rows)");

        let report = env.run("big").await;
        ok(&report);
        assert_eq!(db.count("big").await, 20_000, "{dialect:?}");
        let sum: i64 = sqlx::query_scalar(
            &format!("SELECT CAST(SUM(n) AS SIGNED) FROM {}", db.qualified("big"))
                .replace("AS SIGNED", if dialect == Dialect::Postgres { "AS BIGINT" } else { "AS SIGNED" }),
        )
        .fetch_one(&db.pool)
        .await
        .expect("sum");
        assert_eq!(sum, 3 * 20_000 * 20_001 / 2, "{dialect:?}");
        assert_eq!(env.run("big").await.to_send.total(), 0, "{dialect:?}: a run after that has nothing to send");
    }
}

/// `sluice check`'s output (both streams) and whether it passed.
async fn check(env: &Env) -> (bool, String) {
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn check_names_the_privileges_a_run_lacks_and_writes_nothing() {
    for dialect in BOTH {
        let (env, db) = project(dialect).await;
        env.exec("CREATE TABLE t AS SELECT 1 AS id, 'a' AS v").await;
        db.exec(&format!("CREATE TABLE {} (id BIGINT PRIMARY KEY, v TEXT)", db.qualified("present"))).await;
        env.write_sync("present", &sync_header(&db, "present", "mode = \"mirror\""), "SELECT id, v FROM t");
        env.write_sync("absent", &sync_header(&db, "absent", ""), "SELECT id, v FROM t");
        // As the server's administrator, everything is allowed; the missing table would be created.
        let (passed, text) = check(&env).await;
        assert!(passed, "{dialect:?}: {text}");
        assert!(db.columns("absent").await.is_empty(), "{dialect:?}: check created nothing");

        // A user who may only read the table.
        let user = format!("sluice_r_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let url = match dialect {
            Dialect::Postgres => {
                db.exec(&format!(
                    "CREATE ROLE {user} LOGIN; GRANT USAGE ON SCHEMA {s} TO {user}; GRANT SELECT ON {s}.present TO {user}",
                    s = db.schema
                ))
                .await;
                db.url.replacen("://postgres@", &format!("://{user}@"), 1)
            }
            Dialect::Mysql => {
                for host in ["localhost", "127.0.0.1", "%"] {
                    db.exec(&format!("CREATE USER '{user}'@'{host}'")).await;
                    db.exec(&format!("GRANT SELECT ON {}.present TO '{user}'@'{host}'", db.schema)).await;
                }
                db.url.replacen("://root@", &format!("://{user}@"), 1)
            }
        };
        let config = std::fs::read_to_string(env.root().join("sluice.toml")).unwrap().replace(&db.url, &url);
        std::fs::write(env.root().join("sluice.toml"), config).unwrap();
        let (passed, text) = check(&env).await;
        assert!(!passed, "{dialect:?}: {text}");
        assert!(
            text.contains("lacks INSERT, UPDATE, DELETE on") && text.contains("GRANT INSERT, UPDATE, DELETE ON"),
            "{dialect:?}: {text}"
        );
        assert!(text.contains("GRANT CREATE ON"), "{dialect:?}: the missing table needs CREATE: {text}");
        match dialect {
            Dialect::Postgres => db.exec(&format!("DROP OWNED BY {user}; DROP ROLE {user}")).await,
            Dialect::Mysql => {
                for host in ["localhost", "127.0.0.1", "%"] {
                    db.exec(&format!("DROP USER '{user}'@'{host}'")).await;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_user_fails_the_run_at_once_with_the_servers_words() {
    for dialect in BOTH {
        let (env, db) = project(dialect).await;
        let user = match dialect {
            Dialect::Postgres => "://postgres@",
            Dialect::Mysql => "://root@",
        };
        let config =
            std::fs::read_to_string(env.root().join("sluice.toml")).unwrap().replace(&db.url, &db.url.replacen(user, "://nobody_here@", 1));
        std::fs::write(env.root().join("sluice.toml"), config).unwrap();
        env.exec("CREATE TABLE t AS SELECT 1 AS id").await;
        env.write_sync("t", &sync_header(&db, "t", ""), "SELECT id FROM t");
        let report = env.run("t").await;
        assert_eq!(report.status, RunStatus::Failed, "{dialect:?}");
        let error = report.error.unwrap_or_default();
        assert!(error.contains("nobody_here") && error.contains("cannot connect"), "{dialect:?}: {error}");
        assert!(!error.contains("gave up after"), "{dialect:?}: not retried: {error}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_of_a_table_with_columns_the_sync_does_not_write_are_updated_in_place() {
    for dialect in BOTH {
        let (env, db) = project(dialect).await;
        // The application's table: a NOT NULL column sluice knows nothing of, and another
        // unique index.
        db.exec(&format!(
            "CREATE TABLE {} (id BIGINT PRIMARY KEY, name VARCHAR(20) NOT NULL, email VARCHAR(40) UNIQUE, churn_risk DOUBLE PRECISION)",
            db.qualified("users")
        ))
        .await;
        db.exec(&format!("INSERT INTO {} VALUES (1, 'Ann', 'ann@x', NULL), (2, 'Bob', 'bob@x', 0.5)", db.qualified("users"))).await;
        env.exec(
            "CREATE TABLE risk AS SELECT * FROM (VALUES (1, 0.9, 'ann@x'), (2, NULL, 'bob@x'), (3, 0.1, 'cy@x')) v(id, churn_risk, email)",
        )
        .await;
        env.write_sync(
            "upd",
            &sync_header(&db, "users", "mode = \"update\"\nnulls = \"skip\""),
            "SELECT id, CAST(churn_risk AS DOUBLE) AS churn_risk FROM risk",
        );
        let report = env.run("upd").await;
        assert_eq!((report.written, report.rejected), (2, 1), "{dialect:?}: {:?} {:?}", report.error, report.warnings);
        let rows = db.rows("users", &["id", "name", "churn_risk"]).await;
        assert_eq!(rows["1"], [cell("1"), cell("Ann"), cell("0.9")], "{dialect:?}");
        assert_eq!(rows["2"], [cell("2"), cell("Bob"), cell("0.5")], "{dialect:?}: a skipped NULL keeps the stored value");

        // An upsert of a new key that collides with another unique index is that row's error,
        // never an overwrite of the row holding the value.
        env.exec("CREATE TABLE people AS SELECT * FROM (VALUES (1, 'ann@x', 'Ann'), (4, 'bob@x', 'Imposter')) v(id, email, name)").await;
        env.write_sync("ups", &sync_header(&db, "users", ""), "SELECT id, email, name FROM people");
        let report = env.run("ups").await;
        assert_eq!((report.written, report.rejected), (1, 1), "{dialect:?}: {:?}", report.error);
        let rows = db.rows("users", &["id", "name", "email"]).await;
        assert_eq!(rows["2"], [cell("2"), cell("Bob"), cell("bob@x")], "{dialect:?}: the other row untouched");
        assert!(!rows.contains_key("4"), "{dialect:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn text_keys_that_differ_in_case_or_trailing_spaces_stay_apart() {
    for dialect in BOTH {
        let (env, db) = project(dialect).await;
        env.exec("CREATE TABLE t AS SELECT * FROM (VALUES ('a', 1), ('A', 2), ('a ', 3)) v(code, n)").await;
        env.write_sync(
            "t",
            &sync_header(&db, "codes", "mode = \"mirror\"").replace("primary_key = \"id\"", "primary_key = \"code\""),
            "SELECT code, n FROM t",
        );
        let report = env.run("t").await;
        ok(&report);
        assert_eq!(db.count("codes").await, 3, "{dialect:?}");
        env.exec("DELETE FROM t WHERE code = 'a '").await;
        ok(&env.run("t").await);
        let rows = db.rows("codes", &["code", "n"]).await;
        assert_eq!(rows.len(), 2, "{dialect:?}: {rows:?}");
        assert_eq!(rows["a"][1], cell("1"), "{dialect:?}");
    }
}

/// Adding a column waits at most a few seconds for the table's lock on Postgres: queued behind a
/// long transaction, an ALTER would hold up every query of the application on that table.
#[tokio::test(flavor = "multi_thread")]
async fn adding_a_column_to_a_busy_postgres_table_gives_up_instead_of_queueing() {
    let (env, db) = project(Dialect::Postgres).await;
    env.append_config("max_attempts = 1\n");
    db.exec(&format!("CREATE TABLE {} (id BIGINT PRIMARY KEY, v TEXT)", db.qualified("busy"))).await;
    env.exec("CREATE TABLE t AS SELECT 1 AS id, 'a' AS v, 2 AS extra").await;
    env.write_sync("busy", &sync_header(&db, "busy", ""), "SELECT id, v, extra FROM t");
    // The application's long transaction, reading the table.
    let mut holder = db.pool.begin().await.expect("begin");
    sqlx::query(&format!("LOCK TABLE {} IN ACCESS SHARE MODE", db.qualified("busy"))).execute(&mut *holder).await.expect("lock");
    let report = tokio::time::timeout(std::time::Duration::from_secs(60), env.run("busy")).await.expect("the run gave up on the lock");
    assert_eq!(report.status, RunStatus::Failed);
    let error = report.error.unwrap_or_default();
    assert!(error.contains("lock timeout") && error.contains("adding column `extra`"), "{error}");
    holder.rollback().await.expect("rollback");
    ok(&env.run("busy").await);
    assert_eq!(db.columns("busy").await, ["id", "v", "extra"]);
}
