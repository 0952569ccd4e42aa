//! The daemon's HTTP endpoint: `/healthz`, `/metrics` (Prometheus text), a small JSON API
//! (`/api/syncs`, `/api/syncs/{name}`, `POST /api/syncs/{name}/run`, `POST /api/reload`) and
//! the streams' webhooks (`POST /hooks/{stream}`, signed by their senders: `hooks`).
//! Handlers read a published [`View`] and send [`Control`] messages to the daemon's loop; they
//! never touch the loop's state directly.
//!
//! Safe by default, for a port any local program or web page can reach:
//! - mutating endpoints always need the bearer token (configured, or generated into the state
//!   directory), compared in constant time; a browser's cross-site request has none to send;
//! - every request must name the endpoint by an IP address, `localhost` or an allowed host
//!   (`Host`), which a DNS-rebinding page cannot; a POST from another origin (`Origin`) is refused;
//! - read endpoints show run errors (which may quote row data) only with the token;
//! - connections are capped, and a client gets `http_timeout` to send its headers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

use super::runs::Generation;

/// What the loop publishes for the endpoint after every change.
#[derive(Clone)]
pub struct View {
    pub generation: Arc<Generation>,
    pub next_runs: HashMap<String, DateTime<Utc>>,
    pub running: Vec<String>,
    /// When each run going on started, and its `max_run_time`.
    pub started: HashMap<String, (std::time::Instant, Duration)>,
}

/// How long past its `max_run_time` a run may still be going (ending it takes a moment) before
/// `/healthz` calls it stuck.
const OVERDUE_GRACE: Duration = Duration::from_secs(60);

pub struct Shared {
    pub view: RwLock<View>,
    /// When the loop last went round (unix ms): a stuck loop makes `/healthz` fail.
    pub heartbeat: AtomicI64,
    /// The API's bearer token; replaced when a reload brings another.
    pub token: RwLock<SecretString>,
    /// How far each run going on here has got (the console's progress).
    pub live: super::runs::LiveRuns,
}

/// Requests the loop carries out.
pub enum Control {
    /// Run a sync now, as asked, saying who asked.
    Run {
        name: String,
        asked: super::runs::Asked,
        by: &'static str,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Reload(oneshot::Sender<Result<(), String>>),
}

#[derive(Clone)]
pub(super) struct Api {
    pub(super) shared: Arc<Shared>,
    control: mpsc::Sender<Control>,
    /// The name of each stream that got an event, for the loop (`triggers`).
    pub(super) events: mpsc::UnboundedSender<String>,
    /// Names a request's `Host` may give besides IP addresses and `localhost`.
    allowed_hosts: Arc<Vec<String>>,
}

/// How the endpoint serves connections (`[daemon]` settings).
pub struct Limits {
    pub allowed_hosts: Vec<String>,
    /// For a request's headers, and between requests on a kept-alive connection.
    pub header_timeout: Duration,
    pub max_connections: usize,
}

/// The API's token: `[daemon] api_token`, else the one in the state directory's `api_token`
/// file, generated (256 random bits, mode 0600) the first time. The file's path when it is one.
pub fn api_token(project: &crate::project::Project) -> Result<(SecretString, Option<std::path::PathBuf>), String> {
    if let Some(token) = &project.config.daemon.api_token {
        return Ok((token.clone(), None));
    }
    let dir = project.config.state.local_dir(&project.root);
    let path = dir.join("api_token");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if !text.trim().is_empty() {
            return Ok((SecretString::from(text.trim().to_string()), Some(path)));
        }
    }
    let cannot = |e: std::io::Error| format!("cannot write the API token to {}: {e} (or set [daemon] api_token)", path.display());
    crate::state::private_dir(&dir).map_err(cannot)?;
    let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let mut file = crate::state::private_file(&path).map_err(cannot)?;
    use std::io::Write;
    file.set_len(0).and_then(|_| file.write_all(token.as_bytes())).and_then(|_| file.sync_all()).map_err(cannot)?;
    Ok((SecretString::from(token), Some(path)))
}

/// The longest one connection is served: no endpoint streams, so only a stuck client gets here.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);

/// A loop that has not gone round for this long is stuck.
const STALE_MS: i64 = 10_000;

pub async fn serve(
    listen: &str,
    limits: Limits,
    shared: Arc<Shared>,
    control: mpsc::Sender<Control>,
    events: mpsc::UnboundedSender<String>,
    cancel: CancellationToken,
) -> Result<SocketAddr, String> {
    let addr: SocketAddr =
        listen.parse().map_err(|_| format!("[daemon] listen = \"{listen}\" is not an address like \"127.0.0.1:9187\" (or \"off\")"))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("[daemon] listen: cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let api =
        Api { shared, control, events, allowed_hosts: Arc::new(limits.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()).collect()) };
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/syncs", get(list))
        .route("/api/syncs/{name}", get(one))
        .route("/api/syncs/{name}/run", post(trigger))
        .route("/api/reload", post(reload))
        .route("/hooks/{stream}", post(super::hooks::receive))
        .merge(super::console::routes())
        .layer(axum::middleware::from_fn_with_state(api.clone(), known_host))
        .with_state(api);
    tokio::spawn(accept(listener, app, limits, cancel));
    Ok(bound)
}

/// The accept loop: a connection needs a permit (at most `max_connections` at once), its
/// client `header_timeout` to send each request's headers, and it lasts `CONNECTION_LIFETIME`
/// at most. Stops accepting when the daemon stops.
async fn accept(listener: tokio::net::TcpListener, app: Router, limits: Limits, cancel: CancellationToken) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => return,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let stream = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: a moment before the next try, not a spin.
                    tracing::warn!(error = %e, "HTTP endpoint: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(permit);
        });
    }
}

/// Refuses a request whose `Host` is a name this endpoint was not told to answer to: a page
/// that rebinds its own domain to 127.0.0.1 sends its own name, and reads nothing.
async fn known_host(State(api): State<Api>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if host_allowed(host, &api.allowed_hosts) {
        return next.run(request).await;
    }
    error(
        StatusCode::MISDIRECTED_REQUEST,
        "this endpoint answers to IP addresses, `localhost` and [daemon] allowed_hosts only (a request for another host name was refused)",
    )
}

/// Whether a `Host` header names this endpoint: an IP literal, `localhost`, or an allowed name.
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        // [::1]:9187
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, port)| if port.chars().all(|c| c.is_ascii_digit()) { name } else { host }),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    !name.is_empty() && (name.parse::<IpAddr>().is_ok() || name == "localhost" || allowed.contains(&name))
}

pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn healthz(State(api): State<Api>) -> Response {
    let age = Utc::now().timestamp_millis() - api.shared.heartbeat.load(Ordering::Relaxed);
    if age > STALE_MS {
        return error(StatusCode::SERVICE_UNAVAILABLE, format!("the scheduler loop has not run for {} s", age / 1000));
    }
    let view = api.shared.view.read().map(|v| (v.generation.clone(), v.started.clone())).ok();
    let Some((generation, started)) = view else { return error(StatusCode::SERVICE_UNAVAILABLE, "the daemon's state is poisoned") };
    // A run past its deadline should have been stopped: one still going is stuck where the
    // deadline cannot reach it.
    if let Some((sync, (since, limit))) =
        started.iter().find(|(_, (since, limit))| !limit.is_zero() && since.elapsed() > *limit + OVERDUE_GRACE)
    {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the run of `{sync}` has gone on for {}, past its max_run_time of {}: it is stuck (restarting the daemon ends it)",
                humantime::format_duration(Duration::from_secs(since.elapsed().as_secs())),
                humantime::format_duration(*limit)
            ),
        );
    }
    match generation.engine.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn metrics() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], crate::metrics::global().encode()).into_response()
}

/// One sync's status: definition, next run, whether it runs now, recent runs, pending rows.
/// The runs' errors (which may quote row data) only for a caller with the token.
async fn status(
    generation: &Generation,
    next: Option<DateTime<Utc>>,
    running: bool,
    name: &str,
    authorized: bool,
) -> Option<serde_json::Value> {
    let sync = generation.project.syncs.iter().find(|s| s.name() == name)?;
    let store = &generation.engine.store;
    let mut runs = store.runs(name, 5).await.unwrap_or_default();
    if !authorized {
        for run in &mut runs {
            run.error = run.error.as_ref().map(|_| "(shown with the API token)".to_string());
        }
    }
    let (rejected, retryable) = store.error_counts(name).await.unwrap_or((0, 0));
    let schedule = sync.file.schedule.text();
    let trigger = match sync.file.trigger {
        crate::project::Trigger::Schedule => "schedule",
        crate::project::Trigger::OnEvent { .. } => "on_event",
    };
    Some(json!({
        "name": name, "source": sync.source, "destination": sync.destination, "mode": sync.file.mode.as_str(),
        "schedule": schedule, "trigger": trigger, "next_run": next, "running": running, "last_runs": runs,
        "pending_rows": { "rejected": rejected, "retryable": retryable },
    }))
}

pub(super) fn snapshot(api: &Api) -> Option<View> {
    api.shared.view.read().ok().map(|v| v.clone())
}

async fn list(State(api): State<Api>, headers: HeaderMap) -> Response {
    let Some(View { generation, next_runs: next, running, .. }) = snapshot(&api) else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no state");
    };
    let authorized = authorized(&api, &headers);
    let mut syncs = Vec::new();
    for sync in &generation.project.syncs {
        let name = sync.name();
        syncs.extend(status(&generation, next.get(name).copied(), running.iter().any(|r| r == name), name, authorized).await);
    }
    // An invalid sync file's error quotes the file, not data: shown to all.
    let invalid: Vec<String> = generation.project.invalid.iter().map(|e| e.to_string()).collect();
    Json(json!({ "syncs": syncs, "invalid": invalid })).into_response()
}

async fn one(State(api): State<Api>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(View { generation, next_runs: next, running, .. }) = snapshot(&api) else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no state");
    };
    match status(&generation, next.get(&name).copied(), running.contains(&name), &name, authorized(&api, &headers)).await {
        Some(s) => Json(s).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no sync named `{name}`")),
    }
}

/// Whether the request carries the API token (compared in constant time).
fn authorized(api: &Api, headers: &HeaderMap) -> bool {
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let Some(given) = given else { return false };
    let Ok(token) = api.shared.token.read() else { return false };
    bool::from(given.as_bytes().ct_eq(token.expose_secret().as_bytes()))
}

/// Mutating endpoints need the token, and a browser's request from another site is refused
/// even with one (its `Origin` is not this endpoint's). The refusal, if refused.
fn refusal(api: &Api, headers: &HeaderMap) -> Option<Response> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Some(origin) = headers.get(header::ORIGIN) {
        let same = origin.to_str().ok().is_some_and(|o| o == format!("http://{host}"));
        if !same {
            return Some(error(StatusCode::FORBIDDEN, "requests from another origin (a web page) may not change anything here"));
        }
    }
    (!authorized(api, headers)).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "this endpoint needs `Authorization: Bearer <token>`: the [daemon] api_token, or the token the daemon generated \
             (its path is in the daemon's log at start)",
        )
    })
}

pub(super) async fn ask(api: &Api, make: impl FnOnce(oneshot::Sender<Result<(), String>>) -> Control) -> Result<(), String> {
    let (tx, rx) = oneshot::channel();
    api.control.send(make(tx)).await.map_err(|_| "the daemon is stopping".to_string())?;
    rx.await.map_err(|_| "the daemon is stopping".to_string())?
}

async fn trigger(State(api): State<Api>, Path(name): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    if let Some(r) = refusal(&api, &headers) {
        return r;
    }
    let allow_deletes = query.unwrap_or_default().split('&').any(|p| p == "allow_deletes=true");
    let asked = super::runs::Asked { allow_deletes, ..Default::default() };
    let by = "an API request to the daemon";
    match ask(&api, |reply| Control::Run { name: name.clone(), asked, by, reply }).await {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({ "started": name }))).into_response(),
        Err(e) if e.contains("no sync") => error(StatusCode::NOT_FOUND, e),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

async fn reload(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Some(r) = refusal(&api, &headers) {
        return r;
    }
    match ask(&api, Control::Reload).await {
        Ok(()) => Json(json!({ "reloaded": true })).into_response(),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn only_addresses_localhost_and_allowed_names_are_this_endpoint() {
        let allowed = vec!["sluice.internal".to_string()];
        for host in ["127.0.0.1:9187", "127.0.0.1", "[::1]:9187", "localhost:9187", "LOCALHOST", "sluice.internal:80", "10.0.0.5:9187"] {
            assert!(host_allowed(host, &allowed), "{host}");
        }
        for host in
            ["evil.example:9187", "evil.example", "127.0.0.1.evil.example", "", "localhost.evil.example:9187", "sluice.internal.evil:1"]
        {
            assert!(!host_allowed(host, &allowed), "{host}");
        }
    }
}
