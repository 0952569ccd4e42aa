//! A Slack incoming-webhook emulator, faithful to what a client sees: `POST
//! /services/T…/B…/TOKEN` with JSON `{"text", "blocks"}` answers 200 `ok`; errors are plain-text
//! codes: 400 `invalid_payload` (not JSON), `no_text` (neither text nor blocks), `invalid_blocks`
//! (blocks not a list of objects with a `type`), 404 `no_service` (unknown webhook), 403
//! `action_prohibited`, 404 `channel_not_found`, 410 `channel_is_archived`, 500 `rollup_error`.
//! More than one message per `min_interval` gets 429 `rate_limited` with `Retry-After: 1`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::Value;

const HOOK: &str = "T000/B000/XXXXtokenXXXX";

#[derive(Default)]
pub struct Inner {
    /// Messages accepted, in order.
    pub messages: Vec<Value>,
    /// The next requests answer these (status, plain-text code) instead.
    pub fail_next: VecDeque<(u16, &'static str)>,
    /// Request number N (1-based) answers (status, code) instead.
    pub fail_nth: Vec<(usize, u16, &'static str)>,
    /// Messages whose text contains this are refused with 400 `invalid_blocks`.
    pub refuse_containing: Option<String>,
    /// Least time between two accepted messages; closer ones get 429.
    pub min_interval: Option<Duration>,
    last: Option<Instant>,
    pub requests: usize,
    pub rate_limited: usize,
}

#[derive(Clone)]
pub struct Slack {
    /// The webhook URL to configure (`webhook_url`).
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl Slack {
    pub async fn start() -> Slack {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the Slack emulator");
        let url = format!("http://{}/services/{HOOK}", listener.local_addr().expect("address"));
        let app = Router::new().route("/services/{team}/{bot}/{token}", post(receive)).with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Slack { url, inner }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }

    pub fn messages(&self) -> Vec<Value> {
        self.with(|s| s.messages.clone())
    }

    /// The `text` of each accepted message.
    pub fn texts(&self) -> Vec<String> {
        self.messages().iter().map(|m| m["text"].as_str().unwrap_or_default().to_string()).collect()
    }
}

fn plain(status: u16, code: &str) -> Response {
    let mut response = (StatusCode::from_u16(status).expect("status"), code.to_string()).into_response();
    response.headers_mut().insert("content-type", HeaderValue::from_static("text/html"));
    response
}

async fn receive(
    State(state): State<Arc<Mutex<Inner>>>,
    Path((team, bot, token)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut s = state.lock().unwrap();
    s.requests += 1;
    if format!("{team}/{bot}/{token}") != HOOK {
        return plain(404, "no_service");
    }
    if let Some((status, code)) = s.fail_next.pop_front() {
        return plain(status, code);
    }
    let n = s.requests;
    if let Some(&(_, status, code)) = s.fail_nth.iter().find(|(at, _, _)| *at == n) {
        return plain(status, code);
    }
    if let (Some(min), Some(last)) = (s.min_interval, s.last) {
        if last.elapsed() < min {
            s.rate_limited += 1;
            let mut response = plain(429, "rate_limited");
            response.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
            return response;
        }
    }
    if !headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json")) {
        return plain(400, "invalid_payload");
    }
    let Ok(message) = serde_json::from_str::<Value>(&body) else { return plain(400, "invalid_payload") };
    let text = message.get("text").and_then(Value::as_str).unwrap_or_default();
    let blocks = message.get("blocks");
    if text.is_empty() && blocks.is_none() {
        return plain(400, "no_text");
    }
    if let Some(blocks) = blocks {
        let valid = blocks.as_array().is_some_and(|b| b.iter().all(|block| block.get("type").is_some_and(Value::is_string)));
        if !valid {
            return plain(400, "invalid_blocks");
        }
    }
    if s.refuse_containing.as_deref().is_some_and(|needle| body.contains(needle)) {
        return plain(400, "invalid_blocks");
    }
    s.last = Some(Instant::now());
    s.messages.push(message);
    plain(200, "ok")
}
