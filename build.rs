//! Names the commit in `sluice --version`: `$SLUICE_COMMIT` when set (a build without the git
//! history: a container context, a source tarball), else the checkout's HEAD, else `unknown`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SLUICE_COMMIT");
    let from_env = std::env::var("SLUICE_COMMIT").ok().filter(|c| !c.trim().is_empty());
    let commit = from_env.or_else(head).unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=SLUICE_COMMIT={}", commit.trim());
}

/// `git rev-parse --short=12 HEAD`, and the files that change when HEAD moves (so a new commit
/// rebuilds with its name).
fn head() -> Option<String> {
    let git_dir = git(&["rev-parse", "--git-dir"])?;
    let git_dir = Path::new(&git_dir);
    println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        println!("cargo:rerun-if-changed={}", git_dir.join(reference).display());
        println!("cargo:rerun-if-changed={}", git_dir.join("packed-refs").display());
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}
