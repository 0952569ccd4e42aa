//! A small REST API of records, for the command destination's examples
//! (examples/command/records_api.{py,sh}): `PUT /records/{key}` with `{"fields": {...}}` answers
//! `{"id": "rec-KEY"}`, `DELETE /records/{key}` answers 204 or 404. Bearer token required.
//! Keys can be set to be refused (422 with an error body) and the next requests to fail (503).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use serde_json::{json, Value};

pub const TOKEN: &str = "records-token";

#[derive(Default)]
pub struct Inner {
    pub records: BTreeMap<String, Value>,
    pub refuse: HashSet<String>,
    pub fail_next: VecDeque<u16>,
    pub requests: usize,
}

#[derive(Clone)]
pub struct RecordsApi {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl RecordsApi {
    pub async fn start() -> RecordsApi {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the records API");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let app = Router::new().route("/records/{key}", put(upsert).delete(remove)).with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RecordsApi { url, inner }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }

    /// Record key -> its fields.
    pub fn records(&self) -> BTreeMap<String, Value> {
        self.with(|s| s.records.clone())
    }
}

/// The common start of a request: counted, authorised, maybe failed on purpose.
fn admit(state: &Mutex<Inner>, headers: &HeaderMap) -> Option<Response> {
    let mut s = state.lock().unwrap();
    s.requests += 1;
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        return Some((StatusCode::UNAUTHORIZED, Json(json!({"error": "unauthorized"}))).into_response());
    }
    s.fail_next.pop_front().map(|code| {
        (StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE), Json(json!({"error": "try again later"}))).into_response()
    })
}

async fn upsert(State(state): State<Arc<Mutex<Inner>>>, Path(key): Path<String>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if let Some(refusal) = admit(&state, &headers) {
        return refusal;
    }
    let mut s = state.lock().unwrap();
    if s.refuse.contains(&key) {
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"error": "email is not valid"}))).into_response();
    }
    s.records.insert(key.clone(), body["fields"].clone());
    Json(json!({ "id": format!("rec-{key}") })).into_response()
}

async fn remove(State(state): State<Arc<Mutex<Inner>>>, Path(key): Path<String>, headers: HeaderMap) -> Response {
    if let Some(refusal) = admit(&state, &headers) {
        return refusal;
    }
    match state.lock().unwrap().records.remove(&key) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"error": "no such record"}))).into_response(),
    }
}
