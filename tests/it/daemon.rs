//! `sluice daemon` as a process: schedules, overlapping ticks, SIGTERM, SIGHUP reloads,
//! sd_notify, catch-up, and two replicas on one Postgres state store.

use crate::support;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use support::daemon::*;
use support::StateKind;

#[tokio::test]
async fn scheduled_runs_fire_and_an_overlapping_tick_is_skipped() {
    let env = project(StateKind::Sqlite, "max_batch_rows = 10").await;
    env.write_sync("every_second", &sync_header(EVERY_SECOND, ""), "SELECT id, v FROM t");
    env.sink.hold_from(0);
    let mut daemon = Daemon::start(env.root(), &[]);
    eventually(Duration::from_secs(15), "a tick skipped while the first run is held", || async {
        daemon.logs().contains("the previous run is still going: this tick is skipped")
    })
    .await;
    env.sink.release();
    eventually(Duration::from_secs(15), "two completed runs", || async { completed(&env, "every_second").await >= 2 }).await;
    assert_eq!(env.sink.rows().len(), 30, "the first run sent every row, later ones nothing");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)).await, 0, "{}", daemon.logs());
    assert!(daemon.logs().contains("run finished"), "a log line per run: {}", daemon.logs());
}

#[tokio::test]
async fn sigterm_during_a_run_commits_the_batch_in_flight_and_exits_0() {
    // One batch at a time: the second is the one in flight.
    let env = project(StateKind::Sqlite, "max_batch_rows = 10\nmax_in_flight = 1").await;
    env.write_sync("every_second", &sync_header(EVERY_SECOND, ""), "SELECT id, v FROM t");
    env.sink.hold_from(1);
    let mut daemon = Daemon::start(env.root(), &[]);
    eventually(Duration::from_secs(15), "the second batch in flight", || async { env.sink.requests() >= 2 }).await;
    daemon.signal("TERM");
    env.sink.release();
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)).await, 0, "{}", daemon.logs());
    // Both batches the sink answered are in the state; the third was never sent.
    assert_eq!(env.sink.rows().len(), 20);
    let state = sqlx::SqlitePool::connect(&format!("sqlite://{}", env.root().join(".sluice/state.db").display())).await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sync_rows").fetch_one(&state).await.unwrap();
    assert_eq!(stored, 20);
}

#[tokio::test]
async fn sighup_adds_and_drops_syncs_and_an_invalid_config_keeps_the_old_one() {
    let env = project(StateKind::Sqlite, "").await;
    let first = env.write_sync("first", &sync_header(EVERY_SECOND, ""), "SELECT id, v FROM t");
    let mut daemon = Daemon::start(env.root(), &[]);
    eventually(Duration::from_secs(15), "first runs", || async { completed(&env, "first").await >= 1 }).await;
    std::fs::remove_file(first).unwrap();
    env.write_sync("second", &sync_header(EVERY_SECOND, ""), "SELECT id, v FROM t");
    daemon.signal("HUP");
    eventually(Duration::from_secs(15), "second runs", || async { completed(&env, "second").await >= 1 }).await;
    let first_runs = runs(&env, "first").await.len();
    eventually(Duration::from_secs(15), "second runs twice more", || async { completed(&env, "second").await >= 3 }).await;
    assert_eq!(runs(&env, "first").await.len(), first_runs, "the removed sync no longer runs");

    let config = env.root().join("sluice.toml");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, good.replace("timezone = \"UTC\"", "timezone = \"Mars/Olympus\"")).unwrap();
    daemon.signal("HUP");
    eventually(Duration::from_secs(15), "the reload refused", || async { daemon.logs().contains("reload failed") }).await;
    assert!(daemon.logs().contains("Mars/Olympus"), "{}", daemon.logs());
    let before = completed(&env, "second").await;
    eventually(Duration::from_secs(15), "the old configuration still runs", || async { completed(&env, "second").await > before }).await;
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)).await, 0);
}

#[tokio::test]
async fn sd_notify_messages_arrive_in_order() {
    let env = project(StateKind::Sqlite, "").await;
    env.write_sync("manual_only", "destination = \"hook\"\nprimary_key = \"id\"", "SELECT id, v FROM t");
    let socket_path = env.root().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut daemon = Daemon::start(env.root(), &[("NOTIFY_SOCKET", socket_path.display().to_string()), ("WATCHDOG_USEC", "200000".into())]);
    let mut messages: Vec<String> = Vec::new();
    let receive = |messages: &mut Vec<String>| {
        let mut buf = [0u8; 4096];
        while let Ok(n) = socket.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    };
    let has = |messages: &Vec<String>, m: &str| messages.iter().any(|x| x.lines().any(|l| l == m));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(has(&messages, "READY=1") && has(&messages, "WATCHDOG=1")) {
        assert!(Instant::now() < deadline, "READY and WATCHDOG: {messages:?}");
        receive(&mut messages);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.signal("HUP");
    while messages.iter().filter(|m| m.lines().any(|l| l == "READY=1")).count() < 2 {
        assert!(Instant::now() < deadline, "RELOADING then READY: {messages:?}");
        receive(&mut messages);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)).await, 0);
    receive(&mut messages);
    let order: Vec<&str> =
        messages.iter().filter_map(|m| m.lines().find(|l| ["READY=1", "RELOADING=1", "STOPPING=1"].contains(l))).collect();
    assert_eq!(order, vec!["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"], "{messages:?}");
    let first_ready = messages.iter().find(|m| m.contains("READY=1")).unwrap();
    assert!(first_ready.contains("STATUS=0 sync(s) scheduled, 1 manual"), "{first_ready}");
    let watchdog_at = messages.iter().position(|m| m.lines().any(|l| l == "WATCHDOG=1")).unwrap();
    assert!(watchdog_at > 0, "the watchdog starts once ready");
}

#[tokio::test]
async fn a_run_missed_while_down_runs_once_at_start() {
    let env = project(StateKind::Sqlite, "").await;
    // Due every 1 January: always missed by a daemon that never ran.
    env.write_sync("yearly", &sync_header("0 0 0 1 1 *", ""), "SELECT id, v FROM t");
    env.write_sync("yearly_no_catch_up", &sync_header("0 0 0 1 1 *", "catch_up = false"), "SELECT id, v FROM t");
    let mut daemon = Daemon::start(env.root(), &[]);
    eventually(Duration::from_secs(15), "the catch-up run", || async { completed(&env, "yearly").await == 1 }).await;
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)).await, 0);
    assert!(runs(&env, "yearly_no_catch_up").await.is_empty(), "catch_up = false waits for its schedule");
    // Started again: the missed run is done, nothing to catch up.
    let mut again = Daemon::start(env.root(), &[]);
    eventually(Duration::from_secs(15), "the second daemon is up", || async { again.logs().contains("daemon started") }).await;
    again.signal("TERM");
    assert_eq!(again.wait_exit(Duration::from_secs(15)).await, 0);
    assert_eq!(runs(&env, "yearly").await.len(), 1);
}

#[tokio::test]
async fn two_daemons_on_one_postgres_store_never_run_a_sync_at_the_same_time() {
    let env = project(StateKind::Postgres, "").await;
    env.sink.slow(Duration::from_millis(400));
    env.write_sync("shared", &sync_header(EVERY_SECOND, ""), "SELECT id, (random() * 1000000)::BIGINT AS v FROM t");
    let mut a = Daemon::start(env.root(), &[]);
    let mut b = Daemon::start(env.root(), &[]);
    let deadline = Instant::now() + Duration::from_secs(40);
    while runs(&env, "shared").await.iter().filter(|(s, _, f)| s == "success" && f.is_some()).count() < 8 {
        assert!(
            Instant::now() < deadline,
            "eight runs between them; logs:\n{}\n---\n{}\n{:?}",
            a.logs(),
            b.logs(),
            runs(&env, "shared").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.signal("TERM");
    b.signal("TERM");
    assert_eq!(a.wait_exit(Duration::from_secs(15)).await, 0);
    assert_eq!(b.wait_exit(Duration::from_secs(15)).await, 0);
    let history = runs(&env, "shared").await;
    for pair in history.windows(2) {
        let finished = pair[0].2.as_deref().unwrap_or("9999");
        assert!(finished <= pair[1].1.as_str(), "runs overlap: {pair:?}");
    }
    let skipped =
        a.logs().matches("another process is running this sync").count() + b.logs().matches("another process is running this sync").count();
    assert!(skipped > 0, "the replicas met on the lock");
    assert!(history.iter().all(|(s, _, _)| s == "success"), "{history:?}");
}

#[tokio::test]
async fn the_http_endpoint_serves_health_metrics_and_the_api() {
    let env = project(StateKind::Sqlite, "").await;
    env.write_sync("on_demand", "destination = \"hook\"\nprimary_key = \"id\"", "SELECT id, v FROM t");
    env.write_sync("yearly", &sync_header("0 0 0 1 1 *", "catch_up = false"), "SELECT id, v FROM t");
    let mut daemon = Daemon::start(env.root(), &[]);
    let base = daemon.base_url().await;
    let http = reqwest::Client::new();
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let list: serde_json::Value = http.get(format!("{base}/api/syncs")).send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = list["syncs"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{list}");
    let yearly = list["syncs"].as_array().unwrap().iter().find(|s| s["name"] == "yearly").unwrap();
    assert!(yearly["next_run"].as_str().unwrap().contains("-01-01T00:00:00"), "{yearly}");
    assert_eq!(yearly["schedule"], "0 0 0 1 1 *");

    let token = api_token(&env);
    let started = http.post(format!("{base}/api/syncs/on_demand/run")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(started.status(), 202);
    eventually(Duration::from_secs(15), "the triggered run", || async { completed(&env, "on_demand").await == 1 }).await;
    let one: serde_json::Value = http.get(format!("{base}/api/syncs/on_demand")).send().await.unwrap().json().await.unwrap();
    assert_eq!(one["last_runs"][0]["status"], "success", "{one}");
    assert_eq!(one["last_runs"][0]["written"], 30);
    let run_id = one["last_runs"][0]["id"].as_str().unwrap().to_string();
    // The run is recorded before the daemon logs its end: wait for the line.
    let finished = |l: &str| l.contains("run finished") && l.contains(&run_id) && l.contains("written=30");
    eventually(Duration::from_secs(15), "the run's last log line", || async { daemon.logs().lines().any(finished) }).await;
    let logs = daemon.logs();
    assert!(logs.lines().any(|l| l.contains("run started") && l.contains("sync=on_demand") && l.contains(&run_id)), "{logs}");
    assert_eq!(http.post(format!("{base}/api/syncs/nope/run")).bearer_auth(&token).send().await.unwrap().status(), 404);
    assert_eq!(http.get(format!("{base}/api/syncs/nope")).send().await.unwrap().status(), 404);
    assert_eq!(http.post(format!("{base}/api/reload")).bearer_auth(&token).send().await.unwrap().status(), 200);

    let text = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    let metrics = samples(&text);
    let value = |name: &str| metrics.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    assert_eq!(value("sluice_runs_total{sync=\"on_demand\",result=\"success\"}"), Some(1.0), "{text}");
    assert_eq!(value("sluice_rows_total{sync=\"on_demand\",op=\"written\"}"), Some(30.0));
    assert_eq!(value("sluice_destination_http_requests_total{destination=\"hook\",status=\"204\"}"), Some(1.0));
    assert!(value("sluice_next_run_timestamp_seconds{sync=\"yearly\"}").is_some_and(|t| t > 1.7e9));
    assert!(value("sluice_run_duration_seconds_count{sync=\"on_demand\"}") == Some(1.0));
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)).await, 0);
}

#[tokio::test]
async fn mutating_endpoints_need_the_configured_token() {
    let env = project_with(StateKind::Sqlite, "", "api_token = \"s3cret\"\nlisten = \"0.0.0.0:0\"").await;
    env.write_sync("on_demand", "destination = \"hook\"\nprimary_key = \"id\"", "SELECT id, v FROM t");
    let mut daemon = Daemon::start(env.root(), &[]);
    let base = daemon.base_url().await;
    let http = reqwest::Client::new();
    let url = format!("{base}/api/syncs/on_demand/run");
    assert_eq!(http.post(&url).send().await.unwrap().status(), 401);
    assert_eq!(http.post(&url).bearer_auth("wrong").send().await.unwrap().status(), 401);
    assert_eq!(http.post(&url).bearer_auth("s3cret").send().await.unwrap().status(), 202);
    assert!(!env.root().join(".sluice/api_token").exists(), "no token is generated when one is configured");
    assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200, "reading needs no token");
    assert!(!daemon.logs().contains("s3cret"), "the token never reaches the logs");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)).await, 0);
}

#[tokio::test]
async fn max_concurrent_runs_bounds_runs_across_syncs_and_json_logs_parse() {
    let env = project_with(StateKind::Sqlite, "", "max_concurrent_runs = 1").await;
    env.sink.slow(Duration::from_millis(300));
    for name in ["one", "two", "three"] {
        env.write_sync(name, &sync_header(EVERY_SECOND, ""), "SELECT id, (random() * 1000000)::BIGINT AS v FROM t");
    }
    let mut daemon = Daemon::start_with(env.root(), &[], &["--log-format", "json"]);
    eventually(Duration::from_secs(30), "each sync ran twice", || async {
        let mut all = true;
        for name in ["one", "two", "three"] {
            all &= completed(&env, name).await >= 2;
        }
        all
    })
    .await;
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)).await, 0);
    let mut spans: Vec<(String, String)> = Vec::new();
    for name in ["one", "two", "three"] {
        spans.extend(runs(&env, name).await.into_iter().filter_map(|(_, start, end)| Some((start, end?))));
    }
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "two runs at once with max_concurrent_runs = 1: {pair:?}");
    }
    let logs = daemon.logs();
    let line = logs.lines().find(|l| l.contains("run finished")).expect("a run line");
    let parsed: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(parsed["fields"]["message"], "run finished");
    assert!(parsed["fields"]["sync"].is_string() && parsed["fields"]["written"].is_number(), "{parsed}");
}

#[tokio::test]
async fn runs_that_outlast_the_shutdown_timeout_are_abandoned_and_healthz_sees_a_broken_store() {
    let env = project_with(StateKind::Postgres, "timeout = \"60s\"", "shutdown_timeout = \"1s\"").await;
    env.write_sync("stuck", &sync_header(EVERY_SECOND, ""), "SELECT id, v FROM t");
    env.sink.hold_from(0);
    let mut daemon = Daemon::start(env.root(), &[]);
    let base = daemon.base_url().await;
    eventually(Duration::from_secs(15), "the run in flight", || async { env.sink.requests() >= 1 }).await;
    let http = reqwest::Client::new();
    assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
    // The state store loses its tables: the daemon is no longer healthy.
    let schema = &env.pg_state.as_ref().unwrap().name;
    sqlx::query(&format!("ALTER TABLE {schema}.runs RENAME TO runs_gone")).execute(&env.pg_state.as_ref().unwrap().pool).await.unwrap();
    let sick = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(sick.status(), 503);
    assert!(sick.text().await.unwrap().contains("runs"));
    sqlx::query(&format!("ALTER TABLE {schema}.runs_gone RENAME TO runs")).execute(&env.pg_state.as_ref().unwrap().pool).await.unwrap();
    let started = Instant::now();
    daemon.signal("TERM");
    let code = daemon.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(code, 2, "a run abandoned at the timeout is an unclean stop: {}", daemon.logs());
    assert!(started.elapsed() < Duration::from_secs(10), "it did not wait for the 60 s request");
    assert!(daemon.logs().contains("did not finish within [daemon] shutdown_timeout"), "{}", daemon.logs());
    // Nothing was answered, so nothing was committed (an abandoned run does not fold: its
    // committed rows would still be staged).
    let stored: i64 =
        sqlx::query_scalar(&format!("SELECT (SELECT COUNT(*) FROM {schema}.sync_rows) + (SELECT COUNT(*) FROM {schema}.sync_rows_staged)"))
            .fetch_one(&env.pg_state.as_ref().unwrap().pool)
            .await
            .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn syncs_writing_to_one_spreadsheet_take_turns() {
    let env = project(StateKind::Sqlite, "").await;
    let google = support::google::Google::start().await;
    google.fault_every(1, support::google::Fault::Slow(Duration::from_millis(150)));
    env.add_destination("sheet", &google.destination_toml(env.root(), ""));
    for name in ["tab_a", "tab_b"] {
        let header = format!("destination = \"sheet\"\nprimary_key = \"id\"\nschedule = \"{EVERY_SECOND}\"\nmode = \"mirror\"");
        env.write_sync(name, &header, "SELECT id, (random() * 1000000)::BIGINT AS v FROM t");
    }
    let mut daemon = Daemon::start(env.root(), &[]);
    eventually(Duration::from_secs(40), "both syncs ran twice", || async {
        completed(&env, "tab_a").await >= 2 && completed(&env, "tab_b").await >= 2
    })
    .await;
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)).await, 0, "{}", daemon.logs());
    let mut spans: Vec<(String, String)> = Vec::new();
    for name in ["tab_a", "tab_b"] {
        spans.extend(runs(&env, name).await.into_iter().filter_map(|(_, start, end)| Some((start, end?))));
    }
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "two runs against one spreadsheet at once: {pair:?}");
    }
    assert_eq!(google.rows("tab_a").unwrap().len(), 31);
}

#[tokio::test]
async fn the_next_run_is_the_schedules_next_time_in_the_configured_zone() {
    let env = project(StateKind::Sqlite, "").await;
    let config = env.root().join("sluice.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace("timezone = \"UTC\"", "timezone = \"Europe/Berlin\"");
    std::fs::write(&config, text).unwrap();
    env.write_sync("morning", &sync_header("0 9 * * *", "catch_up = false"), "SELECT id, v FROM t");
    let mut daemon = Daemon::start(env.root(), &[]);
    let base = daemon.base_url().await;
    let one: serde_json::Value = reqwest::get(format!("{base}/api/syncs/morning")).await.unwrap().json().await.unwrap();
    let next = chrono::DateTime::parse_from_rfc3339(one["next_run"].as_str().unwrap()).unwrap();
    let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    let local = next.with_timezone(&berlin);
    assert_eq!((chrono::Timelike::hour(&local), chrono::Timelike::minute(&local), chrono::Timelike::second(&local)), (9, 0, 0), "{one}");
    let ahead = next.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(ahead > chrono::Duration::zero() && ahead <= chrono::Duration::hours(25), "the next 09:00 in Berlin: {next}");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)).await, 0);
}

#[tokio::test]
async fn a_destination_that_keeps_failing_does_not_hold_up_other_syncs() {
    let env = project(StateKind::Sqlite, "").await;
    let config = env.root().join("sluice.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("[daemon]", "[destinations.down]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:1/hook\"\nmax_attempts = 50\nretry_initial_delay = \"200ms\"\n\n[daemon]")).unwrap();
    env.write_sync("stuck", "destination = \"down\"\nprimary_key = \"id\"\nschedule = \"* * * * * *\"", "SELECT id, v FROM t");
    env.write_sync("fine", &sync_header(EVERY_SECOND, ""), "SELECT id, (random() * 1000000)::BIGINT AS v FROM t");
    let mut daemon = Daemon::start(env.root(), &[]);
    eventually(Duration::from_secs(30), "the healthy sync runs on", || async { completed(&env, "fine").await >= 3 }).await;
    assert!(completed(&env, "stuck").await == 0, "the failing sync is still retrying its first batch");
    assert!(daemon.logs().contains("the previous run is still going"), "its ticks are skipped meanwhile");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)).await, 0, "{}", daemon.logs());
}

#[tokio::test]
async fn a_run_past_its_max_run_time_is_stopped_and_counted() {
    let env = project(StateKind::Sqlite, "").await;
    env.write_sync("stuck", "destination = \"hook\"\nprimary_key = \"id\"\nmax_run_time = \"1s\"", "SELECT id, v FROM t");
    env.sink.hold_from(0);
    let mut daemon = Daemon::start(env.root(), &[]);
    let base = daemon.base_url().await;
    let http = reqwest::Client::new();
    let started = http.post(format!("{base}/api/syncs/stuck/run")).bearer_auth(api_token(&env)).send().await.unwrap();
    assert_eq!(started.status(), 202);
    eventually(Duration::from_secs(20), "the run stopped at its deadline", || async {
        let text = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        samples(&text).iter().any(|(n, v)| n == "sluice_run_deadline_exceeded_total{sync=\"stuck\"}" && *v == 1.0)
    })
    .await;
    assert_eq!(runs(&env, "stuck").await.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["failed"]);
    assert!(daemon.logs().contains("longer than max_run_time (1s)"), "{}", daemon.logs());
    env.sink.release();
    assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200, "the slot is free, nothing is stuck");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)).await, 0, "{}", daemon.logs());
}

#[tokio::test]
async fn a_scheduled_run_that_does_not_start_is_alerted_late() {
    let env = project(StateKind::Sqlite, "").await;
    let alerts = support::Sink::start().await;
    env.add_destination("pager", &format!("kind = \"webhook\"\nurl = \"{}\"", alerts.url));
    env.append_config("\n[alerts]\ndestination = \"pager\"\non = [\"late\"]\n");
    env.write_sync("ticker", &sync_header(EVERY_SECOND, ""), "SELECT id, v FROM t");
    // The first run hangs on its first request: the ticks after it are skipped, nothing starts.
    env.sink.hold_from(0);
    let mut daemon = Daemon::start(env.root(), &[]);
    eventually(Duration::from_secs(40), "a late alert", || async { !alerts.rows().is_empty() }).await;
    let row = &alerts.rows()[0];
    assert_eq!(
        (row.fields["event"].as_str(), row.fields["sync"].as_str(), row.fields["status"].as_str()),
        (Some("late"), Some("ticker"), Some("late"))
    );
    assert!(row.fields["text"].as_str().unwrap().contains("has not started"), "{}", row.fields["text"]);
    // The log line follows the alert's answer.
    eventually(Duration::from_secs(10), "the late alert logged", || async { daemon.logs().contains("a scheduled run is late") }).await;
    env.sink.release();
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)).await, 0, "{}", daemon.logs());
    assert_eq!(alerts.rows().len(), 1, "once per alert_interval");
}

/// A run starts at its scheduled second or after it, never before: a `*/5` sync's runs start
/// in seconds 0 to 3 of each five (late by a busy machine's delay: under 4 s), never in second 4,
/// where a scheduler that fires a few hundred milliseconds early started them.
#[tokio::test]
async fn scheduled_runs_start_at_their_second_never_before() {
    let env = project(StateKind::Sqlite, "").await;
    // (No catch-up: a sync that never ran would run at once when the daemon starts.)
    env.write_sync("fives", &sync_header("*/5 * * * * *", "catch_up = false"), "SELECT id, v FROM t");
    let mut daemon = Daemon::start(env.root(), &[]);
    eventually(Duration::from_secs(40), "three scheduled runs", || async { runs(&env, "fives").await.len() >= 3 }).await;
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)).await, 0);
    for (_, started, _) in runs(&env, "fives").await {
        let at = chrono::DateTime::parse_from_rfc3339(&started).unwrap();
        assert_ne!(chrono::Timelike::second(&at) % 5, 4, "a run of a */5 schedule started before its second: {started}");
    }
}
