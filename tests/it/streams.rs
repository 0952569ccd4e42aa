//! Streams: events posted to the daemon's `POST /hooks/{stream}` are stored before the answer,
//! refused with nothing stored when unsigned, oversized or malformed, sent by every sync over
//! the stream once each (a sender's retry of a delivery included), held while a sync over it
//! fails, pruned once every sync read them, and still there after the daemon is killed.

use crate::support;

use std::time::Duration;

use serde_json::json;
use sluice::daemon::signature::sign;
use sluice::project::stream_config::SignatureScheme;
use sqlx::Row;
use support::daemon::*;
use support::{Env, StateKind};

const WAIT: Duration = Duration::from_secs(30);
const SECRET: &str = "form-secret";

/// A daemon project with `[streams.signups]` (GitHub-style signatures) and `settings` added to
/// it, and the sync `signups_to_hook` running on its events.
async fn stream_project(state: StateKind, settings: &str, debounce: &str) -> Env {
    let env = project(state, "").await;
    env.append_config(&format!("\n[streams.signups]\nsecret = \"{SECRET}\"\nsignature = \"github\"\n{settings}\n"));
    env.write_sync(
        "signups_to_hook",
        &format!(
            "source = \"stream:signups\"\ntrigger = \"on_event\"\ndebounce = \"{debounce}\"\ndestination = \"hook\"\n\
             primary_key = \"event_id\"\nmode = \"insert\""
        ),
        "SELECT id AS event_id, payload->>'email' AS email, received_at IS NOT NULL AS dated FROM events",
    );
    env
}

/// Posts `body` to the stream as GitHub would: signed, named by `delivery`.
async fn post(base: &str, stream: &str, delivery: &str, body: &serde_json::Value) -> reqwest::Response {
    let bytes = serde_json::to_vec(body).unwrap();
    let signature = sign(SignatureScheme::Github, SECRET, &bytes, chrono::Utc::now().timestamp());
    reqwest::Client::new()
        .post(format!("{base}/hooks/{stream}"))
        .header("X-Hub-Signature-256", signature)
        .header("X-GitHub-Delivery", delivery)
        .header("content-type", "application/json")
        .body(bytes)
        .send()
        .await
        .unwrap()
}

/// Events the state store holds for `stream`.
async fn stored_events(env: &Env, stream: &str) -> i64 {
    let sql = "SELECT COUNT(*) FROM stream_events WHERE stream = $1";
    match &env.pg_state {
        Some(pg) => {
            let sql = sql.replace("FROM stream_events", &format!("FROM {}.stream_events", pg.name));
            sqlx::query(&sql).bind(stream).fetch_one(&pg.pool).await.map(|r| r.get::<i64, _>(0)).unwrap_or(0)
        }
        None => {
            let path = env.root().join(".sluice/state.db");
            let Ok(pool) = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", path.display())).await else { return 0 };
            let n = sqlx::query(sql).bind(stream).fetch_one(&pool).await.map(|r| r.get::<i64, _>(0)).unwrap_or(0);
            pool.close().await;
            n
        }
    }
}

fn keys(env: &Env) -> Vec<String> {
    let mut keys: Vec<String> = env.sink.rows().iter().map(|r| r.key["event_id"].as_str().unwrap_or_default().to_string()).collect();
    keys.sort();
    keys
}

async fn events_arrive_once_each(state: StateKind) {
    let env = stream_project(state, "", "200ms").await;
    let daemon = Daemon::start(env.root(), &[]);
    let base = daemon.base_url().await;
    for i in 1..=5 {
        let r = post(&base, "signups", &format!("d{i}"), &json!({ "email": format!("p{i}@example.com"), "company": "Acme" })).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    // GitHub redelivers a delivery it thinks failed: same id, stored once.
    let again = post(&base, "signups", "d3", &json!({ "email": "p3@example.com", "company": "Acme" })).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<serde_json::Value>().await.unwrap()["duplicate"], true);
    eventually(WAIT, "five events at the destination", || async { env.sink.rows().len() >= 5 }).await;
    assert_eq!(keys(&env), ["d1", "d2", "d3", "d4", "d5"], "{}", daemon.logs());
    let first = env.sink.rows().into_iter().find(|r| r.key["event_id"] == "d1").unwrap();
    assert_eq!(first.op, "insert");
    assert_eq!(first.fields["email"], "p1@example.com");
    assert_eq!(first.fields["dated"], true);

    // A later event is sent by a later run, and nothing before it again.
    assert_eq!(post(&base, "signups", "d6", &json!({ "email": "p6@example.com" })).await.status(), 200);
    eventually(WAIT, "the sixth event", || async { env.sink.rows().len() >= 6 }).await;
    eventually(WAIT, "the runs to settle", || async { completed(&env, "signups_to_hook").await >= 2 }).await;
    assert_eq!(keys(&env), ["d1", "d2", "d3", "d4", "d5", "d6"], "each event once: {}", daemon.logs());
    assert_eq!(stored_events(&env, "signups").await, 6);
}

#[tokio::test]
async fn events_reach_the_destination_once_each_sqlite_state() {
    events_arrive_once_each(StateKind::Sqlite).await;
}

#[tokio::test]
async fn events_reach_the_destination_once_each_postgres_state() {
    events_arrive_once_each(StateKind::Postgres).await;
}

#[tokio::test]
async fn bad_requests_are_refused_and_store_nothing() {
    let env = stream_project(StateKind::Sqlite, "max_body_bytes = 1024", "200ms").await;
    let daemon = Daemon::start(env.root(), &[]);
    let base = daemon.base_url().await;
    let http = reqwest::Client::new();
    let body = serde_json::to_vec(&json!({ "email": "a@example.com" })).unwrap();
    let signed = |b: &[u8]| sign(SignatureScheme::Github, SECRET, b, 0);
    let send = |url: String, signature: Option<String>, delivery: Option<&str>, body: Vec<u8>| {
        let mut r = http.post(url).body(body);
        if let Some(s) = signature {
            r = r.header("X-Hub-Signature-256", s);
        }
        if let Some(d) = delivery {
            r = r.header("X-GitHub-Delivery", d);
        }
        r.send()
    };
    let hook = format!("{base}/hooks/signups");

    let unknown = send(format!("{base}/hooks/signup"), Some(signed(&body)), Some("x1"), body.clone()).await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(unknown.text().await.unwrap().contains("signups"), "names the streams there are");

    let unsigned = send(hook.clone(), None, Some("x2"), body.clone()).await.unwrap();
    assert_eq!(unsigned.status(), 401);
    assert!(unsigned.text().await.unwrap().contains("X-Hub-Signature-256"));

    let forged = sign(SignatureScheme::Github, "guessed", &body, 0);
    assert_eq!(send(hook.clone(), Some(forged), Some("x3"), body.clone()).await.unwrap().status(), 401);

    // Signed, but not the body it was signed for.
    let tampered = serde_json::to_vec(&json!({ "email": "attacker@example.com" })).unwrap();
    assert_eq!(send(hook.clone(), Some(signed(&body)), Some("x4"), tampered).await.unwrap().status(), 401);

    let big = serde_json::to_vec(&json!({ "email": "a@example.com", "pad": "x".repeat(2000) })).unwrap();
    let oversize = send(hook.clone(), Some(signed(&big)), Some("x5"), big).await.unwrap();
    assert_eq!(oversize.status(), 413);
    assert!(oversize.text().await.unwrap().contains("max_body_bytes"));

    let garbage = b"email=a@example.com".to_vec();
    let not_json = send(hook.clone(), Some(signed(&garbage)), Some("x6"), garbage).await.unwrap();
    assert_eq!(not_json.status(), 400);
    assert!(not_json.text().await.unwrap().contains("not JSON"));

    let no_id = send(hook.clone(), Some(signed(&body)), None, body.clone()).await.unwrap();
    assert_eq!(no_id.status(), 400);
    assert!(no_id.text().await.unwrap().contains("X-GitHub-Delivery"));

    assert_eq!(stored_events(&env, "signups").await, 0, "nothing refused was stored");
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    let refused = |reason: &str| {
        samples(&metrics)
            .iter()
            .find(|(name, _)| name.starts_with("sluice_stream_events_refused_total") && name.contains(&format!("reason=\"{reason}\"")))
            .map_or(0.0, |(_, v)| *v)
    };
    assert_eq!(refused("signature"), 3.0, "{metrics}");
    assert_eq!(refused("too_large"), 1.0);
    assert_eq!(refused("not_json"), 1.0);
    assert_eq!(refused("no_id"), 1.0);
    assert_eq!(refused("unknown_stream"), 1.0);

    assert_eq!(send(hook, Some(signed(&body)), Some("x7"), body).await.unwrap().status(), 200);
    assert_eq!(stored_events(&env, "signups").await, 1);
    assert!(!daemon.logs().contains(SECRET), "the secret never reaches the log");
}

#[tokio::test]
async fn a_failing_sync_holds_its_events_while_the_others_go_on_and_they_are_pruned_once_read() {
    let env = stream_project(StateKind::Sqlite, "retain = \"1s\"", "100ms").await;
    // A second destination nobody answers at: its sync fails while the first one sends.
    env.add_destination("down", "kind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nretry_initial_delay = \"10ms\"\nmax_attempts = 2");
    env.write_sync(
        "signups_to_down",
        "source = \"stream:signups\"\ntrigger = \"on_event\"\ndebounce = \"100ms\"\ndestination = \"down\"\nprimary_key = \"event_id\"\nmode = \"insert\"",
        "SELECT id AS event_id, payload->>'email' AS email FROM events",
    );
    let daemon = Daemon::start(env.root(), &[]);
    let base = daemon.base_url().await;
    for i in 1..=3 {
        assert_eq!(post(&base, "signups", &format!("e{i}"), &json!({ "email": format!("p{i}@example.com") })).await.status(), 200);
    }
    eventually(WAIT, "the working sync to send every event", || async { env.sink.rows().len() == 3 }).await;
    eventually(WAIT, "the failing sync to fail", || async {
        runs(&env, "signups_to_down").await.iter().any(|(status, _, _)| status == "failed")
    })
    .await;
    // Past `retain`, and read by one sync: still held for the other.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(post(&base, "signups", "e4", &json!({ "email": "p4@example.com" })).await.status(), 200);
    eventually(WAIT, "the fourth event sent", || async { env.sink.rows().len() == 4 }).await;
    eventually(WAIT, "the oldest unread age published", || async {
        let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
        samples(&metrics)
            .iter()
            .any(|(name, v)| name.starts_with("sluice_stream_oldest_unread_age_seconds") && name.contains("signups_to_down") && *v >= 1.0)
    })
    .await;
    assert_eq!(stored_events(&env, "signups").await, 4, "the failing sync's events are held past retain");

    // The destination is fixed: the sync reads them all, and then they go.
    let config = std::fs::read_to_string(env.root().join("sluice.toml")).unwrap();
    std::fs::write(env.root().join("sluice.toml"), config.replace("http://127.0.0.1:9/", &env.sink.url)).unwrap();
    daemon.signal("HUP");
    eventually(WAIT, "the held events sent to the fixed destination", || async { env.sink.rows().len() == 8 }).await;
    eventually(WAIT, "events read by every sync pruned past retain", || async { stored_events(&env, "signups").await == 0 }).await;
    assert_eq!(keys(&env), ["e1", "e1", "e2", "e2", "e3", "e3", "e4", "e4"], "each sync sent each event once");
}

#[tokio::test]
async fn an_event_answered_is_sent_after_the_daemon_is_killed() {
    // A debounce far away: the daemon is killed before it runs.
    let env = stream_project(StateKind::Sqlite, "", "1h").await;
    let mut daemon = Daemon::start(env.root(), &[]);
    let base = daemon.base_url().await;
    // The start's catch-up run of the sync, before any event.
    eventually(WAIT, "the first run", || async { completed(&env, "signups_to_hook").await == 1 }).await;
    assert_eq!(post(&base, "signups", "k1", &json!({ "email": "kept@example.com" })).await.status(), 200);
    daemon.signal("KILL");
    daemon.wait_exit(WAIT).await;
    assert!(env.sink.rows().is_empty());

    let daemon = Daemon::start(env.root(), &[]);
    eventually(WAIT, "the stored event sent by the restarted daemon", || async { env.sink.rows().len() == 1 }).await;
    assert_eq!(keys(&env), ["k1"], "{}", daemon.logs());
}

#[tokio::test]
async fn a_run_by_hand_reads_only_the_events_it_has_not_read() {
    let env = stream_project(StateKind::Sqlite, "", "1s").await;
    let project = sluice::project::Project::load(env.root()).unwrap();
    let store = sluice::state::Store::open("sqlite://.sluice/state.db", env.root()).await.unwrap();
    for i in 1..=3 {
        store.append_event("signups", &format!("h{i}"), &json!({ "email": format!("h{i}@example.com") }).to_string()).await.unwrap();
    }
    store.close().await;
    drop(project);
    let first = env.run("signups_to_hook").await;
    assert_eq!((first.written, first.error.clone()), (3, None), "{first:?}");
    let again = env.run("signups_to_hook").await;
    assert_eq!((again.written, again.rows_read), (0, 0), "nothing new read: {again:?}");
    let store = sluice::state::Store::open("sqlite://.sluice/state.db", env.root()).await.unwrap();
    store.append_event("signups", "h4", &json!({ "email": "h4@example.com" }).to_string()).await.unwrap();
    store.close().await;
    let third = env.run("signups_to_hook").await;
    assert_eq!((third.written, third.rows_read), (1, 1), "{third:?}");
    assert_eq!(keys(&env), ["h1", "h2", "h3", "h4"]);

    // A full resync reads every event kept, and sends none again (insert mode: the diff knows them).
    let full = env.run_with("signups_to_hook", sluice::engine::RunOptions { full_resync: true, ..Default::default() }).await;
    assert_eq!(full.rows_read, 4);
    assert_eq!(keys(&env).len(), 4, "{full:?}");
}

#[tokio::test]
async fn sync_files_misusing_streams_are_refused_where_they_say_it() {
    let env = stream_project(StateKind::Sqlite, "", "1s").await;
    env.write_sync("typo", "source = \"stream:signup\"\ndestination = \"hook\"\nprimary_key = \"id\"", "SELECT id FROM events");
    env.write_sync(
        "mirror",
        "source = \"stream:signups\"\ndestination = \"hook\"\nprimary_key = \"id\"\nmode = \"mirror\"",
        "SELECT id FROM events",
    );
    env.write_sync(
        "not_a_stream",
        "source = \"wh\"\ntrigger = \"on_event\"\ndestination = \"hook\"\nprimary_key = \"id\"",
        "SELECT id FROM t",
    );
    env.write_sync("bad_debounce", "source = \"wh\"\ndebounce = \"2s\"\ndestination = \"hook\"\nprimary_key = \"id\"", "SELECT id FROM t");
    let project = sluice::project::Project::load(env.root()).unwrap();
    let error =
        |name: &str| project.invalid.iter().find(|e| e.file.ends_with(format!("{name}.sql"))).map(|e| e.to_string()).unwrap_or_default();
    assert!(error("typo").contains("typo.sql:2") && error("typo").contains("did you mean `stream:signups`?"), "{}", error("typo"));
    assert!(error("mirror").contains("cannot remove"), "{}", error("mirror"));
    assert!(
        error("not_a_stream").contains("on_event") && error("not_a_stream").contains("not_a_stream.sql:3"),
        "{}",
        error("not_a_stream")
    );
    assert!(error("bad_debounce").contains("`debounce` applies to trigger = \"on_event\""), "{}", error("bad_debounce"));
}

#[tokio::test]
async fn check_says_when_no_sync_reads_a_stream() {
    let env = stream_project(StateKind::Sqlite, "", "1s").await;
    env.append_config(&format!("\n[streams.orphan]\nsecret = \"{SECRET}\"\n"));
    let out = support::sluice_cli(env.root(), &["check"], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("no sync reads stream `orphan`"), "{text}");
    assert!(text.contains("signups_to_hook"), "the sync over the stream checks: {text}");
}
