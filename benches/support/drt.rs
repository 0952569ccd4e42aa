//! drt (`drt-core`, Python) syncing the benchmark's model to the same sink, configured as well
//! as it allows: its REST destination in batch mode, 500 rows per request (`sync.batch_size`
//! and `max_records_per_request`), pacing off (`requests_per_second: 0`; the default is 10/s),
//! upsert mode. drt keeps no per-row state for REST destinations, so every run sends every row.

use std::net::SocketAddr;
use std::path::Path;

use super::measure::{self, Measure};

/// One `drt run` of the model from `source` ("postgres" or "duckdb"). Its project lives under
/// `root/drt-SOURCE`; its profile under a private HOME (drt reads `~/.drt/profiles.yml`).
pub fn run(drt: &Path, source: &str, root: &Path, pg_url: &str, sink: SocketAddr, batch: u64, model: &str) -> Result<Measure, String> {
    let dir = root.join(format!("drt-{source}"));
    let profile = match source {
        "postgres" => {
            let url = reqwest::Url::parse(pg_url).map_err(|e| format!("{pg_url}: {e}"))?;
            format!(
                "bench:\n  type: postgres\n  host: {}\n  port: {}\n  dbname: {}\n  user: {}\n",
                url.host_str().unwrap_or("127.0.0.1"),
                url.port().unwrap_or(5432),
                url.path().trim_start_matches('/'),
                if url.username().is_empty() { "postgres" } else { url.username() }
            )
        }
        _ => format!("bench:\n  type: duckdb\n  database: {}\n", root.join("bench.duckdb").display()),
    };
    let sync = format!(
        "name: bench\nmodel: \"{model}\"\ndestination:\n  type: rest_api\n  url: \"http://{sink}/rows\"\n  method: POST\n  \
         headers:\n    Content-Type: \"application/json\"\n  body_mode: batch\n  max_records_per_request: {batch}\n  \
         batch_template: '{{\"rows\": {{{{ rows | tojson }}}}}}'\n  rate_limit:\n    requests_per_second: 0\n\
         sync:\n  mode: upsert\n  batch_size: {batch}\n  on_error: fail\n"
    );
    let write = |rel: &str, text: &str| {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap_or(&dir)).and_then(|_| std::fs::write(&path, text)).map_err(|e| e.to_string())
    };
    write("drt_project.yml", "name: bench\nversion: \"0.1\"\nprofile: bench\n")?;
    write("home/.drt/profiles.yml", &profile)?;
    write("syncs/bench.yml", &sync)?;
    let home = dir.join("home");
    measure::run_in(&dir, &drt.to_string_lossy(), &["run", "--select", "bench"], &[("HOME", &home.to_string_lossy())])
}
