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
