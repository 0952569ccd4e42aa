//! The sluice benchmark: sluice against the raw read of the same model and against drt, on the
//! same machine, in one run. `scripts/bench` runs it (never CI): it builds sluice in release
//! mode, installs drt into a venv, and passes `--drt`.
//!
//! Per source (Postgres, DuckDB), a model of N rows (an id and nine columns of mixed types):
//! the raw read, then sluice to a null sink (engine cost only), a first full sync, a run with no
//! change, 1 % and 10 % of rows changed, and 1 % deleted (mirror); drt syncs the same model to
//! the same sink (its REST destination, 500 rows per request, batch body). Every run is a child
//! process under `/usr/bin/time -v`: wall time, CPU time and peak RSS. The sink counts requests
//! and rows. Then an idle daemon with 100 scheduled syncs. The report is a markdown table.

mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Parser;
use support::measure::{self, Measure};

#[derive(Parser)]
#[command(about = "Benchmark sluice against the raw read and drt")]
struct Opts {
    /// Rows in the model.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// 10,000,000 rows (drt is skipped: it would take the better part of an hour).
    #[arg(long)]
    large: bool,
    /// drt's executable (`scripts/bench` installs it in a venv); without it drt is skipped.
    #[arg(long, env = "SLUICE_BENCH_DRT")]
    drt: Option<PathBuf>,
    /// A Postgres server; the database `sluice_bench` is created there, and dropped after.
    #[arg(long, env = "SLUICE_BENCH_PG", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pg: String,
    /// Only these sources (`postgres`, `duckdb`).
    #[arg(long, value_delimiter = ',', default_value = "postgres,duckdb")]
    sources: Vec<String>,
    /// Also write the report here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
    /// Internal: the DuckDB raw read, run as a child process so it is measured like the others.
    #[arg(long, hide = true, num_args = 2, value_names = ["DB", "SQL"])]
    raw_duckdb: Option<Vec<String>>,
}

/// Rows per request for both tools.
const BATCH: u64 = 500;

/// The model both tools sync. drt's batch body template cannot serialise `numeric` or
/// `timestamptz`, so those two columns are cast for both.
const MODEL: &str =
    "SELECT id, name, email, score, amount::float8 AS amount, created_at::text AS created_at, active, plan, country, attrs FROM model";

fn main() {
    let opts = Opts::parse();
    if let Some(raw) = &opts.raw_duckdb {
        return raw_duckdb_read(&raw[0], &raw[1]);
    }
    if let Err(e) = bench(opts) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

/// `COPY (model) TO '/dev/null'`: DuckDB's own fastest read of the model.
fn raw_duckdb_read(db: &str, sql: &str) {
    let config = duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly).expect("read-only config");
    let conn = duckdb::Connection::open_with_flags(db, config).expect("open the bench database");
    conn.execute_batch(&format!("COPY ({sql}) TO '/dev/null' (FORMAT csv)")).expect("the raw read");
}

struct Row {
    source: &'static str,
    scenario: String,
    tool: &'static str,
    m: Measure,
    /// Rows and requests the sink saw (none for raw reads).
    sent: Option<(u64, u64)>,
}

struct Bench {
    opts: Opts,
    rows: u64,
    dir: tempfile::TempDir,
    sluice: PathBuf,
    sink: support::sink::Sink,
    pg_url: String,
    results: Vec<Row>,
    notes: Vec<String>,
}

fn bench(mut opts: Opts) -> Result<(), String> {
    let rows = if opts.large { 10_000_000 } else { opts.rows };
    if opts.large && opts.drt.is_some() {
        eprintln!("bench: --large skips drt");
        opts.drt = None;
    }
    let sluice = PathBuf::from(env!("CARGO_BIN_EXE_sluice"));
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let pg_url = replace_database(&opts.pg, "sluice_bench");
    let sink = support::sink::start();
    let mut b = Bench { opts, rows, dir, sluice, sink, pg_url, results: Vec::new(), notes: Vec::new() };
    b.write_project()?;
    let sources = b.opts.sources.clone();
    for source in &sources {
        match source.as_str() {
            "postgres" => b.source("postgres")?,
            "duckdb" => b.source("duckdb")?,
            other => return Err(format!("unknown source `{other}` (postgres, duckdb)")),
        }
    }
    let idle = b.idle_daemon()?;
    if sources.iter().any(|s| s == "postgres") {
        psql(&b.opts.pg, "DROP DATABASE IF EXISTS sluice_bench WITH (FORCE)")?;
    }
    let report = b.report(idle);
    println!("{report}");
    if let Some(out) = &b.opts.out {
        std::fs::write(out, &report).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    Ok(())
}

fn replace_database(url: &str, db: &str) -> String {
    match url.rfind('/') {
        Some(i) if i > "postgres://".len() => format!("{}/{db}", &url[..i]),
        _ => format!("{url}/{db}"),
    }
}

fn psql(url: &str, sql: &str) -> Result<(), String> {
    let out = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if !out.status.success() {
        return Err(format!("psql: {sql}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

impl Bench {
    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn write_project(&self) -> Result<(), String> {
        let sink = self.sink.addr;
        let config = format!(
            "[sources.postgres]\nkind = \"postgres\"\nurl = \"{}\"\n\n[sources.duckdb]\nkind = \"duckdb\"\npath = \"bench.duckdb\"\n\n\
             [destinations.sink]\nkind = \"webhook\"\nurl = \"http://{sink}/rows\"\nmax_batch_rows = {BATCH}\n\n\
             [destinations.null]\nkind = \"webhook\"\nurl = \"http://{sink}/null\"\nmax_batch_rows = {BATCH}\n",
            self.pg_url
        );
        let write = |rel: &str, text: &str| {
            let path = self.root().join(rel);
            std::fs::create_dir_all(path.parent().unwrap_or(self.root()))
                .and_then(|_| std::fs::write(&path, text))
                .map_err(|e| e.to_string())
        };
        write("sluice.toml", &config)?;
        for source in ["postgres", "duckdb"] {
            for dest in ["sink", "null"] {
                let header = format!(
                    "/* sluice\nsource = \"{source}\"\ndestination = \"{dest}\"\nprimary_key = \"id\"\nmode = \"mirror\"\n*/\n{MODEL}\n"
                );
                write(&format!("syncs/{source}_{dest}.sql"), &header)?;
            }
        }
        Ok(())
    }

    /// Creates the model table in `source` with `self.rows` rows.
    fn generate(&self, source: &str) -> Result<(), String> {
        let n = self.rows;
        eprintln!("bench: generating {n} rows in {source}");
        match source {
            "postgres" => {
                psql(&self.opts.pg, "DROP DATABASE IF EXISTS sluice_bench WITH (FORCE)")?;
                psql(&self.opts.pg, "CREATE DATABASE sluice_bench")?;
                psql(
                    &self.pg_url,
                    &format!(
                        "CREATE TABLE model AS SELECT i::bigint AS id, 'customer ' || i AS name, 'c' || i || '@example.com' AS email,
                           (i % 997) / 7.0::float8 AS score, ((i % 100000) / 100.0)::numeric(12,2) AS amount,
                           timestamptz '2024-01-01 00:00:00+00' + (i % 86400) * interval '1 minute' AS created_at,
                           i % 3 = 0 AS active, (ARRAY['free','pro','team','enterprise'])[1 + i % 4] AS plan,
                           (ARRAY['DE','US','FR','JP','BR'])[1 + i % 5] AS country,
                           jsonb_build_object('visits', i % 50, 'tags', jsonb_build_array('a', i % 7)) AS attrs
                         FROM generate_series(1, {n}) AS i;
                         ALTER TABLE model ADD PRIMARY KEY (id);"
                    ),
                )?;
                // (its own statement: psql runs one -c string as one transaction)
                psql(&self.pg_url, "VACUUM ANALYZE model")
            }
            _ => self.duckdb(&format!(
                "CREATE OR REPLACE TABLE model AS SELECT i::BIGINT AS id, 'customer ' || i AS name, 'c' || i || '@example.com' AS email,
                   (i % 997) / 7.0 AS score, ((i % 100000) / 100.0)::DECIMAL(12,2) AS amount,
                   TIMESTAMP '2024-01-01 00:00:00' + to_minutes((i % 86400)::BIGINT) AS created_at,
                   i % 3 = 0 AS active, ['free','pro','team','enterprise'][1 + i % 4] AS plan,
                   ['DE','US','FR','JP','BR'][1 + i % 5] AS country,
                   json_object('visits', i % 50, 'tags', json_array('a', i % 7)) AS attrs
                 FROM range(1, {}) t(i); CHECKPOINT;",
                n + 1
            )),
        }
    }

    /// Runs statements on the bench DuckDB file; the connection is closed before sluice opens it.
    fn duckdb(&self, sql: &str) -> Result<(), String> {
        let conn = duckdb::Connection::open(self.root().join("bench.duckdb")).map_err(|e| e.to_string())?;
        conn.execute_batch(sql).map_err(|e| format!("duckdb: {e}"))
    }

    fn change(&self, source: &str, sql: &str) -> Result<(), String> {
        match source {
            "postgres" => psql(&self.pg_url, sql),
            _ => self.duckdb(sql),
        }
    }

    fn raw_read(&self, source: &str) -> Result<Measure, String> {
        match source {
            "postgres" => {
                let copy = format!("\\copy ({MODEL}) TO '/dev/null'");
                measure::run("psql", &["-X", "-q", "-d", &self.pg_url, "-c", &copy], &[])
            }
            _ => {
                let exe = std::env::current_exe().map_err(|e| e.to_string())?;
                let db = self.root().join("bench.duckdb");
                measure::run(&exe.to_string_lossy(), &["--raw-duckdb", &db.to_string_lossy(), MODEL], &[])
            }
        }
    }

    fn sluice(&self, sync: &str, extra: &[&str]) -> Result<Measure, String> {
        let root = self.root().to_string_lossy().into_owned();
        let mut args = vec!["--project", root.as_str(), "run", sync];
        args.extend_from_slice(extra);
        measure::run(&self.sluice.to_string_lossy(), &args, &[])
    }

    fn record(&mut self, source: &'static str, scenario: &str, tool: &'static str, m: Measure) {
        let sent = self.sink.counts.take();
        let sent = (tool != "raw read").then_some((sent.1, sent.0));
        eprintln!("bench: {source} {scenario} {tool}: {:.2} s wall, {:.2} s CPU, {:.0} MB", m.wall_s, m.cpu_s, m.peak_rss_mb);
        self.results.push(Row { source, scenario: scenario.to_string(), tool, m, sent });
    }

    fn source(&mut self, source: &'static str) -> Result<(), String> {
        self.generate(source)?;
        let (sink, null) = (format!("{source}_sink"), format!("{source}_null"));
        let m = self.raw_read(source)?;
        self.record(source, "read the model", "raw read", m);
        let m = self.sluice(&null, &[])?;
        self.record(source, "full sync, null sink", "sluice", m);
        let m = self.sluice(&sink, &[])?;
        self.record(source, "full sync", "sluice", m);
        if let Some(m) = self.drt(source)? {
            self.record(source, "full sync", "drt", m);
        }
        let m = self.sluice(&sink, &[])?;
        self.record(source, "no change", "sluice", m);
        self.change(source, "UPDATE model SET score = score + 1 WHERE id % 100 = 0")?;
        let m = self.sluice(&sink, &[])?;
        self.record(source, "1% changed", "sluice", m);
        if let Some(m) = self.drt(source)? {
            self.record(source, "1% changed", "drt", m);
        }
        self.change(source, "UPDATE model SET plan = 'changed' WHERE id % 10 = 5")?;
        let m = self.sluice(&sink, &[])?;
        self.record(source, "10% changed", "sluice", m);
        self.change(source, "DELETE FROM model WHERE id % 100 = 7")?;
        let m = self.sluice(&sink, &[])?;
        self.record(source, "1% deleted (mirror)", "sluice", m);
        Ok(())
    }

    /// drt syncing the same model to the same sink; `None` when drt is not available or cannot
    /// read this source.
    fn drt(&mut self, source: &str) -> Result<Option<Measure>, String> {
        let Some(drt) = &self.opts.drt else { return Ok(None) };
        match support::drt::run(drt, source, self.root(), &self.pg_url, self.sink.addr, BATCH, MODEL) {
            Ok(m) => Ok(Some(m)),
            Err(e) => {
                // drt failing is a finding, not a reason to lose the rest of the benchmark.
                self.sink.counts.take();
                self.notes.push(format!("drt failed on {source}: {}", e.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")));
                eprintln!("bench: drt failed on {source}: {e}");
                Ok(None)
            }
        }
    }

    /// An idle daemon with 100 syncs scheduled hourly: its resident memory once it is ready.
    fn idle_daemon(&self) -> Result<(f64, f64), String> {
        support::daemon::idle_rss(&self.sluice, 100)
    }

    fn report(&self, idle: (f64, f64)) -> String {
        let mut r = String::new();
        let _ = writeln!(r, "Model: {} rows, 10 columns (`{MODEL}`); {BATCH} rows per request.\n", self.rows);
        let _ = writeln!(r, "| source | scenario | tool | wall s | CPU s | peak RSS MB | rows sent | rows/s | requests (expected) |");
        let _ = writeln!(r, "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        for row in &self.results {
            let (sent, rate, requests) = match row.sent {
                Some((rows, requests)) => (
                    rows.to_string(),
                    format!("{:.0}", rows as f64 / row.m.wall_s.max(1e-9)),
                    format!("{requests} ({})", rows.div_ceil(BATCH)),
                ),
                None => ("".into(), format!("{:.0}", self.rows as f64 / row.m.wall_s.max(1e-9)), "".into()),
            };
            let _ = writeln!(
                r,
                "| {} | {} | {} | {:.2} | {:.2} | {:.0} | {sent} | {rate} | {requests} |",
                row.source, row.scenario, row.tool, row.m.wall_s, row.m.cpu_s, row.m.peak_rss_mb
            );
        }
        let find = |source: &str, scenario: &str, tool: &str| {
            self.results.iter().find(|r| r.source == source && r.scenario == scenario && r.tool == tool).map(|r| &r.m)
        };
        let _ = writeln!(r, "\nRatios:\n");
        for source in ["postgres", "duckdb"] {
            if let (Some(s), Some(raw)) = (find(source, "no change", "sluice"), find(source, "read the model", "raw read")) {
                let _ = writeln!(r, "- {source}: no-change run / raw read = {:.2}x wall (target <= 1.5x)", s.wall_s / raw.wall_s);
            }
            for scenario in ["full sync", "1% changed"] {
                if let (Some(s), Some(d)) = (find(source, scenario, "sluice"), find(source, scenario, "drt")) {
                    let _ = writeln!(
                        r,
                        "- {source}, {scenario}: drt / sluice = {:.1}x wall; peak RSS sluice {:.0} MB, drt {:.0} MB",
                        d.wall_s / s.wall_s,
                        s.peak_rss_mb,
                        d.peak_rss_mb
                    );
                }
            }
        }
        let _ = writeln!(r, "- idle daemon, 100 scheduled syncs: {:.1} MB RSS ({:.1} MB peak)", idle.0, idle.1);
        for note in &self.notes {
            let _ = writeln!(r, "- {note}");
        }
        r
    }
}
