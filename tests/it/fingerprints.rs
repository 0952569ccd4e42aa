//! The same data read from DuckDB and from Postgres gives the same canonical values: the same
//! payload on the wire and the same key hashes and fingerprints in the state store.

use crate::support;

use sqlx::sqlite::SqlitePoolOptions;
use sqlx::Row;
use support::*;

/// One table, declared with types both engines share, and the same literal rows.
const TABLE: &str = "CREATE TABLE typed (
    id BIGINT, small SMALLINT, i INTEGER, flag BOOLEAN, ratio DOUBLE PRECISION, r REAL,
    amount DECIMAL(12,3), label VARCHAR, day DATE, clock TIME, ts TIMESTAMP, tstz TIMESTAMPTZ,
    uid UUID, doc JSON, raw BYTEA, tags VARCHAR[], nums INTEGER[], docb JSONB
)";

const ROWS: &str = "INSERT INTO typed VALUES
 (1, 7, -3, true, 0.1, 1.5, 12.500, 'plain', DATE '2024-02-29', TIME '13:45:01.25', TIMESTAMP '2024-03-01 10:00:00.123456',
  TIMESTAMPTZ '2024-03-01 10:00:00+02', '0190b7c6-4f1e-7c3a-9d6e-1a2b3c4d5e6f', '{\"b\": [1, 2], \"a\": \"x\"}', '\\x00ff10'::BYTEA,
  ARRAY['a', 'b'], ARRAY[1, NULL, 3], '{\"z\": {\"y\": \"\\u00e9\\n\", \"x\": 1.50}, \"a\": null}'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, -32768, 2147483647, false, -1e300, -0.0, -0.001, 'üñí ✓', DATE '1970-01-01', TIME '00:00:00', TIMESTAMP '1969-12-31 23:59:59',
  TIMESTAMPTZ '2000-01-01 00:00:00+00', '00000000-0000-0000-0000-000000000000', '[]', ''::BYTEA, ARRAY[]::VARCHAR[], ARRAY[]::INTEGER[], '[1, \"two\"]')";

const HEADER: &str = "source = \"wh\"\ndestination = \"hook\"\nprimary_key = [\"id\", \"label\"]\nmode = \"upsert\"";

async fn stored_hashes(env: &Env) -> Vec<(Vec<u8>, Vec<u8>)> {
    let url = format!("sqlite://{}", env.root().join(".sluice/state.db").display());
    let pool = SqlitePoolOptions::new().connect(&url).await.unwrap();
    let rows = sqlx::query("SELECT key_hash, fingerprint FROM sync_rows ORDER BY key_hash").fetch_all(&pool).await.unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// Syncs every row of `table` (three of them) once: the rows sent, sorted, as `key fields`
/// text, and the key hashes and fingerprints stored.
async fn sync_all(env: &Env, table: &str, source: SourceKind) -> (Vec<String>, Vec<(Vec<u8>, Vec<u8>)>) {
    env.write_sync(table, HEADER, &format!("SELECT * FROM {table}"));
    let run = env.run(table).await;
    assert_eq!(run.written, 3, "{source:?}: {:?} {:?}", run.error, run.warnings);
    let mut rows: Vec<String> = env.sink.rows().iter().map(|r| format!("{} {}", r.key, r.fields)).collect();
    rows.sort();
    (rows, stored_hashes(env).await)
}

#[tokio::test]
async fn duckdb_and_postgres_agree_on_values_and_fingerprints() {
    let mut payloads = Vec::new();
    let mut hashes = Vec::new();
    for source in [SourceKind::DuckDb, SourceKind::Postgres] {
        let env = Env::new(source, StateKind::Sqlite).await;
        // DuckDB has one JSON type; Postgres sends `jsonb` in its own binary form.
        let table = match source {
            SourceKind::Postgres => TABLE.to_string(),
            SourceKind::DuckDb => TABLE.replace("JSONB", "JSON"),
            SourceKind::Mysql => unreachable!("MariaDB has its own test below: it lacks arrays, UUID and JSONB"),
        };
        env.exec(&table).await;
        // Postgres needs the bytea escape without the cast syntax DuckDB wants, and vice versa.
        let rows = match source {
            SourceKind::Postgres => ROWS.to_string(),
            SourceKind::DuckDb => ROWS.replace("'\\x00ff10'::BYTEA", "'\\x00\\xFF\\x10'::BLOB"),
            SourceKind::Mysql => unreachable!(),
        };
        env.exec(&rows).await;
        // A NULL key column must not break the comparison: give row 2 a label.
        env.exec("UPDATE typed SET label = 'nulls' WHERE id = 2").await;
        let (sent, stored) = sync_all(&env, "typed", source).await;
        payloads.push(sent);
        hashes.push(stored);
    }
    assert_eq!(payloads[0], payloads[1], "DuckDB and Postgres rows differ on the wire");
    assert_eq!(hashes[0], hashes[1], "DuckDB and Postgres give different key hashes or fingerprints");
    // Spot-check the canonical forms themselves.
    let first = &payloads[0][0];
    for expected in [
        "\"amount\":12.5",
        "\"tstz\":\"2024-03-01T08:00:00Z\"",
        "\"ts\":\"2024-03-01T10:00:00.123456Z\"",
        "\"doc\":{\"a\":\"x\",\"b\":[1,2]}",
        "\"docb\":{\"a\":null,\"z\":{\"x\":1.5,\"y\":\"\u{e9}\\n\"}}",
        "\"raw\":\"AP8Q\"",
        "\"nums\":[1,null,3]",
        "\"clock\":\"13:45:01.250\"",
    ] {
        assert!(first.contains(expected), "missing {expected} in {first}");
    }
}

/// The types MariaDB shares with the other two, declared in each engine's words, holding the
/// same rows: the same payloads, key hashes and fingerprints from all three.
#[tokio::test]
async fn mariadb_agrees_with_duckdb_and_postgres_on_the_types_they_share() {
    const SHARED: &str = "CREATE TABLE shared (
        id BIGINT, small SMALLINT, i INTEGER, flag BOOLEAN, ratio DOUBLE PRECISION, r REAL, amount DECIMAL(12,3),
        label VARCHAR(40), day DATE, clock TIME, ts TIMESTAMP, tstz TIMESTAMPTZ, raw BYTEA)";
    const MARIADB: &str = "CREATE TABLE shared (
        id BIGINT, small SMALLINT, i INT, flag BOOLEAN, ratio DOUBLE, r FLOAT, amount DECIMAL(12,3),
        label VARCHAR(40), day DATE, clock TIME(6), ts DATETIME(6), tstz TIMESTAMP(6) NULL, raw VARBINARY(16)
    ) CHARACTER SET utf8mb4";
    // `{tstz1}`, `{tstz3}`, `{raw1}`, `{raw3}`: each engine's literals.
    const ROWS: &str = "INSERT INTO shared VALUES
     (1, 7, -3, true, 0.1, 1.5, 12.500, 'plain', DATE '2024-02-29', TIME '13:45:01.25', TIMESTAMP '2024-03-01 10:00:00.123456', {tstz1}, {raw1}),
     (2, NULL, NULL, NULL, NULL, NULL, NULL, 'nulls', NULL, NULL, NULL, NULL, NULL),
     (3, -32768, 2147483647, false, -1e300, 0.25, -0.001, 'üñí ✓', DATE '1970-01-01', TIME '00:00:00', TIMESTAMP '1969-12-31 23:59:59', {tstz3}, {raw3})";
    let mut payloads = Vec::new();
    let mut hashes = Vec::new();
    for source in [SourceKind::DuckDb, SourceKind::Postgres, SourceKind::Mysql] {
        let env = Env::new(source, StateKind::Sqlite).await;
        let (table, tstz1, tstz3, raw1, raw3) = match source {
            SourceKind::DuckDb => (
                SHARED.replace("BYTEA", "BLOB"),
                "TIMESTAMPTZ '2024-03-01 10:00:00+02'",
                "TIMESTAMPTZ '2000-01-01 00:00:00+00'",
                "'\\x00\\xFF\\x10'::BLOB",
                "''::BLOB",
            ),
            SourceKind::Postgres => (
                SHARED.to_string(),
                "TIMESTAMPTZ '2024-03-01 10:00:00+02'",
                "TIMESTAMPTZ '2000-01-01 00:00:00+00'",
                "'\\x00ff10'::BYTEA",
                "''::BYTEA",
            ),
            // The test's session is at +00:00: TIMESTAMP literals are UTC.
            SourceKind::Mysql => (MARIADB.to_string(), "'2024-03-01 08:00:00'", "'2000-01-01 00:00:00'", "X'00FF10'", "X''"),
        };
        env.exec(&table).await;
        env.exec(&ROWS.replace("{tstz1}", tstz1).replace("{tstz3}", tstz3).replace("{raw1}", raw1).replace("{raw3}", raw3)).await;
        let (sent, stored) = sync_all(&env, "shared", source).await;
        payloads.push(sent);
        hashes.push(stored);
    }
    assert_eq!(payloads[0], payloads[1], "DuckDB and Postgres rows differ on the wire");
    assert_eq!(payloads[0], payloads[2], "DuckDB and MariaDB rows differ on the wire");
    assert_eq!(hashes[0], hashes[1], "DuckDB and Postgres give different key hashes or fingerprints");
    assert_eq!(hashes[0], hashes[2], "DuckDB and MariaDB give different key hashes or fingerprints");
}
