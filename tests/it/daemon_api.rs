//! The daemon's HTTP endpoint is safe by default on a port any local program or web page can
//! reach: mutating endpoints always need a token (generated when none is configured), a page
//! on another origin or behind a rebound host name gets nothing, run errors (which may quote row
//! data) need the token, SIGHUP reloads the token, and slow clients cannot hold the endpoint.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use support::daemon::*;
use support::StateKind;

const WAIT: Duration = Duration::from_secs(20);

async fn daemon(daemon_settings: &str) -> (support::Env, Daemon, String) {
    let env = project_with(StateKind::Sqlite, "", daemon_settings).await;
    env.write_sync("on_demand", "destination = \"hook\"\nprimary_key = \"id\"", "SELECT id, v FROM t");
    let daemon = Daemon::start(env.root(), &[]);
    let base = daemon.base_url().await;
    (env, daemon, base)
}

async fn stop(mut daemon: Daemon) {
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(WAIT).await, 0, "{}", daemon.logs());
}

#[tokio::test]
async fn mutating_endpoints_need_a_token_even_on_loopback_and_one_is_generated() {
    let (env, daemon, base) = daemon("").await;
    let http = reqwest::Client::new();
    let url = format!("{base}/api/syncs/on_demand/run");
    assert_eq!(http.post(&url).send().await.unwrap().status(), 401, "loopback is no credential");
    let file = env.root().join(".sluice/api_token");
    let token = std::fs::read_to_string(&file).expect("a token was generated").trim().to_string();
    assert!(token.len() >= 64 && token.chars().all(|c| c.is_ascii_hexdigit()), "256 random bits");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(daemon.logs().contains(&file.display().to_string()), "the log says where: {}", daemon.logs());
    assert!(!daemon.logs().contains(&token), "but not what");

    // A web page's form post (a CORS "simple request") has no token to send, and even a request
    // with the token is refused when it comes from another origin.
    let page = http.post(format!("{url}?allow_deletes=true")).header("origin", "http://evil.example").header("content-type", "text/plain");
    assert_eq!(page.send().await.unwrap().status(), 403);
    let foreign = http.post(&url).bearer_auth(&token).header("origin", "http://evil.example");
    assert_eq!(foreign.send().await.unwrap().status(), 403);
    assert_eq!(http.post(&url).bearer_auth("wrong-token").send().await.unwrap().status(), 401);
    let same_origin = http.post(&url).bearer_auth(&token).header("origin", base.clone());
    assert_eq!(same_origin.send().await.unwrap().status(), 202);
    eventually(WAIT, "the run", || async { completed(&env, "on_demand").await == 1 }).await;
    stop(daemon).await;

    // The next start keeps the token.
    let daemon = Daemon::start(env.root(), &[]);
    let base = daemon.base_url().await;
    assert_eq!(http.post(format!("{base}/api/reload")).bearer_auth(&token).send().await.unwrap().status(), 200);
    stop(daemon).await;
}

#[tokio::test]
async fn a_host_name_the_endpoint_does_not_know_reads_nothing() {
    let (_env, daemon, base) = daemon("allowed_hosts = [\"sluice.internal\"]").await;
    let port = base.rsplit(':').next().unwrap().to_string();
    let http = reqwest::Client::new();
    let get = |host: String| http.get(format!("{base}/api/syncs")).header("host", host).send();
    // What a DNS-rebinding page sends: its own name, resolved to this address.
    assert_eq!(get(format!("evil.example:{port}")).await.unwrap().status(), 421);
    assert_eq!(get(format!("127.0.0.1:{port}")).await.unwrap().status(), 200);
    assert_eq!(get(format!("localhost:{port}")).await.unwrap().status(), 200);
    assert_eq!(get(format!("sluice.internal:{port}")).await.unwrap().status(), 200);
    stop(daemon).await;
}

#[tokio::test]
async fn run_errors_quoting_data_are_shown_only_with_the_token() {
    let (env, daemon, base) = daemon("api_token = \"s3cret\"").await;
    // Duplicate keys: the error names them, which is row data.
    env.write_sync(
        "dupes",
        "destination = \"hook\"\nprimary_key = \"k\"",
        "SELECT 'CONFIDENTIAL-KEY' AS k UNION ALL SELECT 'CONFIDENTIAL-KEY'",
    );
    let http = reqwest::Client::new();
    assert_eq!(http.post(format!("{base}/api/reload")).bearer_auth("s3cret").send().await.unwrap().status(), 200);
    assert_eq!(http.post(format!("{base}/api/syncs/dupes/run")).bearer_auth("s3cret").send().await.unwrap().status(), 202);
    eventually(WAIT, "the failed run", || async { runs(&env, "dupes").await.iter().any(|r| r.0 == "failed") }).await;
    let open = http.get(format!("{base}/api/syncs/dupes")).send().await.unwrap().text().await.unwrap();
    assert!(open.contains("\"failed\"") && !open.contains("CONFIDENTIAL"), "{open}");
    let listed = http.get(format!("{base}/api/syncs")).send().await.unwrap().text().await.unwrap();
    assert!(!listed.contains("CONFIDENTIAL"), "{listed}");
    let with_token = http.get(format!("{base}/api/syncs/dupes")).bearer_auth("s3cret").send().await.unwrap().text().await.unwrap();
    assert!(with_token.contains("CONFIDENTIAL-KEY"), "{with_token}");
    stop(daemon).await;
}

#[tokio::test]
async fn sighup_reloads_the_token() {
    let (env, daemon, base) = daemon("api_token = \"first-token\"").await;
    let http = reqwest::Client::new();
    let reload = |token: &'static str| http.post(format!("{base}/api/reload")).bearer_auth(token).send();
    assert_eq!(reload("first-token").await.unwrap().status(), 200);
    let config = env.root().join("sluice.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace("first-token", "second-token");
    std::fs::write(&config, text).unwrap();
    daemon.signal("HUP");
    eventually(WAIT, "the new token", || async { reload("second-token").await.unwrap().status() == 200 }).await;
    assert_eq!(reload("first-token").await.unwrap().status(), 401);
    stop(daemon).await;
}

#[tokio::test]
async fn a_slow_client_is_cut_off_and_connections_are_capped() {
    use tokio::io::AsyncReadExt;
    let (_env, daemon, base) = daemon("http_timeout = \"1s\"\nhttp_max_connections = 1").await;
    let addr = base.trim_start_matches("http://").to_string();
    // A client that connects and sends nothing holds the only connection...
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    // ...so the next one waits until the idle one is cut off at the header timeout.
    let health = reqwest::Client::new().get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(800), "served while the cap was taken: {:?}", started.elapsed());
    // The idle connection was closed (perhaps after a 408): its read ends.
    let mut buf = [0u8; 256];
    tokio::time::timeout(WAIT, idle.read(&mut buf)).await.expect("the idle connection is closed").ok();
    stop(daemon).await;
}
