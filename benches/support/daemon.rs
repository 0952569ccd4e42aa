//! The idle daemon: `sluice daemon` with many scheduled syncs, measured once it is ready.

use std::path::Path;
use std::time::{Duration, Instant};

/// Starts a daemon with `syncs` syncs scheduled yearly (on New Year's Day, at different minutes;
/// hourly ones fired during the measurement when it crossed the hour), waits for
/// `/healthz`, lets it settle, and returns its (current, peak) resident memory in MB.
pub fn idle_rss(sluice: &Path, syncs: usize) -> Result<(f64, f64), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let config =
        format!("[sources.mem]\nkind = \"duckdb\"\n\n[destinations.out]\nkind = \"file\"\n\n[daemon]\nlisten = \"127.0.0.1:{port}\"\n");
    std::fs::create_dir_all(dir.path().join("syncs")).map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("sluice.toml"), config).map_err(|e| e.to_string())?;
    for i in 0..syncs {
        let sync = format!(
            "/* sluice\nschedule = \"{} 0 1 1 *\"\ncatch_up = false\nsource = \"mem\"\ndestination = \"out\"\nprimary_key = \"id\"\n\
             [target]\npath = \"out/s{i}.csv\"\n*/\nSELECT {i} AS id\n",
            i % 60
        );
        std::fs::write(dir.path().join(format!("syncs/s{i}.sql")), sync).map_err(|e| e.to_string())?;
    }
    let mut child = std::process::Command::new(sluice)
        // As contrib/systemd/sluice.service runs it.
        .env("MIMALLOC_ARENA_EAGER_COMMIT", "0")
        .arg("--project")
        .arg(dir.path())
        .arg("daemon")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the daemon: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let ready = runtime.block_on(async {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = http.get(format!("http://127.0.0.1:{port}/healthz")).send().await {
                if r.status().is_success() {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    });
    // Idle is what it settles to, not the start-up peak: give it a moment (a benchmark, not a test).
    std::thread::sleep(Duration::from_secs(3));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
    if !ready {
        return Err("the daemon did not become healthy within 60 s".into());
    }
    let kb = |name: &str| -> f64 {
        status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0.0)
    };
    Ok((kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0))
}
