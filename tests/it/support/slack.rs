//! A Slack incoming-webhook emulator, faithful to what a client sees: `POST
//! /services/T…/B…/TOKEN` with JSON `{"text", "blocks"}` answers 200 `ok`; errors are plain-text
//! codes: 400 `invalid_payload` (not JSON), `no_text` (neither text nor blocks), `invalid_blocks`
//! (blocks not a list of objects with a `type`), 404 `no_service` (unknown webhook), 403
//! `action_prohibited`, 404 `channel_not_found`, 410 `channel_is_archived`, 500 `rollup_error`.
//! More than one message per `min_interval` gets 429 `rate_limited` with `Retry-After: 1`.
//!
//! What Slack does with what it is sent (../shared/reference/saas-apis.md §5 and §6, Slack's
//! "Formatting text" and Block Kit reference):
//! - mrkdwn is rendered: `<!channel>`, `<!here>`, `<!everyone>`, `<@U…>`, `<!subteam^…>` notify
//!   people and `<http://x|y>` becomes a link, unless written `&lt;`…; each accepted message's
//!   mentions and links are recorded, so a test can show a value mentioned nobody;
//! - Block Kit limits: at most 50 blocks, a section's text 3,000 characters, a header's 150, at
//!   most 10 section fields of 2,000 each; past them the message is refused (`invalid_blocks`);
//! - a message's `text` past 40,000 characters is cut there (counted in `truncated`).

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
    /// The people notified and the links made by accepted messages (`<!channel>`, `<@U1>`, a URL).
    pub mentions: Vec<String>,
    pub links: Vec<String>,
    /// Accepted messages whose text Slack cut at 40,000 characters.
    pub truncated: usize,
    /// How long each accepted message's answer takes (none: at once).
    pub latency: Option<super::faults::Latency>,
}

/// Slack's limits on a message (Block Kit reference; chat.postMessage for `text`).
const MAX_BLOCKS: usize = 50;
const MAX_SECTION_TEXT: usize = 3_000;
const MAX_HEADER_TEXT: usize = 150;
const MAX_FIELDS: usize = 10;
const MAX_FIELD_TEXT: usize = 2_000;
const MAX_TEXT: usize = 40_000;

/// What a Block Kit block breaks, if anything.
fn over_limit(block: &Value) -> Option<String> {
    let chars = |v: &Value| v["text"].as_str().map_or(0, |t| t.chars().count());
    match block["type"].as_str() {
        Some("section") if chars(&block["text"]) > MAX_SECTION_TEXT => Some(format!("section text over {MAX_SECTION_TEXT} characters")),
        Some("section")
            if block["fields"].as_array().is_some_and(|f| f.len() > MAX_FIELDS || f.iter().any(|x| chars(x) > MAX_FIELD_TEXT)) =>
        {
            Some("section fields over their limits".into())
        }
        Some("header") if chars(&block["text"]) > MAX_HEADER_TEXT => Some(format!("header text over {MAX_HEADER_TEXT} characters")),
        _ => None,
    }
}

/// Every `<...>` control sequence of mrkdwn text: what notifies someone, what becomes a link.
fn controls(text: &str, mentions: &mut Vec<String>, links: &mut Vec<String>) {
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else { break };
        let inner = &rest[open + 1..open + close];
        let target = inner.split('|').next().unwrap_or_default();
        if target.starts_with('!') || target.starts_with('@') || target.starts_with('#') {
            mentions.push(target.to_string());
        } else if target.contains("://") || target.starts_with("mailto:") {
            links.push(target.to_string());
        }
        rest = &rest[open + close + 1..];
    }
}

/// The mrkdwn texts of a message: its `text` and the `mrkdwn` text objects of its blocks.
fn mrkdwn_texts(message: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if map.get("type").and_then(Value::as_str) == Some("mrkdwn") {
                    out.extend(map.get("text").and_then(Value::as_str).map(str::to_string));
                }
                map.values().for_each(|x| walk(x, out));
            }
            Value::Array(items) => items.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out: Vec<String> = message.get("text").and_then(Value::as_str).map(str::to_string).into_iter().collect();
    if let Some(blocks) = message.get("blocks") {
        walk(blocks, &mut out);
    }
    out
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
    let (response, latency) = accept(&state, &format!("{team}/{bot}/{token}"), &headers, &body);
    super::faults::answer_after(latency).await;
    response
}

/// What Slack makes of a message, and how long its answer takes.
fn accept(state: &Mutex<Inner>, hook: &str, headers: &HeaderMap, body: &str) -> (Response, Option<Duration>) {
    let mut s = state.lock().unwrap();
    s.requests += 1;
    if hook != HOOK {
        return (plain(404, "no_service"), None);
    }
    if let Some((status, code)) = s.fail_next.pop_front() {
        return (plain(status, code), None);
    }
    let n = s.requests;
    if let Some(&(_, status, code)) = s.fail_nth.iter().find(|(at, _, _)| *at == n) {
        return (plain(status, code), None);
    }
    if let (Some(min), Some(last)) = (s.min_interval, s.last) {
        if last.elapsed() < min {
            s.rate_limited += 1;
            let mut response = plain(429, "rate_limited");
            response.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
            return (response, None);
        }
    }
    if !headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json")) {
        return (plain(400, "invalid_payload"), None);
    }
    let Ok(message) = serde_json::from_str::<Value>(body) else { return (plain(400, "invalid_payload"), None) };
    let text = message.get("text").and_then(Value::as_str).unwrap_or_default();
    let blocks = message.get("blocks");
    if text.is_empty() && blocks.is_none() {
        return (plain(400, "no_text"), None);
    }
    if let Some(blocks) = blocks {
        let valid = blocks.as_array().is_some_and(|b| b.iter().all(|block| block.get("type").is_some_and(Value::is_string)));
        let within = blocks.as_array().is_some_and(|b| b.len() <= MAX_BLOCKS && b.iter().all(|block| over_limit(block).is_none()));
        if !valid || !within {
            return (plain(400, "invalid_blocks"), None);
        }
    }
    if s.refuse_containing.as_deref().is_some_and(|needle| body.contains(needle)) {
        return (plain(400, "invalid_blocks"), None);
    }
    let cut: Option<String> = (text.chars().count() > MAX_TEXT).then(|| text.chars().take(MAX_TEXT).collect());
    s.last = Some(Instant::now());
    let mut message = message;
    if let Some(cut) = cut {
        message["text"] = Value::String(cut);
        s.truncated += 1;
    }
    let (mut mentions, mut links) = (Vec::new(), Vec::new());
    for text in mrkdwn_texts(&message) {
        controls(&text, &mut mentions, &mut links);
    }
    s.mentions.extend(mentions);
    s.links.extend(links);
    s.messages.push(message);
    let latency = s.latency.as_mut().map(|l| l.next());
    (plain(200, "ok"), latency)
}
