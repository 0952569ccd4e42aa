//! A Google emulator for the Sheets destination: the OAuth token endpoint for service accounts
//! and the Sheets v4 API over in-memory spreadsheets, with Google's paths, bodies, status codes,
//! error texts and per-minute quotas, plus switches to inject faults (429, 5xx, slow answers,
//! dropped connections) and a log of requests. Test keys are generated at test time.
//!
//! What Google does that a client must survive, each modelled here (sources in
//! ../shared/reference/saas-apis.md §2 and §6, and the discovery document):
//! - every request is checked against the API's discovery document (`discovery.rs`): unknown
//!   parameters and fields, values outside an enum and wrong types are 400s;
//! - `values.append` appends starting at the first column of the table it finds in the range,
//!   not at the range's first column (`grid.rs`);
//! - tab titles clash whatever their case;
//! - a date typed into a cell is stored as its serial number (tests type one with `edit`).

pub mod discovery;
pub mod grid;
pub mod sheets;
pub mod token;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::{RsaPrivateKey, RsaPublicKey};

use super::jwt::test_key;
use serde_json::{json, Value as J};

pub use super::faults::Fault;
pub use grid::{Spreadsheet, Tab};
pub use sheets::Logged;

pub const SPREADSHEET_ID: &str = "1xj6APSKhepp8-sJIucbD9DDx7eyBt4UI2KlAYaQ9EKs";
pub const ACCOUNT: &str = "sluice-sync@sluice-test.iam.gserviceaccount.com";

/// Per-user request quotas over a sliding window (Google: 60 per minute per user).
pub struct Quotas {
    pub writes: usize,
    pub reads: usize,
    pub window: Duration,
    seen: HashMap<(String, bool), VecDeque<Instant>>,
}

impl Quotas {
    pub fn allow(&mut self, user: &str, write: bool) -> bool {
        let limit = if write { self.writes } else { self.reads };
        let now = Instant::now();
        let times = self.seen.entry((user.to_string(), write)).or_default();
        while times.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            times.pop_front();
        }
        if times.len() >= limit {
            return false;
        }
        times.push_back(now);
        true
    }
}

pub struct State {
    pub spreadsheets: HashMap<String, Spreadsheet>,
    /// Spreadsheet id -> the accounts it is shared with.
    pub shared: HashMap<String, HashSet<String>>,
    accounts: Vec<(String, RsaPublicKey)>,
    /// Access token -> (account, expiry in unix seconds).
    tokens: HashMap<String, (String, i64)>,
    pub expires_in: i64,
    pub token_requests: usize,
    pub token_refusals: usize,
    pub quota: Quotas,
    pub quota_refusals: usize,
    pub log: Vec<Logged>,
    faults: VecDeque<Fault>,
    /// Faults for the next write requests only (`None`: let that one through).
    write_faults: VecDeque<Option<Fault>>,
    /// Every n-th Sheets request gets this fault.
    fault_every: Option<(usize, Fault)>,
    pub random_faults: Option<super::faults::RandomFaults>,
    /// How long each answer takes (none: at once).
    pub latency: Option<super::faults::Latency>,
    requests: usize,
    /// A person's edit, made just before the Sheets request with this number (see `edit_before`).
    edits: Vec<(usize, Edit)>,
}

/// An edit a person makes in the spreadsheet's UI.
pub type Edit = Box<dyn FnOnce(&mut Spreadsheet) + Send>;

#[derive(Clone)]
pub struct Google {
    state: Arc<Mutex<State>>,
    pub base_url: String,
    pub token_url: String,
}

impl Google {
    /// Starts the emulator with one service account and one spreadsheet (tab `Sheet1`) shared
    /// with it.
    pub async fn start() -> Google {
        let public = RsaPublicKey::from(test_key());
        let mut state = State {
            spreadsheets: HashMap::new(),
            shared: HashMap::new(),
            accounts: vec![(ACCOUNT.to_string(), public)],
            tokens: HashMap::new(),
            expires_in: 3599,
            token_requests: 0,
            token_refusals: 0,
            quota: Quotas { writes: 60, reads: 60, window: Duration::from_secs(60), seen: HashMap::new() },
            quota_refusals: 0,
            log: Vec::new(),
            faults: VecDeque::new(),
            write_faults: VecDeque::new(),
            fault_every: None,
            random_faults: None,
            latency: None,
            requests: 0,
            edits: Vec::new(),
        };
        state.spreadsheets.insert(SPREADSHEET_ID.into(), Spreadsheet::new(SPREADSHEET_ID));
        state.shared.insert(SPREADSHEET_ID.into(), HashSet::from([ACCOUNT.to_string()]));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind emulator");
        let addr = listener.local_addr().expect("emulator address");
        let google =
            Google { state: Arc::new(Mutex::new(state)), base_url: format!("http://{addr}/"), token_url: format!("http://{addr}/token") };
        let app = Router::new().fallback(serve).with_state(google.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        google
    }

    /// The service account's JSON key, its `token_uri` pointing here.
    pub fn credentials_json(&self) -> String {
        let pem = test_key().to_pkcs8_pem(LineEnding::LF).expect("PKCS#8 PEM");
        json!({
            "type": "service_account", "project_id": "sluice-test", "private_key_id": "0123456789abcdef",
            "private_key": pem.as_str(), "client_email": ACCOUNT, "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": self.token_url,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        })
        .to_string()
    }

    /// A `[destinations.NAME]` table for this emulator (the key in `sa.json` under `dir`).
    pub fn destination_toml(&self, dir: &std::path::Path, extra: &str) -> String {
        std::fs::write(dir.join("sa.json"), self.credentials_json()).expect("write key file");
        format!(
            "kind = \"google_sheets\"\nspreadsheet_id = \"{SPREADSHEET_ID}\"\ncredentials_file = \"sa.json\"\nbase_url = \"{}\"\n\
             retry_initial_delay = \"20ms\"\n{extra}\n",
            self.base_url
        )
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("emulator state"))
    }

    /// Edits the spreadsheet directly, as a person in the browser would.
    pub fn edit<T>(&self, f: impl FnOnce(&mut Spreadsheet) -> T) -> T {
        self.with(|s| f(s.spreadsheets.get_mut(SPREADSHEET_ID).expect("spreadsheet")))
    }

    /// A tab's cells as text, trailing empties trimmed; `None` if the tab does not exist.
    pub fn rows(&self, tab: &str) -> Option<Vec<Vec<String>>> {
        self.edit(|s| s.tab(tab).map(Tab::rows_text))
    }

    pub fn log(&self) -> Vec<Logged> {
        self.with(|s| s.log.clone())
    }

    pub fn clear_log(&self) {
        self.with(|s| s.log.clear());
    }

    /// Write requests (anything but GET) the emulator answered with 2xx.
    pub fn writes(&self) -> Vec<Logged> {
        self.log().into_iter().filter(|l| l.is_write() && (200..300).contains(&l.status)).collect()
    }

    pub fn fail_next(&self, faults: &[Fault]) {
        self.with(|s| s.faults.extend(faults.iter().copied()));
    }

    pub fn fault_every(&self, n: usize, fault: Fault) {
        self.with(|s| s.fault_every = Some((n.max(1), fault)));
    }

    pub fn fail_next_write(&self, fault: Fault) {
        self.fail_write(1, fault);
    }

    /// The `nth` write request from now (1: the next) gets `fault`; the ones before go through.
    pub fn fail_write(&self, nth: usize, fault: Fault) {
        self.with(|s| {
            s.write_faults.extend(std::iter::repeat_n(None, nth.saturating_sub(1)));
            s.write_faults.push_back(Some(fault));
        });
    }

    /// A person edits the spreadsheet just before the `nth` Sheets request from now (1: the
    /// next) is answered: sorts a tab, inserts a row, while a run is between reads and writes.
    pub fn edit_before(&self, nth: usize, edit: impl FnOnce(&mut Spreadsheet) + Send + 'static) {
        self.with(|s| {
            let at = s.requests + nth;
            s.edits.push((at, Box::new(edit)));
        });
    }

    pub fn clear_faults(&self) {
        self.with(|s| {
            s.faults.clear();
            s.write_faults.clear();
            s.fault_every = None;
        });
    }

    pub fn unshare(&self) {
        self.with(|s| s.shared.values_mut().for_each(HashSet::clear));
    }

    /// Invalidates every issued token, as when one expires or is revoked server-side.
    pub fn revoke_tokens(&self) {
        self.with(|s| s.tokens.clear());
    }

    /// Registers another account with its own fresh key (one the client does not hold).
    pub fn replace_account_key(&self) {
        let other = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).expect("generate key");
        self.with(|s| s.accounts = vec![(ACCOUNT.to_string(), RsaPublicKey::from(&other))]);
    }
}

fn reply(status: u16, body: J) -> Response {
    let status = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    (status, [("content-type", "application/json; charset=UTF-8")], body.to_string()).into_response()
}

async fn serve(AxumState(google): AxumState<Google>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if uri.path() == "/token" && method == Method::POST {
        let form = String::from_utf8_lossy(&body).into_owned();
        return google.with(|s| {
            s.token_requests += 1;
            match token::verify(&form, &google.token_url, &s.accounts) {
                Ok(email) => {
                    let access = format!("ya29.emulated-{}", uuid::Uuid::new_v4().simple());
                    s.tokens.insert(access.clone(), (email, token::now() + s.expires_in));
                    reply(200, json!({ "access_token": access, "expires_in": s.expires_in, "token_type": "Bearer" }))
                }
                Err((status, body)) => {
                    s.token_refusals += 1;
                    reply(status, body)
                }
            }
        });
    }
    let raw_segments: Vec<String> = uri.path().trim_start_matches('/').split('/').map(sheets::decode_segment).collect();
    let query = sheets::parse_query(uri.query().unwrap_or(""));
    let json_body: J = if body.is_empty() { J::Null } else { serde_json::from_slice(&body).unwrap_or(J::Null) };
    let entry = Logged {
        method: method.to_string(),
        path: format!("/{}", raw_segments.join("/")),
        query: query.clone(),
        body: json_body.clone(),
        status: 0,
    };
    // Decide on a fault with the lock held, act on it without (a dropped connection unwinds).
    let (fault, logged) = google.with(|s| {
        s.requests += 1;
        s.log.push(entry);
        let every = s.fault_every.filter(|(n, _)| s.requests % n == 0).map(|(_, f)| f);
        let write_fault = if method != Method::GET { s.write_faults.pop_front().flatten() } else { None };
        let random = s.random_faults.as_mut().and_then(|r| r.pick());
        (s.faults.pop_front().or(write_fault).or(every).or(random), s.log.len() - 1)
    });
    if let Some(Fault::Drop) = fault {
        super::faults::drop_connection();
    }
    let (status, body, latency) = google.with(|s| {
        if let Some(Fault::Revoke) = fault {
            s.tokens.clear();
        }
        let requests = s.requests;
        let due: Vec<Edit> = {
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut s.edits).into_iter().partition(|(at, _)| *at == requests);
            s.edits = later;
            due.into_iter().map(|(_, edit)| edit).collect()
        };
        if let Some(sheet) = raw_segments.get(2).and_then(|id| s.spreadsheets.get_mut(id.split(':').next().unwrap_or(""))) {
            due.into_iter().for_each(|edit| edit(sheet));
        }
        let answer = if let Some(Fault::Status(code)) = fault {
            sheets::status_error(code)
        } else if raw_segments.len() < 3 || raw_segments[0] != "v4" || raw_segments[1] != "spreadsheets" {
            sheets::error(404, "Method not found.", "NOT_FOUND")
        } else {
            let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
            match bearer.and_then(|t| s.tokens.get(t)).filter(|(_, exp)| *exp > token::now()).map(|(email, _)| email.clone()) {
                None => sheets::unauthenticated(),
                Some(email) => match discovery::check(method.as_str(), &raw_segments.join("/"), &query, &json_body) {
                    Err(e) => (e.code, e.body()),
                    Ok(()) => sheets::handle(s, &email, method.as_str(), &raw_segments[2..], &query, &json_body),
                },
            }
        };
        if let Some(entry) = s.log.get_mut(logged) {
            entry.status = answer.0;
        }
        (answer.0, answer.1, s.latency.as_mut().map(|l| l.next()))
    });
    super::faults::answer_after(latency).await;
    match fault {
        Some(Fault::DropAfter) => super::faults::drop_connection(),
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        _ => {}
    }
    reply(status, body)
}
