//! What the README promises survives an OS crash or a power cut: each commit of the SQLite state
//! store is synced to disk before the run goes on, and the file destination syncs the file and
//! its directory before it reports rows written. A crash cannot be staged here, so the tests
//! watch the system calls (strace, which `.ci/run` installs when missing).

use crate::support;

use std::path::Path;

use support::{sluice_bin, Env, SourceKind, StateKind};

/// Runs `sluice run NAME` under strace; the trace's lines.
fn traced_run(root: &Path, name: &str) -> Vec<String> {
    let trace = root.join("strace.txt");
    let status = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=openat,fsync,fdatasync,rename,renameat,renameat2,close", "-o"])
        .arg(&trace)
        .arg(sluice_bin())
        .args(["run", name, "--project"])
        .arg(root)
        .status()
        .unwrap_or_else(|e| panic!("strace is needed for this test ({e}): `apt-get install strace` (.ci/run installs it)"));
    assert!(status.success(), "sluice run under strace: {status}");
    std::fs::read_to_string(trace).unwrap().lines().map(str::to_string).collect()
}

/// The fd number an `openat` line returned, when it opened `path` (exactly).
fn opened(line: &str, path: &str) -> Option<String> {
    let quoted = format!("\"{path}\"");
    (line.contains("openat(") && line.contains(&quoted)).then(|| line.rsplit("= ").next().unwrap_or("").trim().to_string())
}

/// The calls `fsync(fd)`/`fdatasync(fd)` of one process line, as (pid, fd).
fn synced(line: &str) -> Option<(String, String)> {
    let pid = line.split_whitespace().next()?.to_string();
    let call = line.split_whitespace().nth(1)?;
    let fd = call.strip_prefix("fsync(").or_else(|| call.strip_prefix("fdatasync("))?.split(')').next()?.to_string();
    Some((pid, fd))
}

#[tokio::test]
async fn each_state_commit_reaches_the_disk() {
    let env = Env::with_sink_settings(SourceKind::DuckDb, StateKind::Sqlite, "max_batch_rows = 10").await;
    env.exec("CREATE TABLE t AS SELECT i AS id FROM range(1, 51) r(i)").await;
    env.write_sync("people", "destination = \"hook\"\nprimary_key = \"id\"", "SELECT id FROM t");
    // The store exists before the traced run, so its files are opened, not created, there.
    assert_eq!(support::sluice_cli(env.root(), &["check"], &[]).await.status.code(), Some(0));
    let root = env.root().to_path_buf();
    let lines = tokio::task::spawn_blocking(move || traced_run(&root, "people")).await.unwrap();
    let wal = env.root().join(".sluice/state.db-wal").display().to_string();
    let wal_fd: Vec<String> = lines.iter().filter_map(|l| opened(l, &wal)).collect();
    assert!(!wal_fd.is_empty(), "the WAL was opened: {lines:#?}");
    let syncs = lines.iter().filter_map(|l| synced(l)).filter(|(_, fd)| wal_fd.contains(fd)).count();
    // Five batches, each committed (a commit may take two answered batches at once), plus
    // the run's own records and the fold: with synchronous = NORMAL, none until a checkpoint.
    assert!(syncs >= 5, "the WAL is synced at each commit: {syncs} sync(s)");
}

#[tokio::test]
async fn the_file_destination_syncs_the_file_and_its_directory() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec("CREATE TABLE t AS SELECT i AS id, 'n' || i AS name FROM range(1, 6) r(i)").await;
    env.add_destination("out", "kind = \"file\"\npath = \"exports/people.csv\"");
    env.write_sync("people", "destination = \"out\"\nprimary_key = \"id\"", "SELECT * FROM t");
    let root = env.root().to_path_buf();
    let lines = tokio::task::spawn_blocking(move || traced_run(&root, "people")).await.unwrap();
    let out = env.root().join("exports/people.csv").display().to_string();
    let dir = env.root().join("exports").display().to_string();
    let renamed =
        lines.iter().position(|l| l.contains("rename") && l.contains(&format!("\"{out}\""))).expect("the file is renamed into place");
    // After the rename, the directory is opened and synced.
    let after = &lines[renamed..];
    let dir_fds: Vec<(String, String)> =
        after.iter().filter_map(|l| Some((l.split_whitespace().next()?.to_string(), opened(l, &dir)?))).collect();
    assert!(!dir_fds.is_empty(), "the directory is opened after the rename: {after:#?}");
    assert!(after.iter().filter_map(|l| synced(l)).any(|s| dir_fds.contains(&s)), "and synced: {after:#?}");
    // And the new file's data was synced before it was renamed into place.
    assert!(lines[..renamed].iter().any(|l| synced(l).is_some()), "{lines:#?}");
    let text = std::fs::read_to_string(env.root().join("exports/people.csv")).unwrap();
    assert_eq!(text.lines().count(), 6);
}

#[tokio::test]
async fn a_rewritten_output_file_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec("CREATE TABLE t AS SELECT i AS id FROM range(1, 4) r(i)").await;
    env.add_destination("out", "kind = \"file\"\npath = \"people.csv\"");
    env.write_sync("people", "destination = \"out\"\nprimary_key = \"id\"", "SELECT * FROM t");
    let path = env.root().join("people.csv");
    std::fs::write(&path, "id\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(env.run("people").await.written, 3);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "the file others read stays readable: {mode:o}");
}
