//! A Stripe emulator for the command-source examples: `GET /v1/customers`, as Stripe's list API
//! answers it, so a script paging it meets what it would meet for real.
//!
//! - Pagination (docs.stripe.com/api/pagination): `limit` 1..=100 (default 10), `starting_after`
//!   (an object id: the page starts after it), `ending_before`; the answer is `{"object":
//!   "list", "url": "/v1/customers", "has_more", "data"}`, newest first (customers are listed
//!   "sorted by creation date, with the most recent customers appearing first").
//! - Errors (docs.stripe.com/api/errors): `{"error": {"type", "code"?, "message", "param"?}}`. A
//!   missing or unknown key: 401 `invalid_request_error` "Invalid API Key provided: sk_test_****";
//!   a limit out of range: 400 with `param: "limit"`; an unknown `starting_after`: 400
//!   `resource_missing` "No such customer: 'cus_x'".
//! - Rate limits (docs.stripe.com/rate-limits): 429 with `code: "rate_limit"`; clients are to
//!   back off and retry. `rate_limit_next` makes the next requests answer so.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

pub const KEY: &str = "sk_test_51Hsluice000000000000000000";

#[derive(Default)]
pub struct Inner {
    /// Customers, oldest first (listed newest first).
    pub customers: Vec<Value>,
    /// The next N requests answer 429.
    pub rate_limit_next: usize,
    pub requests: usize,
    pub rate_limited: usize,
}

#[derive(Clone)]
pub struct Stripe {
    pub base_url: String,
    inner: Arc<Mutex<Inner>>,
}

/// `n` customers created a day apart, ending `now`: every fifth delinquent, every third with
/// a balance due, the newest ten under 30 days old.
pub fn customers(n: usize, now: i64) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "id": format!("cus_{:014}", i),
                "object": "customer",
                "email": format!("customer{i}@example.com"),
                "created": now - (n - i) as i64 * 86_400,
                "delinquent": i % 5 == 0,
                "balance": if i % 3 == 0 { 1200 } else { 0 },
                "currency": "usd",
                "metadata": {},
            })
        })
        .collect()
}

impl Stripe {
    pub async fn start(customers: Vec<Value>) -> Stripe {
        let inner = Arc::new(Mutex::new(Inner { customers, ..Default::default() }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the Stripe emulator");
        let base_url = format!("http://{}", listener.local_addr().expect("address"));
        let app = Router::new().route("/v1/customers", get(list)).with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Stripe { base_url, inner }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().expect("emulator state"))
    }
}

fn error(status: StatusCode, error: Value) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

async fn list(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, uri: Uri) -> Response {
    let q: Vec<(String, String)> = reqwest::Url::parse(&format!("http://stripe{uri}"))
        .map(|u| u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
        .unwrap_or_default();
    let mut s = inner.lock().expect("emulator state");
    s.requests += 1;
    let key = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if key != Some(KEY) {
        let shown = key.map(|k| format!("{}****{}", &k[..k.len().min(8)], &k[k.len().saturating_sub(4)..])).unwrap_or_default();
        return error(
            StatusCode::UNAUTHORIZED,
            json!({ "type": "invalid_request_error", "message": format!("Invalid API Key provided: {shown}") }),
        );
    }
    if s.rate_limit_next > 0 {
        s.rate_limit_next -= 1;
        s.rate_limited += 1;
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            json!({ "type": "invalid_request_error", "code": "rate_limit", "message": "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits." }),
        );
    }
    let param = |name: &str| q.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let limit = match param("limit").map(|l| l.parse::<i64>()) {
        None => 10,
        Some(Ok(l)) if (1..=100).contains(&l) => l as usize,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                json!({ "type": "invalid_request_error", "param": "limit", "message": "This value must be greater than or equal to 1 and less than or equal to 100." }),
            )
        }
    };
    // Newest first.
    let listed: Vec<&Value> = s.customers.iter().rev().collect();
    let start = match param("starting_after") {
        None => 0,
        Some(id) => match listed.iter().position(|c| c["id"] == id.as_str()) {
            Some(p) => p + 1,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    json!({ "type": "invalid_request_error", "code": "resource_missing", "param": "starting_after", "message": format!("No such customer: '{id}'") }),
                )
            }
        },
    };
    let page: Vec<Value> = listed.iter().skip(start).take(limit).map(|c| (*c).clone()).collect();
    let has_more = start + page.len() < listed.len();
    Json(json!({ "object": "list", "url": "/v1/customers", "has_more": has_more, "data": page })).into_response()
}
