//! Programs sluice runs for a user (command destinations and command sources): a clean
//! environment, their own process group, and a way to take the whole group down.

use std::path::Path;
use std::process::Stdio;

/// What a program inherits of sluice's environment: enough to find programs, certificates and
/// proxies, and to speak the user's language; nothing that could be a secret (sluice's own
/// environment may hold every destination's credentials).
const INHERITED: [&str; 15] = [
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "https_proxy",
    "no_proxy",
];

/// `program args...` in `dir`, with a clean environment (only [`INHERITED`] names), stdout and
/// stderr piped, in a process group of its own (see [`kill_group`]), killed if dropped.
pub fn command(program: &str, args: &[String], dir: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.env_clear();
    for (name, value) in std::env::vars_os().filter(|(n, _)| n.to_str().is_some_and(|n| INHERITED.contains(&n))) {
        cmd.env(name, value);
    }
    cmd.args(args).current_dir(dir).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).kill_on_drop(true);
    cmd
}

/// SIGKILL to the process group of `pid` (a program started by [`command`] leads its own): a
/// shell script's children (`curl` in a loop) go with it.
pub fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is shared.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// The last lines a program wrote on stderr, kept for the error when it fails.
#[derive(Clone)]
pub struct StderrTail(std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>);

impl StderrTail {
    /// Follows `stderr` to its end: every line goes to `log` (sluice's log, with the caller's
    /// fields), the last `keep` lines (300 characters each) are kept. The task ends when the
    /// pipe closes, i.e. when the program's whole group is gone.
    pub fn follow(
        stderr: tokio::process::ChildStderr,
        keep: usize,
        log: impl Fn(&str) + Send + 'static,
    ) -> (StderrTail, tokio::task::JoinHandle<()>) {
        use tokio::io::AsyncBufReadExt;
        let tail = StderrTail(Default::default());
        let kept = tail.clone();
        let task = tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                log(&line);
                if let Ok(mut t) = kept.0.lock() {
                    if t.len() == keep {
                        t.pop_front();
                    }
                    t.push_back(line.chars().take(300).collect());
                }
            }
        });
        (tail, task)
    }

    /// The kept lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().map(|t| t.iter().cloned().collect()).unwrap_or_default()
    }
}
