//! Output into a pipe that closes early (`sluice log X | head`, `sluice status | head -1`): no
//! panic, exit as usual, and a closed stdout never makes `run` skip the syncs after it.

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use support::*;

/// Runs `sluice ARGS` and reads one line of its stdout, then closes the pipe; its exit code and stderr.
fn first_line_then_close(root: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let mut child =
        Command::new(sluice_bin()).args(args).arg("--project").arg(root).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    // The reader is dropped here: the pipe is closed, as `head -1` closes it.
    let out = child.wait_with_output().unwrap();
    (out.status.code(), first, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn a_pipe_closed_after_the_first_line_is_no_error() {
    let env = Env::with_sink_settings(SourceKind::DuckDb, StateKind::Sqlite, "max_batch_rows = 500").await;
    // Enough change-log lines to fill a pipe's buffer many times over.
    env.exec("CREATE TABLE t AS SELECT i AS id, repeat('x', 100) AS v FROM range(1, 5001) r(i)").await;
    env.write_sync("k", "destination = \"hook\"\nprimary_key = \"id\"\nlog_values = true", "SELECT * FROM t");
    assert_eq!(env.run("k").await.written, 5000);
    let root = env.root().to_path_buf();
    let (code, first, stderr) =
        tokio::task::spawn_blocking(move || first_line_then_close(&root, &["log", "k", "--limit", "5000"])).await.unwrap();
    assert!(first.contains("upsert"), "{first}");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let root = env.root().to_path_buf();
    let (code, _, stderr) = tokio::task::spawn_blocking(move || first_line_then_close(&root, &["status", "--runs", "1000"])).await.unwrap();
    assert_eq!(code, Some(0), "{stderr}");
}

#[tokio::test]
async fn a_closed_stdout_never_skips_the_remaining_syncs() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec("CREATE TABLE t AS SELECT i AS id FROM range(1, 4) r(i)").await;
    for name in ["a", "b", "c"] {
        env.write_sync(name, "destination = \"hook\"\nprimary_key = \"id\"", "SELECT id FROM t");
    }
    let root = env.root().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        let mut child =
            Command::new(sluice_bin()).args(["run", "--project"]).arg(&root).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        // Closed before sluice writes anything.
        drop(child.stdout.take());
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(env.sink.rows().len(), 9, "all three syncs ran");
}
