//! Throughput at real latency: `sluice run` against each destination's emulator answering every
//! request after 300 ms +- 100 ms and enforcing the service's published limit, against the least
//! time that limit allows (the floor). `scripts/bench --throughput` runs it (never CI).
//!
//! Per scenario and per repetition: a fresh emulator and project (a DuckDB model, a SQLite
//! state store), then `sluice run` as a child process, timed from start to exit. The floor is
//! what the limit allows at that latency: for a rate limit of N requests per window, the first N
//! at once and each later one a window after the one N before it (`RateLimit::floor`); for a
//! service with no rate limit, rounds of `max_in_flight` requests. Reported: the median wall
//! time, the floor, their ratio, the requests sent and how many were answered 429.

#[path = "../tests/it/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::time::{Duration, Instant};

use clap::Parser;
use sluice::destinations::flow::RateLimit;
use support::faults::Latency;
use support::{Env, SourceKind, StateKind};

#[derive(Parser)]
#[command(about = "sluice's throughput against emulators with real latency and limits")]
struct Opts {
    /// Rows per scenario (Sheets: a tenth).
    #[arg(long, default_value_t = 20_000)]
    rows: usize,
    /// Timed runs per scenario; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Each answer's latency, and its spread either way.
    #[arg(long, default_value = "300ms")]
    latency: humantime::Duration,
    #[arg(long, default_value = "100ms")]
    jitter: humantime::Duration,
    /// Only these scenarios (`hubspot`, `hubspot-replicas`, `salesforce`, `webhook`, `sheets`,
    /// `slack`).
    #[arg(long, value_delimiter = ',', default_value = "hubspot,hubspot-replicas,salesforce,webhook,sheets,slack")]
    only: Vec<String>,
    /// `max_in_flight` for the HubSpot scenarios (its default, 10, when not given).
    #[arg(long)]
    hubspot_in_flight: Option<usize>,
    /// Also write the report here.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// One timed run: its wall time, the requests the emulator got and the 429s it answered.
struct Timed {
    wall: Duration,
    requests: usize,
    refused: usize,
}

/// What a scenario's emulator tells after a run: the requests it got, the 429s it answered, and
/// the floor for those requests (setup requests included: they count against limits too).
type Count = Box<dyn Fn() -> (usize, usize, Duration) + Send>;

struct Row {
    scenario: String,
    requests: usize,
    floor: Duration,
    runs: Vec<Timed>,
}

fn main() {
    let opts = Opts::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    let latency = (*opts.latency, *opts.jitter);
    let mut rows = Vec::new();
    for scenario in &opts.only {
        let mut row: Option<Row> = None;
        for i in 0..opts.runs {
            let seed = 20261207 + i as u64;
            let (timed, floor, label) = runtime.block_on(run(scenario, opts.rows, latency, seed, opts.hubspot_in_flight));
            eprintln!(
                "{label}: run {}: {:.2} s, {} requests, {} answered 429",
                i + 1,
                timed.wall.as_secs_f64(),
                timed.requests,
                timed.refused
            );
            let r = row.get_or_insert_with(|| Row { scenario: label, requests: timed.requests, floor, runs: Vec::new() });
            r.runs.push(timed);
        }
        rows.extend(row);
    }
    let report = table(&rows, latency);
    println!("{report}");
    if let Some(out) = &opts.out {
        std::fs::write(out, &report).expect("write the report");
    }
}

/// Sets up one scenario with a fresh emulator, runs it once, and says how long its limit allows.
async fn run(
    scenario: &str,
    rows: usize,
    (base, jitter): (Duration, Duration),
    seed: u64,
    hubspot_in_flight: Option<usize>,
) -> (Timed, Duration, String) {
    // Two replicas share their limits through a Postgres store (`SLUICE_TEST_DATABASE_URL`).
    let replicas = scenario == "hubspot-replicas";
    let env = Env::new(SourceKind::DuckDb, if replicas { StateKind::Postgres } else { StateKind::Sqlite }).await;
    let rows = if scenario == "sheets" { rows / 10 } else { rows };
    env.exec(&format!(
        "CREATE TABLE people AS SELECT 'c' || i AS id, 'p' || i || '@example.com' AS email, 'Name ' || i AS name FROM range(1, {}) r(i)",
        rows + 1
    ))
    .await;
    let latency = || Some(Latency::new(base, jitter, seed));
    let (count, label): (Count, String) = match scenario {
        "hubspot" | "hubspot-replicas" => {
            let hs = support::hubspot::HubSpot::start().await;
            hs.with(|s| s.latency = latency());
            let in_flight = hubspot_in_flight.map(|n| format!("max_in_flight = {n}")).unwrap_or_default();
            env.add_destination("crm", &hs.destination_toml(&in_flight));
            env.write_sync(
                "people",
                "destination = \"crm\"\nprimary_key = \"id\"\nmode = \"upsert\"\n[target]\nobject = \"contacts\"\nid_property = \"customer_id\"\n\
                 [mapping]\ncustomer_id = \"id\"\nemail = \"email\"\nfirstname = \"name\"",
                "SELECT * FROM people",
            );
            if replicas {
                // The same contacts split between two syncs, each run by a process of its own.
                let header = std::fs::read_to_string(env.root().join("syncs/people.sql")).expect("the sync file");
                std::fs::write(
                    env.root().join("syncs/people.sql"),
                    header.replace("SELECT * FROM people", "SELECT * FROM people WHERE hash(id) % 2 = 0"),
                )
                .expect("write the sync");
                std::fs::write(
                    env.root().join("syncs/others.sql"),
                    header.replace("SELECT * FROM people", "SELECT * FROM people WHERE hash(id) % 2 = 1"),
                )
                .expect("write the sync");
            }
            let (max, window) = hs.with(|s| (s.rate_max, s.rate_window));
            let limit = RateLimit::new(max as u32, window);
            let count: Count = Box::new(move || {
                let log = hs.log();
                if std::env::var_os("SLUICE_LOG").is_some() {
                    // Requests a second, from the first: where the time went.
                    let first = log.first().map(|l| l.at);
                    let mut per_second = std::collections::BTreeMap::<u64, usize>::new();
                    for l in &log {
                        *per_second.entry(first.map_or(0, |f| l.at.duration_since(f).as_secs())).or_default() += 1;
                    }
                    eprintln!("HubSpot requests per second since the first: {per_second:?}");
                }
                (log.len(), log.iter().filter(|l| l.status == 429).count(), limit.floor(log.len() as u64, base))
            });
            let in_flight = hubspot_in_flight.map(|n| format!(", max_in_flight = {n}")).unwrap_or_default();
            let label = match replicas {
                true => format!("HubSpot, {rows} contacts, {limit} per token{in_flight}, two processes on one Postgres store"),
                false => format!("HubSpot, {rows} contacts, {limit} per token{in_flight}"),
            };
            (count, label)
        }
        "salesforce" => {
            let sf = support::salesforce::Salesforce::start().await;
            sf.with(|s| s.latency = latency());
            env.add_destination("sf", &sf.destination_toml(env.root(), "bulk_threshold = 100000000"));
            env.write_sync(
                "people",
                "destination = \"sf\"\nprimary_key = \"id\"\nmode = \"upsert\"\n[target]\nobject = \"Contact\"\nexternal_id = \"Customer_Id__c\"\n\
                 [mapping]\nCustomer_Id__c = \"id\"\nEmail = \"email\"\nLastName = \"name\"",
                "SELECT * FROM people",
            );
            // No rate limit per window (a daily quota): the floor is the setup requests one after
            // another, then the collections in rounds of `max_in_flight`.
            let count: Count = Box::new(move || {
                let log = sf.log();
                let collections = log.iter().filter(|l| l.path.contains("composite/sobjects")).count();
                let rounds = (log.len() - collections + collections.div_ceil(8)) as u32;
                (log.len(), log.iter().filter(|l| l.status == 429).count(), base * rounds)
            });
            (count, format!("Salesforce collections, {rows} contacts, 8 in flight"))
        }
        "webhook" => {
            let limit = RateLimit::new(10, Duration::from_secs(1));
            env.sink.latency(base, jitter, seed);
            env.sink.rate_limit(limit.requests as usize, limit.per);
            env.add_destination("hook2", &format!("kind = \"webhook\"\nurl = \"{}\"\nrate_limit = \"{limit}\"", env.sink.url));
            env.write_sync("people", "destination = \"hook2\"\nprimary_key = \"id\"", "SELECT * FROM people");
            let sink = env.sink.clone();
            let count: Count = Box::new(move || {
                let requests = sink.arrivals().len();
                (requests, sink.refused(), limit.floor(requests as u64, base))
            });
            (count, format!("webhook, {rows} rows, rate_limit = \"{limit}\""))
        }
        "sheets" => {
            let google = support::google::Google::start().await;
            google.with(|s| s.latency = latency());
            env.add_destination("sheet", &google.destination_toml(env.root(), ""));
            env.write_sync("people", "destination = \"sheet\"\nprimary_key = \"id\"\n[target]\nsheet = \"People\"", "SELECT * FROM people");
            let writes = google.clone();
            // One request at a time (appends are ordered): the floor is their latencies in a row.
            let count: Count = Box::new(move || {
                let log = writes.log();
                (log.len(), log.iter().filter(|l| l.status == 429).count(), base * log.len() as u32)
            });
            (count, format!("Sheets, {rows} rows, 60 writes/min"))
        }
        "slack" => {
            // A message a second: a thousandth of the rows, one message each.
            let rows = rows / 1000;
            env.exec(&format!("DELETE FROM people WHERE CAST(substr(id, 2) AS INTEGER) > {rows}")).await;
            let slack = support::slack::Slack::start().await;
            slack.with(|s| {
                s.latency = latency();
                s.min_interval = Some(Duration::from_secs(1));
            });
            env.add_destination("chat", &format!("kind = \"slack\"\nwebhook_url = \"{}\"", slack.url));
            env.write_sync(
                "people",
                "destination = \"chat\"\nprimary_key = \"id\"\nmode = \"insert\"\n[target]\ntext = \"{{ name }} signed up\"",
                "SELECT * FROM people",
            );
            let limit = RateLimit::new(1, Duration::from_secs(1));
            let count: Count = Box::new(move || {
                let (requests, refused) = slack.with(|s| (s.requests, s.rate_limited));
                (requests, refused, limit.floor(requests as u64, base))
            });
            (count, format!("Slack, {rows} messages, one a second"))
        }
        other => panic!("unknown scenario `{other}`: hubspot, hubspot-replicas, salesforce, webhook, sheets or slack"),
    };
    let syncs: &[&str] = if replicas { &["people", "others"] } else { &["people"] };
    let started = Instant::now();
    let runs = syncs.iter().map(|sync| {
        let root = env.root().to_path_buf();
        let sync = sync.to_string();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(support::sluice_bin()).args(["run", &sync, "--project"]).arg(root).output().expect("run sluice")
        })
    });
    for out in futures_util::future::join_all(runs).await {
        let out = out.expect("the run's thread");
        assert!(out.status.success(), "{label}: sluice run failed:\n{}", String::from_utf8_lossy(&out.stderr));
        // The run's own report: its rows/s, requests in flight and share of the limit.
        eprint!("{}", String::from_utf8_lossy(&out.stdout));
        if std::env::var_os("SLUICE_LOG").is_some() {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let wall = started.elapsed();
    let (requests, refused, floor) = count();
    (Timed { wall, requests, refused }, floor, label)
}

fn table(rows: &[Row], (base, jitter): (Duration, Duration)) -> String {
    use std::fmt::Write as _;
    let ms = |d: Duration| d.as_millis();
    let mut out = format!(
        "Each request answered after {} ms +- {} ms; median of {} runs.\n\n\
         | scenario | requests | floor (s) | wall (s), median | wall / floor | answered 429 |\n|---|---:|---:|---:|---:|---:|\n",
        ms(base),
        ms(jitter),
        rows.first().map_or(0, |r| r.runs.len())
    );
    for r in rows {
        let mut walls: Vec<f64> = r.runs.iter().map(|t| t.wall.as_secs_f64()).collect();
        walls.sort_by(f64::total_cmp);
        let median = walls[walls.len() / 2];
        let refused: usize = r.runs.iter().map(|t| t.refused).sum();
        let sent: usize = r.runs.iter().map(|t| t.requests).sum();
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | {median:.2} (min {:.2}, max {:.2}) | {:.2} | {refused} of {sent} |",
            r.scenario,
            r.requests,
            r.floor.as_secs_f64(),
            walls[0],
            walls[walls.len() - 1],
            median / r.floor.as_secs_f64()
        );
    }
    out
}
