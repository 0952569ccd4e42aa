//! HTTP destinations never follow a redirect: followed, a 301/302/303 turns the POST into a GET
//! whose empty 200 would record every row as written with nothing delivered, and the URL's token
//! and secret headers would travel to the other host. A 3xx fails the run, naming the host it
//! points at. Bodies are read up to a bound.

use crate::support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use sluice::state::RunStatus;
use support::{Env, SourceKind, StateKind};

/// What reached a server: method, path and query, headers.
type Seen = Arc<Mutex<Vec<(Method, String, HeaderMap)>>>;

/// How a server answers, given the other host's address.
type Answer = fn(&str) -> Response;

/// A server that answers every request with `answer`, recording what it saw.
async fn server(answer: Answer, landing: String) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let app = Router::new().fallback(
        |State((seen, landing, answer)): State<(Seen, String, Answer)>, method: Method, uri: Uri, headers: HeaderMap| async move {
            seen.lock().unwrap().push((method, uri.to_string(), headers));
            answer(&landing)
        },
    );
    let app = app.with_state((seen.clone(), landing, answer));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

fn ok(_: &str) -> Response {
    StatusCode::OK.into_response()
}

/// A project whose `moved` destination (a webhook or Slack) points at a server that answers
/// with `status` and a Location on another host (`localhost` vs `127.0.0.1`); what the other
/// host saw.
async fn moved(kind: &str, status: Answer) -> (Env, Seen, Seen) {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    let (landing, landed) = server(ok, String::new()).await;
    let landing = landing.replace("127.0.0.1", "localhost");
    let (url, asked) = server(status, format!("{landing}/new-home")).await;
    let body = match kind {
        "webhook" => format!(
            "kind = \"webhook\"\nurl = \"{url}/hook?token=SECRET-IN-URL\"\nheaders = {{ X-Api-Key = \"SECRET-HEADER\" }}\nmax_attempts = 1"
        ),
        _ => format!("kind = \"slack\"\nwebhook_url = \"{url}/services/T0/B0/SECRET-IN-URL\"\nmax_attempts = 1"),
    };
    env.add_destination("moved", &body);
    let target = if kind == "slack" { "\n[target]\ntext = \"{{ v }}\"" } else { "" };
    env.write_sync(
        "people",
        &format!("destination = \"moved\"\nprimary_key = \"id\"{target}"),
        "SELECT i AS id, i AS v FROM range(1, 4) t(i)",
    );
    (env, asked, landed)
}

fn found(landing: &str) -> Response {
    (StatusCode::FOUND, [("location", landing.to_string())]).into_response()
}
fn see_other(landing: &str) -> Response {
    (StatusCode::SEE_OTHER, [("location", landing.to_string())]).into_response()
}
fn temporary(landing: &str) -> Response {
    (StatusCode::TEMPORARY_REDIRECT, [("location", landing.to_string())]).into_response()
}

async fn a_redirect_fails_the_run_and_nothing_goes_to_the_other_host(kind: &str, status: Answer, code: u16) {
    let (env, asked, landed) = moved(kind, status).await;
    let report = env.run("people").await;
    let error = report.error.clone().unwrap_or_default();
    assert_eq!(report.status, RunStatus::Failed, "{kind} {code}: {report:?}");
    assert!(error.contains(&format!("HTTP {code} redirects to localhost")), "{error}");
    assert!(error.contains(if kind == "slack" { "set `webhook_url`" } else { "set `url`" }), "{error}");
    assert!(!error.contains("SECRET"), "no secret in the message: {error}");
    assert_eq!(report.written, 0);
    assert_eq!(asked.lock().unwrap().len(), 1, "one request, not retried: a redirect is configuration");
    assert!(landed.lock().unwrap().is_empty(), "nothing reached the other host: {:?}", landed.lock().unwrap());
    assert_eq!(env.committed_rows().await, 0, "no row is recorded as written");
}

#[tokio::test]
async fn a_webhook_never_follows_302() {
    a_redirect_fails_the_run_and_nothing_goes_to_the_other_host("webhook", found, 302).await;
}

#[tokio::test]
async fn a_webhook_never_follows_303() {
    a_redirect_fails_the_run_and_nothing_goes_to_the_other_host("webhook", see_other, 303).await;
}

#[tokio::test]
async fn a_webhook_never_follows_307() {
    a_redirect_fails_the_run_and_nothing_goes_to_the_other_host("webhook", temporary, 307).await;
}

#[tokio::test]
async fn slack_never_follows_a_redirect() {
    a_redirect_fails_the_run_and_nothing_goes_to_the_other_host("slack", found, 302).await;
}

fn huge(_: &str) -> Response {
    // A 200 with a body past the bound: 17 MiB of JSON-ish text.
    (StatusCode::OK, vec![b' '; 17 << 20]).into_response()
}

#[tokio::test]
async fn an_answer_larger_than_the_bound_is_not_read_whole() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    let (url, asked) = server(huge, String::new()).await;
    env.add_destination("big", &format!("kind = \"webhook\"\nurl = \"{url}/hook\"\nmax_attempts = 1"));
    env.write_sync("people", "destination = \"big\"\nprimary_key = \"id\"", "SELECT i AS id FROM range(1, 4) t(i)");
    let report = env.run("people").await;
    let error = report.error.clone().unwrap_or_default();
    assert!(report.failed() && error.contains("larger than 16 MiB"), "{report:?}");
    assert_eq!(asked.lock().unwrap().len(), 1);
    assert_eq!(env.committed_rows().await, 0, "an answer that could not be read records nothing as written");
}
