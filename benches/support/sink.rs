//! The benchmark's HTTP sink: accepts every POST and counts requests and rows. `/rows` parses
//! the body (a sluice webhook body `{"rows": [...]}` or drt's JSON array) to count rows; `/null`
//! answers without reading the body, to isolate sluice's own cost.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;

#[derive(Default)]
pub struct Counts {
    pub requests: AtomicU64,
    pub rows: AtomicU64,
    pub bad_bodies: AtomicU64,
}

impl Counts {
    /// (requests, rows) so far, then back to zero.
    pub fn take(&self) -> (u64, u64) {
        (self.requests.swap(0, Ordering::SeqCst), self.rows.swap(0, Ordering::SeqCst))
    }
}

pub struct Sink {
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
}

/// Starts the sink on its own thread and runtime, so it never shares a core's scheduler with
/// the benchmark's own bookkeeping.
pub fn start() -> Sink {
    let counts = Arc::new(Counts::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let state = counts.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("sink runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the sink");
            tx.send(listener.local_addr().expect("sink address")).expect("report the sink address");
            let app = Router::new().route("/rows", post(rows)).route("/null", post(null)).with_state(state);
            axum::serve(listener, app).await.expect("serve the sink");
        });
    });
    Sink { addr: rx.recv().expect("the sink started"), counts }
}

async fn rows(State(counts): State<Arc<Counts>>, body: Bytes) -> StatusCode {
    counts.requests.fetch_add(1, Ordering::Relaxed);
    let n = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Array(items)) => items.len(),
        Ok(serde_json::Value::Object(map)) => map.get("rows").and_then(|r| r.as_array()).map(Vec::len).unwrap_or(1),
        _ => {
            counts.bad_bodies.fetch_add(1, Ordering::Relaxed);
            0
        }
    };
    counts.rows.fetch_add(n as u64, Ordering::Relaxed);
    StatusCode::OK
}

async fn null(State(counts): State<Arc<Counts>>) -> StatusCode {
    counts.requests.fetch_add(1, Ordering::Relaxed);
    StatusCode::OK
}
