//! The bad-input catalogue: each case is a broken sync file, config, model, data or runtime
//! condition, and the message a user gets: what, where, and what to do, with the right exit code
//! (2 invalid, 1 failed). No case may panic.

use crate::support;

use std::path::Path;

struct Case {
    name: &'static str,
    /// Extra TOML appended to sluice.toml (after the sources and destinations).
    config: &'static str,
    /// `syncs/s.sql`'s full text (`None`: a working sync).
    sync: Option<&'static str>,
    /// Setup run on the project directory before the command.
    setup: fn(&Path),
    args: &'static [&'static str],
    code: i32,
    expect: &'static [&'static str],
}

const GOOD: &str =
    "/* sluice\nsource = \"local\"\ndestination = \"out\"\nprimary_key = \"id\"\n[target]\npath = \"out/s.csv\"\n*/\nSELECT * FROM t";

fn none(_: &Path) {}

/// A state database another process holds the write lock of, for longer than the busy timeout.
fn locked_state(root: &Path) {
    let url = format!("sqlite://{}/.sluice/state.db?mode=rwc", root.display());
    std::fs::create_dir_all(root.join(".sluice")).unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            sqlx::migrate!("migrations/sqlite").run(&pool).await.unwrap();
            let mut conn = pool.acquire().await.unwrap();
            sqlx::query("BEGIN EXCLUSIVE").execute(&mut *conn).await.unwrap();
            ready_tx.send(()).unwrap();
            // Held past the busy timeout of the run the case starts; released with the thread.
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        })
    });
    ready_rx.recv().unwrap();
}

/// A state database a later sluice migrated further than this one knows.
fn newer_state(root: &Path) {
    let url = format!("sqlite://{}/.sluice/state.db?mode=rwc", root.display());
    std::fs::create_dir_all(root.join(".sluice")).unwrap();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            sqlx::migrate!("migrations/sqlite").run(&pool).await.unwrap();
            sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (9999, 'future', 1, x'00', 0)")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        })
    })
    .join()
    .unwrap();
}

fn base_config() -> String {
    "[sources.local]\nkind = \"duckdb\"\npath = \"w.duckdb\"\n\n[destinations.out]\nkind = \"file\"\n".into()
}

fn sync(header: &str, model: &str) -> String {
    format!("/* sluice\nsource = \"local\"\ndestination = \"out\"\n{header}\n[target]\npath = \"out/s.csv\"\n*/\n{model}")
}

fn cases() -> Vec<(Case, Option<String>)> {
    let c = |name, config, sync: Option<&'static str>, args, code, expect| {
        (Case { name, config, sync, setup: none, args, code, expect }, None::<String>)
    };
    let s =
        |name, text: String, code, expect| (Case { name, config: "", sync: None, setup: none, args: &["check"], code, expect }, Some(text));
    // A sync writing to destination `x`, defined by `config`, checked.
    let d = |name, config: &'static str, expect| {
        let toml: &'static str = Box::leak(format!("[destinations.x]\n{config}").into_boxed_str());
        let sync = "/* sluice\nsource = \"local\"\ndestination = \"x\"\nprimary_key = \"id\"\n*/\nSELECT * FROM t";
        (Case { name, config: toml, sync: Some(sync), setup: none, args: &["check"], code: 2, expect }, None::<String>)
    };
    let check: &'static [&'static str] = &["check"];
    let run: &'static [&'static str] = &["run"];
    vec![
        // Sync files.
        c("no header", "", Some("SELECT 1"), check, 2, &["syncs/s.sql:1", "must start with a `/* sluice` header"]),
        c("unterminated header", "", Some("/* sluice\nprimary_key = \"id\"\nSELECT 1"), check, 2, &["never closed", "`*/`"]),
        c("bad TOML in header", "", Some("/* sluice\nprimary_key = \n*/\nSELECT 1"), check, 2, &["syncs/s.sql:2", "invalid header"]),
        s("unknown header key", sync("primary_kee = \"id\"", "SELECT 1 AS id"), 2, &["unknown field `primary_kee`", "did you mean `primary_key`"]),
        s("wrong type", sync("primary_key = 5", "SELECT 1 AS id"), 2, &["syncs/s.sql:4", "invalid header"]),
        s("bad cron", sync("primary_key = \"id\"\nschedule = \"61 * * * *\"", "SELECT 1 AS id"), 2, &["syncs/s.sql:5", "not a valid cron"]),
        s("cron with 3 fields", sync("primary_key = \"id\"\nschedule = \"* * *\"", "SELECT 1 AS id"), 2, &["has 3 fields"]),
        s("unknown schedule name", sync("primary_key = \"id\"\nschedule = \"@sometimes\"", "SELECT 1 AS id"), 2, &["unknown schedule `@sometimes`"]),
        (Case { name: "unknown source", config: "", sync: Some("/* sluice\nsource = \"nope\"\ndestination = \"out\"\nprimary_key = \"id\"\n*/\nSELECT 1 AS id"), setup: none, args: &["check"], code: 2, expect: &["syncs/s.sql:2", "`nope`"] }, None),
        (Case { name: "unknown destination", config: "", sync: Some("/* sluice\nsource = \"local\"\ndestination = \"outt\"\nprimary_key = \"id\"\n*/\nSELECT 1 AS id"), setup: none, args: &["check"], code: 2, expect: &["syncs/s.sql:3", "`outt`", "did you mean `out`"] }, None),
        s("mapping to a missing column", sync("primary_key = \"id\"\n[mapping]\nemail = \"emial\"", "SELECT 1 AS id, 'a' AS email"), 2, &["mapped column `emial` is not a column of the model", "did you mean `email`"]),
        s("key column missing", sync("primary_key = \"key\"", "SELECT 1 AS id"), 2, &["primary_key column `key` is not a column"]),
        s("no primary key", sync("", "SELECT 1 AS id"), 2, &["has no `primary_key`"]),
        s("empty query", sync("primary_key = \"id\"", ""), 2, &["no SQL model after the header"]),
        s("two statements", sync("primary_key = \"id\"", "SELECT 1 AS id; SELECT 2 AS id"), 2, &["more than one statement"]),
        s("DML instead of a query", sync("primary_key = \"id\"", "DELETE FROM t"), 2, &["starts with `DELETE`", "sluice only reads"]),
        s("DDL instead of a query", sync("primary_key = \"id\"", "CREATE TABLE x AS SELECT 1"), 2, &["starts with `CREATE`"]),
        s("unknown mode", sync("primary_key = \"id\"\nmode = \"sideways\"", "SELECT 1 AS id"), 2, &["unknown variant `sideways`"]),
        s("jitter out of range", sync("primary_key = \"id\"\njitter = 99999", "SELECT 1 AS id"), 2, &["`jitter` is seconds"]),
        s("delete share out of range", sync("primary_key = \"id\"\nmax_delete_pct = 150.0", "SELECT 1 AS id"), 2, &["`max_delete_pct` is a percentage"]),
        s("bad hold duration", sync("primary_key = \"id\"\nretry_rejected_after = \"soon\"", "SELECT 1 AS id"), 2, &["`retry_rejected_after` = \"soon\" is not a duration"]),
        s("model SQL error", sync("primary_key = \"id\"", "SELECT id FROM no_such_table"), 2, &["syncs/s.sql:8", "no_such_table"]),
        (Case { name: "unsupported column type", config: "", sync: None, setup: none, args: &["run"], code: 1, expect: &["column `took`", "cast the column to VARCHAR in the model"] }, Some(sync("primary_key = \"id\"", "SELECT 1 AS id, INTERVAL 1 DAY AS took"))),
        // Config.
        c("unknown top-level key", "[destination.x]\nkind = \"file\"", None, check, 2, &["sluice.toml", "unknown field `destination`", "did you mean `destinations`"]),
        d("unknown destination kind", "kind = \"hubspt\"", &["destination `x`: unknown kind `hubspt`", "did you mean `hubspot`"]),
        c("unset variable", "[destinations.hook]\nkind = \"webhook\"\nurl = \"${SLUICE_NOT_SET_ANYWHERE}\"", None, check, 2, &["sluice.toml", "SLUICE_NOT_SET_ANYWHERE, which is not set"]),
        c("missing secret file", "[destinations.hook]\nkind = \"webhook\"\nurl_file = \"nope.secret\"", None, check, 2, &["destinations.hook.url_file", "cannot read", "nope.secret"]),
        d("bad webhook URL", "kind = \"webhook\"\nurl = \"not a url\"", &["destination `x`", "`url` is not a valid URL"]),
        d("bad duration", "kind = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\ntimeout = \"soon\"", &["invalid duration `soon`", "30s"]),
        d("HubSpot without token", "kind = \"hubspot\"", &["destination `x`", "missing field `token`"]),
        d("Sheets without credentials", "kind = \"google_sheets\"\nspreadsheet_id = \"abc\"", &["destination `x`", "no credentials"]),
        d("Salesforce with a bad key", "kind = \"salesforce\"\nlogin_url = \"https://login.salesforce.com\"\nclient_id = \"x\"\nusername = \"u\"\nprivate_key = \"${SLUICE_TEST_NOT_A_KEY}\"", &["destination `x`", "not a PEM RSA private key"]),
        c("bad state URL", "[state]\nurl = \"mysql://x\"", None, check, 2, &["[state] url must start with sqlite:// or postgres://"]),
        c("bad TOML in sluice.toml", "[destinations\n", None, check, 2, &["sluice.toml:", "invalid TOML"]),
        // Data, at run time.
        (Case { name: "duplicate keys", config: "", sync: None, setup: none, args: &["run"], code: 1, expect: &["2 duplicate primary key(s), nothing was sent: (id=1)", "make `id` unique"] }, Some(sync("primary_key = \"id\"", "SELECT 1 AS id UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 2"))),
        (Case { name: "NULL key", config: "", sync: None, setup: none, args: &["run"], code: 0, expect: &["NULL in primary key column `id`: row skipped"] }, Some(sync("primary_key = \"id\"", "SELECT NULL::INT AS id UNION ALL SELECT 2"))),
        s("empty mapped column", sync("primary_key = \"id\"\n[mapping]\nx = \"\"", "SELECT 1 AS id"), 2, &["mapping `x` names an empty column"]),
        (Case { name: "10 MB JSON cell", config: "", sync: None, setup: none, args: &["run"], code: 0, expect: &["1 written"] }, Some(sync("primary_key = \"id\"", "SELECT 1 AS id, to_json(repeat('x', 10000000)) AS big"))),
        (Case { name: "bytes that are not UTF-8", config: "", sync: None, setup: none, args: &["run"], code: 0, expect: &["1 written"] }, Some(sync("primary_key = \"id\"", "SELECT 1 AS id, '\\xFF\\xFE'::BLOB AS raw"))),
        // Runtime.
        (Case { name: "state database locked", config: "", sync: None, setup: locked_state, args: &["run"], code: 1, expect: &["the state database is locked by another process", "[state] url"] }, None),
        (Case { name: "state database from a newer sluice", config: "", sync: None, setup: newer_state, args: &["run"], code: 2, expect: &["written by a newer sluice", "upgrade sluice"] }, None),
        c("source down", "[sources.pg]\nkind = \"postgres\"\nurl = \"postgres://u:p@127.0.0.1:1/db\"", Some("/* sluice\nsource = \"pg\"\ndestination = \"out\"\nprimary_key = \"id\"\n*/\nSELECT 1 AS id"), run, 1, &["cannot connect to source `pg`: 127.0.0.1:1", "is the server up"]),
        c("MariaDB source down", "[sources.my]\nkind = \"mysql\"\nurl = \"mysql://u:p@127.0.0.1:1/db\"", Some("/* sluice\nsource = \"my\"\ndestination = \"out\"\nprimary_key = \"id\"\n*/\nSELECT 1 AS id"), run, 1, &["cannot connect to source `my`: 127.0.0.1:1", "check the source's `url`"]),
        c("bad MariaDB URL", "[sources.my]\nkind = \"mysql\"\nurl = \"postgres://u:p@h/db\"", Some("/* sluice\nsource = \"my\"\ndestination = \"out\"\nprimary_key = \"id\"\n*/\nSELECT 1 AS id"), run, 1, &["source `my`", "not a valid mysql:// URL"]),
        c("state store down", "[state]\nurl = \"postgres://u:p@127.0.0.1:1/db\"", None, run, 2, &["state store: cannot reach the state database at 127.0.0.1:1", "check [state] url"]),
        c("destination unreachable", "[destinations.hook]\nkind = \"webhook\"\nurl = \"http://sluice-test.invalid/hook\"\nmax_attempts = 1", Some("/* sluice\nsource = \"local\"\ndestination = \"hook\"\nprimary_key = \"id\"\n*/\nSELECT * FROM t"), run, 1, &["POST http://sluice-test.invalid", "could not connect"]),
    ]
}

async fn cli(root: &Path, args: &'static [&'static str]) -> (i32, String) {
    let out = support::sluice_cli(root, args, &[("SLUICE_TEST_NOT_A_KEY", "nope")]).await;
    (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn every_bad_input_gets_a_clear_message_and_the_right_exit_code() {
    let all = cases();
    assert!(all.len() >= 40, "the catalogue has {} cases", all.len());
    let mut failures = Vec::new();
    for (case, text) in all {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("syncs")).unwrap();
        let conn = duckdb::Connection::open(root.join("w.duckdb")).unwrap();
        conn.execute_batch("CREATE TABLE t AS SELECT 1 AS id, 'a' AS v").unwrap();
        drop(conn);
        std::fs::write(root.join("sluice.toml"), format!("{}\n{}\n", base_config(), case.config)).unwrap();
        let sync_text = text.unwrap_or_else(|| case.sync.unwrap_or(GOOD).to_string());
        std::fs::write(root.join("syncs/s.sql"), sync_text).unwrap();
        (case.setup)(root);
        let (code, out) = cli(root, case.args).await;
        // (`SLUICE_TEST_NOT_A_KEY` is set for the Salesforce case: not a PEM key.)
        let missing: Vec<&&str> = case.expect.iter().filter(|e| !out.contains(**e)).collect();
        if out.contains("panicked") || code != case.code || !missing.is_empty() {
            failures.push(format!("[{}] exit {code} (want {}), missing {missing:?}:\n{out}", case.name, case.code));
        }
    }
    assert!(failures.is_empty(), "{} case(s) wrong:\n\n{}", failures.len(), failures.join("\n\n"));
}

/// Disk full while writing the file destination: the run fails (exit 1) with a message saying so
/// and what to do, the output files are exactly as before the run (no torn line, no half
/// batch), and nothing is recorded as sent. The full disk is a 64 KiB tmpfs mounted over the
/// output directory inside a user and mount namespace (`unshare`), so the machine's own disks
/// are never filled.
#[test]
fn a_full_disk_fails_the_run_and_leaves_the_output_as_it_was() {
    let probe = std::process::Command::new("unshare").args(["--user", "--map-root-user", "--mount", "true"]).status();
    assert!(
        probe.map(|s| s.success()).unwrap_or(false),
        "this test needs `unshare --user --map-root-user --mount` (util-linux, with user namespaces enabled)"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for sub in ["syncs", "out", "big"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::write(root.join("sluice.toml"), "[sources.mem]\nkind = \"duckdb\"\n\n[destinations.out]\nkind = \"file\"\n").unwrap();
    let sync = |mode: &str, model: &str| {
        format!("/* sluice\nsource = \"mem\"\ndestination = \"out\"\nprimary_key = \"id\"\nmode = \"{mode}\"\n[target]\npath = \"out/{mode}.csv\"\n*/\n{model}")
    };
    let small = "SELECT i AS id, 'v' || i AS v FROM range(5) r(i)";
    let big = "SELECT i AS id, repeat('x', 100) || i AS v FROM range(2000) r(i)";
    for mode in ["mirror", "insert"] {
        std::fs::write(root.join(format!("syncs/{mode}.sql")), sync(mode, small)).unwrap();
        std::fs::write(root.join(format!("big/{mode}.sql")), sync(mode, big)).unwrap();
    }
    // One run that fits, a copy of its output, the big models, a run that cannot fit.
    let script = r#"
        set -e
        mount -t tmpfs -o size=64k tmpfs "$ROOT/out"
        "$SLUICE" --project "$ROOT" run > "$ROOT/run1.out" 2>&1
        cp "$ROOT/out/mirror.csv" "$ROOT/out/insert.csv" "$ROOT/"
        cp "$ROOT"/big/*.sql "$ROOT/syncs/"
        set +e
        "$SLUICE" --project "$ROOT" run > "$ROOT/run2.out" 2>&1
        echo $? > "$ROOT/run2.code"
        mkdir "$ROOT/after"
        cp "$ROOT/out/mirror.csv" "$ROOT/out/insert.csv" "$ROOT/after/"
        ls "$ROOT/out" > "$ROOT/after/listing"
    "#;
    let status = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
        .env("ROOT", root)
        .env("SLUICE", support::sluice_bin())
        .status()
        .unwrap();
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert!(status.success(), "the namespace script failed; first run:\n{}", read("run1.out"));
    let out = read("run2.out");
    assert_eq!(read("run2.code").trim(), "1", "{out}");
    assert!(out.contains("No space left on device") && out.contains("the disk is full"), "{out}");
    assert!(out.contains("Free some space"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
    for mode in ["mirror", "insert"] {
        assert_eq!(read(&format!("after/{mode}.csv")), read(&format!("{mode}.csv")), "{mode}.csv changed by the failed run");
    }
    assert_eq!(read("after/listing").lines().count(), 2, "a temp file was left behind: {}", read("after/listing"));
    // Outside the namespace `out/` is an empty directory on the real disk: a run there sends
    // every new row of the big models, so the failed run recorded none of them as sent.
    let run = std::process::Command::new(support::sluice_bin()).arg("--project").arg(root).arg("run").output().unwrap();
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{text}{}", String::from_utf8_lossy(&run.stderr));
    // (Insert mode sends added rows only: the five keys of the first run are not new.)
    assert!(text.contains("2000 written") && text.contains("1995 written"), "{text}");
}

/// NaN and infinite float keys cannot be keys (NaN equals nothing; neither has a JSON form to
/// store): each such row is skipped with a message that names it, and the run goes on, on both
/// sources; a mirror run afterwards deletes nothing and fails nothing.
#[tokio::test]
async fn nan_and_infinite_keys_are_rejected_per_row() {
    use support::{Env, SourceKind, StateKind};
    for source in [SourceKind::DuckDb, SourceKind::Postgres] {
        let env = Env::new(source, StateKind::Sqlite).await;
        env.exec(
            "CREATE TABLE f AS SELECT * FROM (VALUES (1.5::FLOAT8, 'a'), ('NaN'::FLOAT8, 'b'), ('Infinity'::FLOAT8, 'c'), \
             ('-Infinity'::FLOAT8, 'd'), (2.5::FLOAT8, 'e')) AS v(id, name)",
        )
        .await;
        env.write_sync("f", "destination = \"hook\"\nprimary_key = \"id\"\nmode = \"mirror\"", "SELECT id, name FROM f");
        for attempt in 1..=2 {
            let report = env.run("f").await;
            assert_eq!(report.status, sluice::state::RunStatus::Partial, "{source:?} run {attempt}: {report:?}");
            assert_eq!((report.invalid_keys, report.counts.removed, report.to_send.delete), (3, 0, 0), "{source:?}: {report:?}");
            let text = report.warnings.join("\n");
            assert!(text.contains("has NaN in primary key column `id`: row skipped (a key must be a finite number"), "{text}");
            assert!(
                text.contains("has Infinity in primary key column `id`") && text.contains("has -Infinity in primary key column"),
                "{text}"
            );
        }
        assert_eq!(support::keys_of(&env.sink.rows()), ["{\"id\":1.5}", "{\"id\":2.5}"], "{source:?}: the finite keys, once");
    }
}
