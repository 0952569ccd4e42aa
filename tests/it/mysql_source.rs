//! MariaDB/MySQL as a source (`kind = "mysql"`), against the real MariaDB server: every common
//! type read into the canonical values, TIMESTAMP against DATETIME zones, models that only
//! read (the server refuses writes; nothing escapes the derived table), and cursor syncs;
//! types sluice cannot read are named with the cast to write. (The statement timeout is in
//! models_only_read.rs, beside the other sources'.)

use crate::support;

use serde_json::json;
use sluice::state::RunStatus;
use support::{Env, SourceKind, StateKind};

const HEADER: &str = "destination = \"hook\"\nprimary_key = \"id\"";

async fn is_mariadb(env: &Env) -> bool {
    use sqlx::Row;
    let db = env.my_source.as_ref().expect("a MariaDB source");
    let row = sqlx::query("SELECT CAST(VERSION() AS CHAR(100))").fetch_one(&db.pool).await.expect("version");
    row.get::<String, _>(0).to_lowercase().contains("mariadb")
}

#[tokio::test]
async fn every_common_type_reads_into_its_canonical_value() {
    let env = Env::new(SourceKind::Mysql, StateKind::Sqlite).await;
    env.exec(
        "CREATE TABLE typed (
            id BIGINT UNSIGNED PRIMARY KEY, flag BOOLEAN, tiny TINYINT, small SMALLINT UNSIGNED, mid MEDIUMINT,
            i INT, big BIGINT, f FLOAT, d DOUBLE, amount DECIMAL(30,10), label VARCHAR(50), note TEXT,
            kind ENUM('a','b'), tags SET('x','y','z'), doc JSON, raw VARBINARY(16), bin BLOB, bits BIT(10),
            cased VARCHAR(20) COLLATE utf8mb4_bin,
            yr YEAR, day DATE, clock TIME(3), dt DATETIME(6), ts TIMESTAMP(3) NULL
         ) CHARACTER SET utf8mb4;
         SET time_zone = '+02:00';
         INSERT INTO typed VALUES
          (18446744073709551615, 1, -128, 65535, -8388608, -2147483648, -9223372036854775808, 1.5, 0.1,
           12345678901234567890.0123456789, 'üñí ✓', 'long text', 'b', 'z,x', '{\"b\": [1, 2], \"a\": \"x\"}',
           X'00FF10', X'DEADBEEF', b'1010000001', 'CaseD', 2024, '2024-02-29', '13:45:01.250', '2024-03-01 10:00:00.123456',
           '2024-03-01 10:00:00.500'),
          (1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL);
         SET time_zone = '+00:00';",
    )
    .await;
    env.write_sync("typed", HEADER, "SELECT * FROM typed");
    let run = env.run("typed").await;
    assert_eq!((run.status, run.written), (RunStatus::Success, 2), "{:?} {:?}", run.error, run.warnings);
    let rows = env.sink.rows();
    let full = rows.iter().find(|r| r.key.to_string().contains("18446744073709551615")).expect("the row keyed u64::MAX");
    let f = &full.fields;
    let expect = [
        ("flag", json!(true)),
        ("tiny", json!(-128)),
        ("small", json!(65535)),
        ("mid", json!(-8388608)),
        ("i", json!(-2147483648_i64)),
        ("big", json!(i64::MIN)),
        ("f", json!(1.5)),
        ("d", json!(0.1)),
        // Exact: more digits than a double holds, so sent as text rather than rounded.
        ("amount", json!("12345678901234567890.0123456789")),
        ("label", json!("üñí ✓")),
        ("note", json!("long text")),
        ("kind", json!("b")),
        // SET members in their declared order, as the server keeps them.
        ("tags", json!("x,z")),
        ("raw", json!("AP8Q")),
        ("bin", json!("3q2+7w==")),
        ("bits", json!(641)),
        // A binary collation is still text (the wire calls it binary; its character set says not).
        ("cased", json!("CaseD")),
        ("yr", json!(2024)),
        ("day", json!("2024-02-29")),
        ("clock", json!("13:45:01.250")),
        // DATETIME has no zone: taken as UTC, as written.
        ("dt", json!("2024-03-01T10:00:00.123456Z")),
        // TIMESTAMP is a point in time: written at +02:00, it is 08:00 UTC.
        ("ts", json!("2024-03-01T08:00:00.500Z")),
    ];
    for (field, value) in expect {
        assert_eq!(f[field], value, "{field} in {f}");
    }
    // MariaDB's JSON is LONGTEXT and says so on the wire: it arrives as the text stored.
    // MySQL's JSON type arrives as JSON, canonicalised.
    if is_mariadb(&env).await {
        assert_eq!(f["doc"], json!("{\"b\": [1, 2], \"a\": \"x\"}"), "{f}");
    } else {
        assert_eq!(f["doc"], json!({"a": "x", "b": [1, 2]}), "{f}");
    }
    let nulls = rows.iter().find(|r| r.key != full.key).expect("the row of NULLs");
    let fields = nulls.fields.as_object().expect("fields");
    assert!(fields.iter().all(|(k, v)| k == "id" || v.is_null()), "every NULL arrives as null: {fields:?}");
    assert_eq!(fields.len(), 24, "{fields:?}");
}

#[tokio::test]
async fn values_that_have_no_canonical_form_fail_with_the_cast_to_write() {
    let env = Env::new(SourceKind::Mysql, StateKind::Sqlite).await;
    env.exec(
        "CREATE TABLE odd (id INT, flag BOOLEAN, span TIME, shape POINT);
         INSERT INTO odd VALUES (1, 2, '-01:00:00', POINT(1, 2));",
    )
    .await;
    env.write_sync("boolish", HEADER, "SELECT id, flag FROM odd");
    env.write_sync("duration", HEADER, "SELECT id, span FROM odd");
    env.write_sync("geometry", HEADER, "SELECT id, shape FROM odd");
    env.write_sync("cast", HEADER, "SELECT id, flag + 0 AS flag, CAST(span AS CHAR) AS span, ST_AsText(shape) AS shape FROM odd");
    for (name, says) in [("boolish", "`col + 0`"), ("duration", "is not a time of day"), ("geometry", "ST_AsText(`shape`)")] {
        let run = env.run(name).await;
        let error = run.error.clone().unwrap_or_default();
        assert_eq!(run.status, RunStatus::Failed, "{name}: {run:?}");
        assert!(error.contains(says), "{name}: {error}");
    }
    let cast = env.run("cast").await;
    assert_eq!((cast.status, cast.written), (RunStatus::Success, 1), "{:?}", cast.error);
    let row = &env.sink.rows()[0].fields;
    assert_eq!((&row["flag"], &row["span"], &row["shape"]), (&json!(2), &json!("-01:00:00"), &json!("POINT(1 2)")));
}

#[tokio::test]
async fn a_model_cannot_write_nor_escape_its_derived_table() {
    let env = Env::new(SourceKind::Mysql, StateKind::Sqlite).await;
    env.exec(
        "CREATE TABLE t (id INT);
         INSERT INTO t VALUES (1);
         CREATE FUNCTION scribble() RETURNS INT MODIFIES SQL DATA BEGIN INSERT INTO t VALUES (99); RETURN 1; END;",
    )
    .await;
    let outfile = format!("/tmp/sluice-escape-{}.csv", uuid::Uuid::new_v4().simple());
    let cases = [
        // A stored function that writes: the server refuses it in the read-only transaction.
        ("function", "SELECT scribble() AS id".to_string(), "READ ONLY"),
        // Close the wrapper early and swallow its end in an unterminated comment.
        ("escape", format!("SELECT 1 AS id) AS a INTO OUTFILE '{outfile}' /*"), "one SELECT"),
        ("executable", format!("SELECT 1 AS id /*M!) AS a INTO OUTFILE '{outfile}' -- */"), "executable comments"),
        ("into", format!("SELECT 1 AS id INTO OUTFILE '{outfile}'"), "INTO"),
    ];
    for (name, model, _) in &cases {
        env.write_sync(name, HEADER, model);
    }
    for (name, _, says) in &cases {
        let run = env.run(name).await;
        assert_eq!(run.status, RunStatus::Failed, "{name}: {run:?}");
        assert!(run.error.as_deref().unwrap_or("").contains(says), "{name}: {:?}", run.error);
    }
    assert!(!std::path::Path::new(&outfile).exists(), "no file was written");
    let db = env.my_source.as_ref().unwrap();
    let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}.t", db.schema)).fetch_one(&db.pool).await.unwrap();
    assert_eq!(rows, 1, "the table is as it was");
}

#[tokio::test]
async fn a_cursor_sync_reads_only_rows_past_its_mark() {
    let env = Env::new(SourceKind::Mysql, StateKind::Sqlite).await;
    env.exec(
        "CREATE TABLE accounts (id INT, plan VARCHAR(10), updated_at DATETIME(3), version DECIMAL(10,2));
         INSERT INTO accounts VALUES (1, 'free', '2026-01-01 00:01:00', 1.10), (2, 'team', '2026-01-01 00:02:00', 2.20),
                                     (3, 'pro', '2026-01-01 00:03:00.250', 3.30);",
    )
    .await;
    env.write_sync("by_time", &format!("{HEADER}\ncursor = \"updated_at\""), "SELECT id, plan, updated_at FROM accounts");
    env.write_sync("by_version", &format!("{HEADER}\ncursor = \"version\""), "SELECT id, plan, version FROM accounts");
    for (name, next) in [("by_time", "2026-01-01T00:03:00.250Z"), ("by_version", "3.3")] {
        let first = env.run(name).await;
        assert_eq!((first.status, first.rows_read, first.written), (RunStatus::Success, 3, 3), "{name}: {:?}", first.error);
        assert_eq!(first.cursor.as_ref().and_then(|c| c.next.as_deref()), Some(next), "{name}");
        let idle = env.run(name).await;
        assert_eq!((idle.rows_read, idle.written), (1, 0), "{name}: only the row at the mark is read again");
    }
    env.exec("UPDATE accounts SET plan = 'ent', updated_at = '2026-01-01 00:04:00', version = 4.00 WHERE id = 1").await;
    for name in ["by_time", "by_version"] {
        let run = env.run(name).await;
        assert_eq!((run.rows_read, run.written, run.counts.removed), (2, 1, 0), "{name}: {:?}", run.error);
    }
}
