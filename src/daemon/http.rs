//! The daemon's HTTP endpoint: `/healthz`, `/metrics` (Prometheus text) and a small JSON API
//! (`/api/syncs`, `/api/syncs/{name}`, `POST /api/syncs/{name}/run`, `POST /api/reload`).
//! Handlers read a published [`View`] and send [`Control`] messages to the daemon's loop; they
//! never touch the loop's state directly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::runs::Generation;
use crate::project::Schedule;

/// What the loop publishes for the endpoint after every change.
#[derive(Clone)]
pub struct View {
    pub generation: Arc<Generation>,
    pub next_runs: HashMap<String, DateTime<Utc>>,
    pub running: Vec<String>,
}

pub struct Shared {
    pub view: RwLock<View>,
    /// When the loop last went round (unix ms): a stuck loop makes `/healthz` fail.
    pub heartbeat: AtomicI64,
}

/// Requests the loop carries out.
pub enum Control {
    /// Run a sync now; `true` lets it past the delete guard.
    Run(String, bool, oneshot::Sender<Result<(), String>>),
    Reload(oneshot::Sender<Result<(), String>>),
}

#[derive(Clone)]
struct Api {
    shared: Arc<Shared>,
    control: mpsc::Sender<Control>,
    token: Option<SecretString>,
    loopback: bool,
}

/// A loop that has not gone round for this long is stuck.
const STALE_MS: i64 = 10_000;

pub async fn serve(
    listen: &str,
    token: Option<SecretString>,
    shared: Arc<Shared>,
    control: mpsc::Sender<Control>,
    cancel: CancellationToken,
) -> Result<SocketAddr, String> {
    let addr: SocketAddr =
        listen.parse().map_err(|_| format!("[daemon] listen = \"{listen}\" is not an address like \"127.0.0.1:9187\" (or \"off\")"))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("[daemon] listen: cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let api = Api { shared, control, token, loopback: bound.ip().is_loopback() };
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/syncs", get(list))
        .route("/api/syncs/{name}", get(one))
        .route("/api/syncs/{name}/run", post(trigger))
        .route("/api/reload", post(reload))
        .with_state(api);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(cancel.cancelled_owned()).await;
    });
    Ok(bound)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn healthz(State(api): State<Api>) -> Response {
    let age = Utc::now().timestamp_millis() - api.shared.heartbeat.load(Ordering::Relaxed);
    if age > STALE_MS {
        return error(StatusCode::SERVICE_UNAVAILABLE, format!("the scheduler loop has not run for {} s", age / 1000));
    }
    let generation = api.shared.view.read().map(|v| v.generation.clone()).ok();
    let Some(generation) = generation else { return error(StatusCode::SERVICE_UNAVAILABLE, "the daemon's state is poisoned") };
    match generation.engine.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn metrics() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], crate::metrics::global().encode()).into_response()
}

/// One sync's status: definition, next run, whether it runs now, recent runs, pending rows.
async fn status(generation: &Generation, next: Option<DateTime<Utc>>, running: bool, name: &str) -> Option<serde_json::Value> {
    let sync = generation.project.syncs.iter().find(|s| s.name() == name)?;
    let store = &generation.engine.store;
    let runs = store.runs(name, 5).await.unwrap_or_default();
    let (rejected, retryable) = store.error_counts(name).await.unwrap_or((0, 0));
    let schedule = match &sync.file.schedule {
        Schedule::Manual => "manual".to_string(),
        Schedule::Cron(c) => c.clone(),
    };
    Some(json!({
        "name": name, "source": sync.source, "destination": sync.destination, "mode": sync.file.mode.as_str(),
        "schedule": schedule, "next_run": next, "running": running, "last_runs": runs,
        "pending_rows": { "rejected": rejected, "retryable": retryable },
    }))
}

fn snapshot(api: &Api) -> Option<View> {
    api.shared.view.read().ok().map(|v| v.clone())
}

async fn list(State(api): State<Api>) -> Response {
    let Some(View { generation, next_runs: next, running }) = snapshot(&api) else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no state");
    };
    let mut syncs = Vec::new();
    for sync in &generation.project.syncs {
        let name = sync.name();
        syncs.extend(status(&generation, next.get(name).copied(), running.iter().any(|r| r == name), name).await);
    }
    let invalid: Vec<String> = generation.project.invalid.iter().map(|e| e.to_string()).collect();
    Json(json!({ "syncs": syncs, "invalid": invalid })).into_response()
}

async fn one(State(api): State<Api>, Path(name): Path<String>) -> Response {
    let Some(View { generation, next_runs: next, running }) = snapshot(&api) else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no state");
    };
    match status(&generation, next.get(&name).copied(), running.contains(&name), &name).await {
        Some(s) => Json(s).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no sync named `{name}`")),
    }
}

/// Mutating endpoints take the configured bearer token or, without one, loopback callers only.
/// The refusal, if refused.
fn refusal(api: &Api, headers: &HeaderMap) -> Option<Response> {
    match &api.token {
        Some(token) => {
            let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
            (given != Some(token.expose_secret()))
                .then(|| error(StatusCode::UNAUTHORIZED, "this endpoint needs `Authorization: Bearer <[daemon] api_token>`"))
        }
        None if api.loopback => None,
        None => Some(error(StatusCode::FORBIDDEN, "set [daemon] api_token to use this endpoint on a non-loopback address")),
    }
}

async fn ask(api: &Api, make: impl FnOnce(oneshot::Sender<Result<(), String>>) -> Control) -> Result<(), String> {
    let (tx, rx) = oneshot::channel();
    api.control.send(make(tx)).await.map_err(|_| "the daemon is stopping".to_string())?;
    rx.await.map_err(|_| "the daemon is stopping".to_string())?
}

async fn trigger(State(api): State<Api>, Path(name): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    if let Some(r) = refusal(&api, &headers) {
        return r;
    }
    let allow_deletes = query.unwrap_or_default().split('&').any(|p| p == "allow_deletes=true");
    match ask(&api, |tx| Control::Run(name.clone(), allow_deletes, tx)).await {
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
