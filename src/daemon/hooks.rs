//! `POST /hooks/{stream}`: an event from a webhook sender. The answer is 2xx only once the event
//! is committed to the state store; everything else stores nothing:
//! - 404 for a stream `sluice.toml` does not define;
//! - 413 for a body over the stream's `max_body_bytes` (read no further than that);
//! - 401 for a missing or wrong signature (`signature`), checked over the raw body first;
//! - 400 for a body that is not a JSON object, or lacks its delivery id where one is configured;
//! - 503 when the store cannot take it (the sender retries later).
//!
//! A retry of a delivery already stored (same id) is answered 200 and stored once. The loop is
//! told which stream got an event, and starts the syncs waiting on it (`triggers`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::http::{error, Api};
use crate::project::StreamConfig;
use crate::state::Appended;

/// Why an event was refused, as the metric's `reason` label.
fn refuse(stream: &str, reason: &'static str, status: StatusCode, message: String) -> Response {
    crate::metrics::global()
        .events_refused
        .get_or_create(&crate::metrics::RefusedLabels { stream: stream.to_string(), reason: reason.to_string() })
        .inc();
    tracing::warn!(stream, reason, status = status.as_u16(), "{message}");
    error(status, message)
}

pub async fn receive(State(api): State<Api>, Path(stream): Path<String>, headers: HeaderMap, body: Body) -> Response {
    let Some(generation) = api.shared.view.read().ok().map(|v| v.generation.clone()) else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the daemon's state is poisoned");
    };
    let Some(config) = generation.project.config.streams.get(&stream) else {
        let known: Vec<&str> = generation.project.config.streams.keys().map(String::as_str).collect();
        // The name is the caller's: shown back only as far as it is a plausible name.
        let shown: String = stream.chars().filter(|c| c.is_ascii_alphanumeric() || "_-".contains(*c)).take(64).collect();
        return refuse(
            &shown,
            "unknown_stream",
            StatusCode::NOT_FOUND,
            format!("no stream named `{shown}` (defined: {}); add [streams.{shown}] to sluice.toml", known.join(", ")),
        );
    };
    let body = match read_body(config, &headers, body).await {
        Ok(b) => b,
        Err(e) => return refuse(&stream, "too_large", StatusCode::PAYLOAD_TOO_LARGE, e),
    };
    if let Err(why) = super::signature::verify(config, &headers, &body, chrono::Utc::now().timestamp()) {
        return refuse(&stream, "signature", StatusCode::UNAUTHORIZED, format!("stream `{stream}`: {}", why.0));
    }
    let payload = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        Ok(_) => {
            return refuse(
                &stream,
                "not_json",
                StatusCode::BAD_REQUEST,
                "the body is JSON but not an object: send one JSON object per event".into(),
            )
        }
        Err(e) => {
            return refuse(
                &stream,
                "not_json",
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON ({e}): send one JSON object per event"),
            )
        }
    };
    let id = match delivery_id(config, &headers, &payload) {
        Ok(id) => id,
        Err(e) => return refuse(&stream, "no_id", StatusCode::BAD_REQUEST, e),
    };
    // One line of JSON: how the events reach a run (`Store::write_events`).
    let text = payload.to_string();
    match generation.engine.store.append_event(&stream, &id, &text).await {
        Ok(Appended::Stored(seq)) => {
            crate::metrics::global().events_received.get_or_create(&crate::metrics::StreamLabel { stream: stream.clone() }).inc();
            tracing::debug!(stream = %stream, seq, "event stored");
            let _ = api.events.send(stream.clone());
            (StatusCode::OK, Json(json!({ "stored": true, "id": id }))).into_response()
        }
        Ok(Appended::Duplicate) => {
            tracing::info!(stream = %stream, "a delivery already stored was sent again: stored once");
            (StatusCode::OK, Json(json!({ "stored": false, "duplicate": true, "id": id }))).into_response()
        }
        Err(e) => {
            tracing::error!(stream = %stream, error = %e, "could not store an event: answered 503, the sender retries");
            error(StatusCode::SERVICE_UNAVAILABLE, "the event could not be stored; try again later")
        }
    }
}

/// The body, read no further than the stream's limit.
async fn read_body(config: &StreamConfig, headers: &HeaderMap, body: Body) -> Result<axum::body::Bytes, String> {
    let limit = config.max_body_bytes;
    let too_large = || format!("the body is larger than this stream's max_body_bytes ({limit} bytes)");
    let declared = headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|_| too_large())
}

/// The delivery's id: the configured header or body field, else a new one (every request is a
/// new event).
fn delivery_id(config: &StreamConfig, headers: &HeaderMap, payload: &serde_json::Value) -> Result<String, String> {
    let id = given_id(config, headers, payload)?;
    if id.len() > MAX_ID {
        return Err(format!("the delivery id is {} bytes long: at most {MAX_ID}", id.len()));
    }
    Ok(id)
}

/// The longest delivery id kept (providers' are UUIDs or `evt_...`: well under).
const MAX_ID: usize = 256;

fn given_id(config: &StreamConfig, headers: &HeaderMap, payload: &serde_json::Value) -> Result<String, String> {
    if let Some(header) = config.id_header() {
        let id = headers.get(header).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
        return id.map(str::to_string).ok_or_else(|| format!("no `{header}` header naming the delivery (the stream's id_header)"));
    }
    if let Some(field) = config.id_field() {
        return match payload.get(field) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
            _ => Err(format!("the body has no `{field}` naming the delivery (the stream's id_field)")),
        };
    }
    Ok(uuid::Uuid::new_v4().to_string())
}
