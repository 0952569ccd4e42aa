//! Runs a command under `/usr/bin/time -v` and reads back what it cost.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[derive(Clone, Debug, Default)]
pub struct Measure {
    pub wall_s: f64,
    pub cpu_s: f64,
    pub peak_rss_mb: f64,
}

/// Runs `program args` to completion and measures it; a failed command is an error carrying
/// its output, since a benchmark of a failed run means nothing.
pub fn run(program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<Measure, String> {
    run_in(Path::new("."), program, args, envs)
}

/// [`run`] in directory `dir`.
pub fn run_in(dir: &Path, program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<Measure, String> {
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .current_dir(dir)
        .arg("-v")
        .arg(program)
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .map_err(|e| format!("cannot start /usr/bin/time {program}: {e} (install GNU time)"))?;
    let wall_s = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("{program} {} failed ({}):\n{stdout}\n{}", args.join(" "), out.status, tail(&stderr, 40)));
    }
    let field = |name: &str| -> f64 {
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(name).and_then(|rest| rest.trim().trim_start_matches(':').trim().parse().ok()))
            .unwrap_or(0.0)
    };
    Ok(Measure {
        wall_s,
        cpu_s: field("User time (seconds)") + field("System time (seconds)"),
        peak_rss_mb: field("Maximum resident set size (kbytes)") / 1024.0,
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
