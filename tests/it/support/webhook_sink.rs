//! A webhook receiver for tests: records every batch, and can be told to reject rows, fail with
//! 5xx/429, or hold requests (to kill a run mid-batch). Speaks sluice's documented wire format.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq)]
pub struct SinkRow {
    pub op: String,
    pub key: Value,
    pub fields: Value,
    pub destination_id: Option<String>,
}

#[derive(Default)]
struct Inner {
    /// Every request that reached the handler, in arrival order; `None` once it failed (it
    /// wrote nothing). By index: requests are answered side by side, in any order.
    batches: Vec<Option<Vec<SinkRow>>>,
    headers: Vec<HeaderMap>,
    /// The request bodies, byte for byte (signatures are over these).
    bodies: Vec<axum::body::Bytes>,
    /// Keys (as JSON text) answered `ok: false` (a data error).
    reject: HashSet<String>,
    /// Keys (as JSON text) that make the whole batch holding them fail with a 400.
    poison: HashSet<String>,
    /// The next N requests get this status (e.g. 503, 429) before any succeed.
    fail_next: Vec<(u16, Option<&'static str>)>,
    /// Requests from this (0-based) index on never get an answer.
    hold_from: Option<usize>,
    /// This one request (0-based index) gets no answer; the others do.
    hold_one: Option<usize>,
    /// Answer with a per-row results body even when all rows are ok.
    always_results: bool,
    /// Latency added to every answer (a slow destination)...
    delay: std::time::Duration,
    /// ...or drawn for each from a range.
    latency: Option<super::faults::Latency>,
    /// Random faults: the share of requests that get one, and the generator.
    fault_rate: Option<super::faults::RandomFaults>,
    /// Requests being handled now, and the most there ever were at once.
    in_flight: usize,
    most_in_flight: usize,
    /// When each request arrived, refused ones included.
    arrivals: Vec<std::time::Instant>,
    /// A receiver that serves at most this many requests at once and answers 429 (Retry-After:
    /// 0) to more (a server with a worker pool), and how many it refused so.
    capacity: Option<usize>,
    over_capacity: usize,
    /// A receiver with a rate limit: at most this many requests in any window, 429 to more.
    rate_limit: Option<(usize, std::time::Duration)>,
    over_rate: usize,
}

/// Counts a request as being handled until it is answered (or its connection dropped).
struct Handling(Sink);

impl Handling {
    fn start(sink: &Sink) -> (Handling, bool) {
        let mut guard = sink.inner.lock().unwrap();
        let inner = &mut *guard;
        inner.in_flight += 1;
        inner.most_in_flight = inner.most_in_flight.max(inner.in_flight);
        inner.arrivals.push(std::time::Instant::now());
        let now = std::time::Instant::now();
        let arrivals = &inner.arrivals;
        let over_rate = inner.rate_limit.is_some_and(|(max, window)| {
            // This request included: refused ones count too, as services count them.
            arrivals.iter().rev().take_while(|t| now.duration_since(**t) < window).count() > max
        });
        let over_capacity = inner.capacity.is_some_and(|c| inner.in_flight > c);
        inner.over_capacity += usize::from(over_capacity);
        inner.over_rate += usize::from(over_rate);
        (Handling(sink.clone()), over_capacity || over_rate)
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.0.inner.lock() {
            inner.in_flight -= 1;
        }
    }
}

#[derive(Clone, Default)]
pub struct Sink {
    inner: Arc<Mutex<Inner>>,
    /// Wakes held requests when `release` is called.
    released: Arc<tokio::sync::Notify>,
    pub url: String,
}

impl Sink {
    pub async fn start() -> Sink {
        let mut sink = Sink::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let addr: SocketAddr = listener.local_addr().expect("sink addr");
        sink.url = format!("http://{addr}/hook");
        let app = Router::new().route("/hook", post(handle)).with_state(sink.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        sink
    }

    pub fn reject(&self, key: Value) {
        self.inner.lock().unwrap().reject.insert(key.to_string());
    }
    /// A batch holding this key is refused whole: 400, nothing written, no per-row answer.
    pub fn refuse_batches_with(&self, key: Value) {
        self.inner.lock().unwrap().poison.insert(key.to_string());
    }
    pub fn clear_rejects(&self) {
        self.inner.lock().unwrap().reject.clear();
    }
    pub fn fail_next(&self, status: u16, retry_after: Option<&'static str>) {
        self.inner.lock().unwrap().fail_next.push((status, retry_after));
    }
    pub fn hold_from(&self, request_index: usize) {
        self.inner.lock().unwrap().hold_from = Some(request_index);
    }
    /// Holds only the request with this index (until `release`): a run that waits on it keeps
    /// running, while anything else sent meanwhile is answered.
    pub fn hold_one(&self, request_index: usize) {
        self.inner.lock().unwrap().hold_one = Some(request_index);
    }
    /// Stops holding: held requests are answered now, new ones at once.
    pub fn release(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.hold_from = None;
        inner.hold_one = None;
        drop(inner);
        self.released.notify_waiters();
    }
    pub fn slow(&self, delay: std::time::Duration) {
        self.inner.lock().unwrap().delay = delay;
    }
    /// Each answer takes `base` +- `jitter` (seeded), as a real receiver's do.
    pub fn latency(&self, base: std::time::Duration, jitter: std::time::Duration, seed: u64) {
        self.inner.lock().unwrap().latency = Some(super::faults::Latency::new(base, jitter, seed));
    }
    /// From now on `rate` of the requests meet a fault, picked at random (seeded): 429 with or
    /// without Retry-After, 500, 503, an answer slower than `slow`, a reset connection, or a 200
    /// whose body is cut off.
    pub fn fault_rate(&self, rate: f64, seed: u64) {
        self.inner.lock().unwrap().fault_rate = Some(super::faults::RandomFaults::new(rate, seed));
    }
    pub fn faults_injected(&self) -> usize {
        self.inner.lock().unwrap().fault_rate.as_ref().map_or(0, |f| f.injected)
    }
    pub fn always_results(&self) {
        self.inner.lock().unwrap().always_results = true;
    }
    pub fn batches(&self) -> Vec<Vec<SinkRow>> {
        self.inner.lock().unwrap().batches.iter().flatten().cloned().collect()
    }
    /// Serves at most `n` requests at once; more are answered 429 at once.
    pub fn capacity(&self, n: usize) {
        self.inner.lock().unwrap().capacity = Some(n);
    }
    /// Answers 429 to requests past `max` in any `window`.
    pub fn rate_limit(&self, max: usize, window: std::time::Duration) {
        self.inner.lock().unwrap().rate_limit = Some((max, window));
    }
    /// Requests answered 429, for going over the capacity or the rate limit.
    pub fn refused(&self) -> usize {
        let inner = self.inner.lock().unwrap();
        inner.over_capacity + inner.over_rate
    }
    /// Requests answered 429 for going over the capacity.
    pub fn over_capacity(&self) -> usize {
        self.inner.lock().unwrap().over_capacity
    }
    /// The most requests that were being handled at once.
    pub fn most_in_flight(&self) -> usize {
        self.inner.lock().unwrap().most_in_flight
    }
    /// When each request arrived, refused ones included.
    pub fn arrivals(&self) -> Vec<std::time::Instant> {
        self.inner.lock().unwrap().arrivals.clone()
    }
    pub fn headers(&self) -> Vec<HeaderMap> {
        self.inner.lock().unwrap().headers.clone()
    }
    pub fn bodies(&self) -> Vec<axum::body::Bytes> {
        self.inner.lock().unwrap().bodies.clone()
    }
    /// Requests that wrote their rows.
    pub fn requests(&self) -> usize {
        self.inner.lock().unwrap().batches.iter().flatten().count()
    }
    /// All rows received so far, flattened.
    pub fn rows(&self) -> Vec<SinkRow> {
        self.batches().into_iter().flatten().collect()
    }
    /// Forgets what was received (the rules stay).
    pub fn take(&self) -> Vec<SinkRow> {
        std::mem::take(&mut self.inner.lock().unwrap().batches).into_iter().flatten().flatten().collect()
    }
}

async fn handle(State(sink): State<Sink>, headers: HeaderMap, raw: axum::body::Bytes) -> Response {
    let (_handling, refused) = Handling::start(&sink);
    if refused {
        // "Retry-After: 0": come back at once, which a client that does not back off by itself
        // takes literally.
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0")], "too many requests at once").into_response();
    }
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let rows: Vec<SinkRow> = body["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| SinkRow {
            op: r["op"].as_str().unwrap_or("").to_string(),
            key: r["key"].clone(),
            fields: r["fields"].clone(),
            destination_id: r["destination_id"].as_str().map(str::to_string),
        })
        .collect();
    let random_fault = {
        let mut inner = sink.inner.lock().unwrap();
        // The shared generator: besides the seed, it bounds the clean streak, so a short run
        // meets faults however the dice fall.
        inner.fault_rate.as_mut().and_then(|f| f.strikes().then(|| f.kind(7)))
    };
    match random_fault {
        Some(0) => return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0")], "slow down").into_response(),
        Some(1) => return (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response(),
        Some(2) => return (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
        Some(3) => return (StatusCode::SERVICE_UNAVAILABLE, "unavailable").into_response(),
        Some(4) => tokio::time::sleep(std::time::Duration::from_secs(3)).await, // past the client's timeout
        Some(5) => super::faults::drop_connection(),
        Some(_) => {
            // A 200 whose body is cut: the length promised is longer than what is sent. The
            // rows were accepted, so they are recorded; the client cannot know and sends them again.
            sink.inner.lock().unwrap().batches.push(Some(rows.clone()));
            let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> =
                vec![Ok("{\"results\":".into()), Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut"))];
            return (StatusCode::OK, axum::body::Body::from_stream(futures_util::stream::iter(chunks))).into_response();
        }
        None => {}
    }
    let (index, fail, hold, reject, always, delay) = {
        let mut inner = sink.inner.lock().unwrap();
        inner.batches.push(Some(rows.clone()));
        inner.headers.push(headers);
        inner.bodies.push(raw);
        let index = inner.batches.len() - 1;
        let fail = if inner.fail_next.is_empty() { None } else { Some(inner.fail_next.remove(0)) };
        (
            index,
            fail,
            inner.hold_from.is_some_and(|h| index >= h) || inner.hold_one == Some(index),
            inner.reject.clone(),
            inner.always_results,
            {
                let delay = inner.delay;
                inner.latency.as_mut().map_or(delay, |l| l.next())
            },
        )
    };
    if hold {
        loop {
            let released = sink.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let held = {
                let inner = sink.inner.lock().unwrap();
                inner.hold_from.is_some_and(|h| index >= h) || inner.hold_one == Some(index)
            };
            if !held {
                break;
            }
            released.await;
        }
    }
    tokio::time::sleep(delay).await;
    if let Some((status, retry_after)) = fail {
        // A failed request wrote nothing: forget its rows so tests see only what landed.
        if let Some(landed) = sink.inner.lock().unwrap().batches.get_mut(index) {
            *landed = None;
        }
        let mut resp = (StatusCode::from_u16(status).unwrap(), "temporarily unavailable").into_response();
        if let Some(ra) = retry_after {
            resp.headers_mut().insert("retry-after", ra.parse().unwrap());
        }
        return resp;
    }
    let poisoned = {
        let mut inner = sink.inner.lock().unwrap();
        let bad = rows.iter().any(|r| inner.poison.contains(&r.key.to_string()));
        if let Some(landed) = inner.batches.get_mut(index).filter(|_| bad) {
            *landed = None;
        }
        bad
    };
    if poisoned {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_row", "message": "a row in this batch has an invalid email"})))
            .into_response();
    }
    if reject.is_empty() && !always {
        return StatusCode::NO_CONTENT.into_response();
    }
    let results: Vec<Value> = rows
        .iter()
        .map(|r| {
            if reject.contains(&r.key.to_string()) {
                json!({ "key": r.key, "ok": false, "error": "email is not valid" })
            } else {
                json!({ "key": r.key, "ok": true, "destination_id": format!("rec-{}", r.key) })
            }
        })
        .collect();
    // Rejected rows were not written: keep only accepted ones in the record.
    {
        let mut inner = sink.inner.lock().unwrap();
        if let Some(Some(landed)) = inner.batches.get_mut(index) {
            landed.retain(|r| !reject.contains(&r.key.to_string()));
        }
    }
    (StatusCode::OK, Json(json!({ "results": results }))).into_response()
}
