//! The program's process: started, fed a batch while its results are read (both at once, so
//! neither pipe can fill up and stall the other), stopped. A program that breaks the protocol is
//! killed; the next batch starts a fresh one. It runs in a process group of its own, and a kill
//! takes the whole group: a shell script's children (`curl` in a loop) go with it.

use std::path::PathBuf;
use std::process::Stdio;

use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::encoding::result_line;
use crate::destinations::results::{key_index, key_text};
use crate::destinations::{DestinationError, RowOp, RowOutcome, Target};
use crate::process::StderrTail;

/// How to start the program.
#[derive(Clone)]
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
    last_stderr: StderrTail,
}

impl Program {
    pub fn start(spec: &Spec, target: &Target) -> Result<Program, DestinationError> {
        let (program, args) = spec.argv.split_first().ok_or_else(|| DestinationError::fatal("`command` is empty"))?;
        let settings = serde_json::to_string(&target.settings).unwrap_or_else(|_| "{}".into());
        // sluice's own environment may hold other destinations' secrets: the program gets a
        // plain environment and what `env` gives it.
        let mut cmd = crate::process::command(program, args, &spec.dir);
        cmd.env("SLUICE_SYNC", &target.sync)
            .env("SLUICE_RUN_ID", &target.run_id)
            .env("SLUICE_MODE", target.mode.as_str())
            .env("SLUICE_TARGET", settings)
            .stdin(Stdio::piped());
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
        // The program's stderr is its log: each line goes to sluice's, and the last one is kept
        // for the error when the program dies.
        let stderr = child.stderr.take().ok_or_else(|| DestinationError::fatal(format!("`{program}`: no stderr pipe")))?;
        let (destination, sync) = (spec.destination.clone(), target.sync.clone());
        let (last_stderr, _) =
            StderrTail::follow(stderr, 1, move |line| tracing::info!(destination = %destination, sync = %sync, "{line}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(|s| BufReader::new(s).lines());
        match stdout {
            Some(stdout) => Ok(Program { child, stdin, stdout, last_stderr }),
            None => Err(DestinationError::fatal(format!("`{program}`: no stdout pipe"))),
        }
    }

    /// Why the program stopped answering: its exit status if it has one, its last stderr line.
    async fn ended(&mut self, answered: usize, rows: usize) -> String {
        // Its stdout closed: it is most likely exiting. A moment to collect the status.
        let status = match tokio::time::timeout(std::time::Duration::from_secs(1), self.child.wait()).await {
            Ok(Ok(status)) => format!("the program exited ({status})"),
            _ => "the program closed its stdout".to_string(),
        };
        let said = self.last_stderr.lines().pop().map(|last| format!("; its last stderr line: {last}")).unwrap_or_default();
        format!("{status} after {answered} of {rows} results{said} (all of its stderr is in the log: `sluice run -v`)")
    }

    /// Writes `lines` (closing stdin after them when `close`) and reads results until every
    /// row of `batch` has one; `out[i]` gets row i's. `Some(why)` when the exchange broke off.
    pub async fn exchange(
        &mut self,
        target: &Target,
        batch: &[RowOp],
        lines: &[u8],
        close: bool,
        out: &mut [Option<RowOutcome>],
    ) -> Option<String> {
        let Some(mut stdin) = self.stdin.take() else { return Some("the program's stdin is closed".into()) };
        let index = key_index(target, batch);
        let write = async {
            // A program that exits early closes the pipe: its answers (or their absence) say more.
            let _ = stdin.write_all(lines).await;
            let _ = stdin.flush().await;
            // Once per batch: end of input now, while its results are being read.
            (!close).then_some(stdin)
        };
        let stdout = &mut self.stdout;
        let read = async {
            let mut answered = 0;
            while answered < batch.len() {
                let line = match stdout.next_line().await {
                    Ok(Some(line)) if line.trim().is_empty() => continue,
                    Ok(Some(line)) => line,
                    Ok(None) => return Err(answered),
                    Err(e) => return Ok(Some(format!("cannot read the program's stdout: {e}"))),
                };
                let result = match result_line(&line) {
                    Ok(result) => result,
                    Err(why) => return Ok(Some(why)),
                };
                let Some(&i) = index.get(&key_text(target, &result.key)) else {
                    return Ok(Some(format!(
                        "a result names a key that is not in this batch ({}): echo each row's `key` exactly as it was sent",
                        result.key
                    )));
                };
                // A second answer for a row changes nothing and is not counted twice.
                if out[i].is_none() {
                    out[i] = Some(result.outcome(&batch[i]));
                    answered += 1;
                }
            }
            Ok(None)
        };
        let (stdin, read) = tokio::join!(write, read);
        self.stdin = stdin;
        match read {
            Ok(broke) => broke,
            Err(answered) => Some(self.ended(answered, batch.len()).await),
        }
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
                self.kill_group();
                let _ = self.child.kill().await;
                Err(format!("the program did not exit within {} s of its stdin closing: killed", timeout.as_secs()))
            }
        }
    }

    /// Stops a program whose state is unknown (it broke the protocol or timed out).
    pub async fn kill(mut self) {
        self.kill_group();
        let _ = self.child.kill().await;
    }

    /// SIGKILL to the program's process group (its id is the program's pid, while the program
    /// is not yet reaped: after that `id()` is `None` and nothing is sent).
    fn kill_group(&mut self) {
        crate::process::kill_group(self.child.id());
    }
}

impl Drop for Program {
    /// A run that ends mid-batch (cancelled, failed) takes the program's whole group down too.
    fn drop(&mut self) {
        self.kill_group();
    }
}
