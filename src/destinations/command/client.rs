//! The program's process: started, fed a batch while its results are read (both at once, so
//! neither pipe can fill up and stall the other), stopped. A program that breaks the protocol is
//! killed; the next batch starts a fresh one.

use std::path::PathBuf;
use std::process::Stdio;

use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::encoding::result_line;
use crate::destinations::results::RowResult;
use crate::destinations::{DestinationError, Target};

/// How to start the program.
pub struct Spec {
    pub destination: String,
    pub argv: Vec<String>,
    pub dir: PathBuf,
    pub env: Vec<(String, SecretString)>,
}

pub struct Program {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Program {
    pub fn start(spec: &Spec, target: &Target) -> Result<Program, DestinationError> {
        let (program, args) = spec.argv.split_first().ok_or_else(|| DestinationError::fatal("`command` is empty"))?;
        let settings = serde_json::to_string(&target.settings).unwrap_or_else(|_| "{}".into());
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .current_dir(&spec.dir)
            .env("SLUICE_SYNC", &target.sync)
            .env("SLUICE_RUN_ID", &target.run_id)
            .env("SLUICE_MODE", target.mode.as_str())
            .env("SLUICE_TARGET", settings)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (name, value) in &spec.env {
            cmd.env(name, value.expose_secret());
        }
        let mut child = cmd.spawn().map_err(|e| {
            DestinationError::fatal(format!(
                "cannot start `{program}` (in {}): {e}; check `command` in [destinations.{}]",
                spec.dir.display(),
                spec.destination
            ))
        })?;
        if let Some(stderr) = child.stderr.take() {
            // The program's stderr is its log: each line goes to sluice's.
            let (destination, sync) = (spec.destination.clone(), target.sync.clone());
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::info!(destination = %destination, sync = %sync, "{line}");
                }
            });
        }
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(|s| BufReader::new(s).lines());
        match stdout {
            Some(stdout) => Ok(Program { child, stdin, stdout }),
            None => Err(DestinationError::fatal(format!("`{program}`: no stdout pipe"))),
        }
    }

    /// Writes `lines` (closing stdin after them when `close`) and reads result lines into
    /// `results` until there are `rows`. `Some(why)` when the exchange broke off.
    pub async fn exchange(&mut self, lines: &[u8], rows: usize, close: bool, results: &mut Vec<RowResult>) -> Option<String> {
        let Some(mut stdin) = self.stdin.take() else { return Some("the program's stdin is closed".into()) };
        let write = async {
            // A program that exits early closes the pipe: its answers (or their absence) say more.
            let _ = stdin.write_all(lines).await;
            let _ = stdin.flush().await;
            // Once per batch: end of input now, while its results are being read.
            (!close).then_some(stdin)
        };
        let stdout = &mut self.stdout;
        let read = async {
            while results.len() < rows {
                match stdout.next_line().await {
                    Ok(Some(line)) if line.trim().is_empty() => {}
                    Ok(Some(line)) => match result_line(&line) {
                        Ok(result) => results.push(result),
                        Err(why) => return Some(why),
                    },
                    Ok(None) => return Some(format!("the program closed its stdout after {} of {rows} results", results.len())),
                    Err(e) => return Some(format!("cannot read the program's stdout: {e}")),
                }
            }
            None
        };
        let (stdin, broke) = tokio::join!(write, read);
        self.stdin = stdin;
        broke
    }

    /// Ends the program after its last batch: stdin closes, and it has until `timeout` to exit.
    /// `Err(why)` when it failed or had to be killed.
    pub async fn finish(mut self, timeout: std::time::Duration) -> Result<(), String> {
        drop(self.stdin.take());
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("the program exited with {status}")),
            Ok(Err(e)) => Err(format!("cannot wait for the program: {e}")),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(format!("the program did not exit within {} s of its stdin closing: killed", timeout.as_secs()))
            }
        }
    }

    /// Stops a program whose state is unknown (it broke the protocol or timed out).
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}
