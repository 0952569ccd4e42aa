//! A Salesforce emulator: the OAuth 2.0 JWT bearer token endpoint (RS256 signature, issuer,
//! subject, audience and expiry checked), sessions (401 INVALID_SESSION_ID), the API usage limit
//! (`Sforce-Limit-Info`, 403 REQUEST_LIMIT_EXCEEDED), describe, SOQL `IN` queries, sObject
//! Collections (upsert by external id, create, update, delete; 200 records; per-record results
//! with Salesforce's error codes) and the Bulk API 2.0 ingest job state machine. Faults can be
//! injected; every request is logged.
//!
//! What Salesforce does that a client must survive, each modelled here (sources in
//! ../shared/reference/saas-apis.md §4 and §6):
//! - the JWT `aud` is `https://login.salesforce.com` (`https://test.salesforce.com` for a
//!   sandbox) even when the token is asked of a My Domain URL, as this emulator's address is;
//! - SOQL literals follow the field's type: a quoted number is a 400 INVALID_FIELD; doubles come
//!   back as doubles (`123.0`);
//! - text compares case-insensitively (upserts by external id, `=` and `IN`) unless describe
//!   says `caseSensitive`;
//! - a URI over 16,384 bytes is a 414 with an HTML page, not JSON;
//! - a collection's body is parsed before any record is looked at: an unknown field, a value of
//!   the wrong JSON type or a datetime finer than milliseconds fails the whole request (400);
//! - a restricted multi-select picklist takes `a;b` of its values.

pub mod bulk;
pub mod records;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::RsaPublicKey;
use serde_json::{json, Value as J};

pub use super::faults::Fault;
use super::jwt;
pub use records::Record;
use records::{failure, validate, Field};

pub const CLIENT_ID: &str = "3MVG9emulated.Consumer.Key";
pub const USERNAME: &str = "integration@acme.example";
pub const API: &str = "/services/data/v62.0/";

#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    /// The path after `/services/data/v62.0/`, or the full path for others.
    pub path: String,
    pub query: String,
    pub body: String,
    pub status: u16,
}

pub struct State {
    pub schemas: HashMap<String, Vec<Field>>,
    pub records: HashMap<String, Vec<Record>>,
    /// Where each record is in `records`, by its `Id`: finding by id stays quick in a large org
    /// (the emulator's own time must not pass for the service's latency in a benchmark).
    by_id: HashMap<String, usize>,
    /// Where records are by a field's value, for the fields searched by value (external ids),
    /// built on the first search: `(object, field)` -> normalised value -> positions. Entries
    /// left by an update are checked on use; a record changed through `find` keeps its old
    /// entries, so tests change searched fields through the API, not by hand.
    index: HashMap<(String, String), HashMap<String, Vec<usize>>>,
    next_id: u64,
    apps: Vec<(String, RsaPublicKey)>,
    pub users: Vec<String>,
    sessions: HashSet<String>,
    pub logins: usize,
    pub login_refusals: usize,
    pub api_used: u64,
    pub api_limit: u64,
    pub jobs: HashMap<String, bulk::Job>,
    pub log: Vec<Logged>,
    faults: VecDeque<Fault>,
    pub random_faults: Option<super::faults::RandomFaults>,
    /// How long each answer takes (none: at once).
    pub latency: Option<super::faults::Latency>,
    base: String,
    /// A sandbox org: its login JWTs carry `aud = https://test.salesforce.com`.
    pub sandbox: bool,
}

#[derive(Clone)]
pub struct Salesforce {
    state: Arc<Mutex<State>>,
    /// Both the login URL and the instance URL (no trailing slash).
    pub base_url: String,
    /// Requests being served at once.
    pub in_flight: super::faults::InFlight,
}

impl Salesforce {
    pub async fn start() -> Salesforce {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind emulator");
        let base = format!("http://{}", listener.local_addr().expect("emulator address"));
        let state = State {
            schemas: HashMap::from([("Contact".to_string(), records::contact())]),
            records: HashMap::new(),
            by_id: HashMap::new(),
            index: HashMap::new(),
            next_id: 1,
            apps: vec![(CLIENT_ID.to_string(), RsaPublicKey::from(jwt::test_key()))],
            users: vec![USERNAME.to_string()],
            sessions: HashSet::new(),
            logins: 0,
            login_refusals: 0,
            api_used: 0,
            api_limit: 15_000,
            jobs: HashMap::new(),
            log: Vec::new(),
            faults: VecDeque::new(),
            random_faults: None,
            latency: None,
            base: base.clone(),
            sandbox: false,
        };
        let sf = Salesforce { state: Arc::new(Mutex::new(state)), base_url: base, in_flight: Default::default() };
        let app = Router::new().fallback(serve).with_state(sf.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        sf
    }

    /// A `[destinations.NAME]` table for this emulator; the key goes to `sf.pem` under `dir`.
    pub fn destination_toml(&self, dir: &std::path::Path, extra: &str) -> String {
        let pem = jwt::test_key().to_pkcs8_pem(LineEnding::LF).expect("PEM");
        std::fs::write(dir.join("sf.pem"), pem.as_bytes()).expect("write key");
        format!(
            "kind = \"salesforce\"\nlogin_url = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nusername = \"{USERNAME}\"\nprivate_key_file = \"sf.pem\"\n\
             retry_initial_delay = \"20ms\"\nbulk_poll_interval = \"10ms\"\n{extra}\n",
            self.base_url
        )
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("emulator state"))
    }

    /// Live Contact records.
    pub fn contacts(&self) -> Vec<Record> {
        self.with(|s| s.records.get("Contact").map(|r| r.iter().filter(|r| !r.deleted).cloned().collect()).unwrap_or_default())
    }

    pub fn contact(&self, ext: &str) -> Option<Record> {
        self.contacts().into_iter().find(|r| r.fields.get("Customer_Id__c") == Some(&J::String(ext.into())))
    }

    pub fn log(&self) -> Vec<Logged> {
        self.with(|s| s.log.clone())
    }

    pub fn clear_log(&self) {
        self.with(|s| s.log.clear());
    }

    /// Answered requests whose method and path start as given.
    pub fn calls(&self, method: &str, path_prefix: &str) -> Vec<Logged> {
        self.log().into_iter().filter(|l| l.method == method && l.path.starts_with(path_prefix) && l.status < 300).collect()
    }

    pub fn fail_next(&self, faults: &[Fault]) {
        self.with(|s| s.faults.extend(faults.iter().copied()));
    }

    /// Adds a record directly, as someone in the Salesforce UI would.
    pub fn insert(&self, fields: J) -> String {
        self.with(|s| s.create("Contact", fields.as_object().cloned().unwrap_or_default()))
    }
}

fn errors(status: u16, code: &str, message: &str) -> (u16, String) {
    (status, json!([{ "message": message, "errorCode": code }]).to_string())
}

impl State {
    fn field(&self, object: &str, name: &str) -> Option<records::Field> {
        self.schemas.get(object)?.iter().find(|f| f.name == name).cloned()
    }

    pub fn create(&mut self, object: &str, fields: serde_json::Map<String, J>) -> String {
        let id = format!("003{:012}AAA", self.next_id);
        self.next_id += 1;
        let mut fields: BTreeMap<String, J> = fields
            .into_iter()
            .filter(|(k, _)| k != "attributes")
            .map(|(k, v)| {
                let v = records::stored(self.field(object, &k).as_ref(), &v);
                (k, v)
            })
            .collect();
        fields.insert("Id".into(), J::String(id.clone()));
        let records = self.records.entry(object.into()).or_default();
        let at = records.len();
        self.by_id.insert(id.clone(), at);
        self.index_record(object, at, &fields);
        self.records.entry(object.into()).or_default().push(Record { id: id.clone(), fields, deleted: false });
        id
    }

    /// Adds the record at `at` to the indexes of `object`'s searched fields.
    fn index_record(&mut self, object: &str, at: usize, fields: &BTreeMap<String, J>) {
        let searched: Vec<String> = self.index.keys().filter(|(o, _)| o == object).map(|(_, f)| f.clone()).collect();
        for field in searched {
            let f = self.field(object, &field);
            if let Some(key) = fields.get(&field).and_then(|v| records::normalised(f.as_ref(), v)) {
                self.index.entry((object.into(), field)).or_default().entry(key).or_default().push(at);
            }
        }
    }

    pub fn find(&mut self, object: &str, field: &str, value: &J) -> Option<&mut Record> {
        if let (Some(id), "Id") = (value.as_str(), field) {
            let at = *self.by_id.get(id)?;
            return self.records.get_mut(object)?.get_mut(at).filter(|r| !r.deleted && r.id == id);
        }
        let f = self.field(object, field);
        let key = records::normalised(f.as_ref(), value)?;
        let slot = (object.to_string(), field.to_string());
        if !self.index.contains_key(&slot) {
            let mut built: HashMap<String, Vec<usize>> = HashMap::new();
            for (at, r) in self.records.get(object).into_iter().flatten().enumerate() {
                if let Some(k) = r.fields.get(field).and_then(|v| records::normalised(f.as_ref(), v)) {
                    built.entry(k).or_default().push(at);
                }
            }
            self.index.insert(slot.clone(), built);
        }
        let places = self.index.get(&slot)?.get(&key)?.clone();
        let records = self.records.get_mut(object)?;
        let at = places.into_iter().find(|&at| {
            records.get(at).is_some_and(|r| !r.deleted && r.fields.get(field).is_some_and(|v| records::same(f.as_ref(), v, value)))
        })?;
        records.get_mut(at)
    }

    fn update(&mut self, object: &str, id: &str, fields: &serde_json::Map<String, J>) -> bool {
        let Some(&at) = self.by_id.get(id) else { return false };
        let updated = match self.find(object, "Id", &J::String(id.into())) {
            Some(r) => {
                for (k, v) in fields.iter().filter(|(k, _)| *k != "attributes" && *k != "Id") {
                    let v = if v.is_number() { json!(v.as_f64()) } else { v.clone() };
                    r.fields.insert(k.clone(), v);
                }
                r.fields.clone()
            }
            None => return false,
        };
        // New values are indexed; the old entries are checked on use.
        self.index_record(object, at, &updated);
        true
    }

    /// Upsert one record by external id: `(id, created)` or the errors.
    pub fn upsert(&mut self, object: &str, ext: &str, record: &serde_json::Map<String, J>) -> Result<(String, bool), Vec<J>> {
        let schema = self.schemas.get(object).cloned().unwrap_or_default();
        let key = record.get(ext).cloned().unwrap_or(J::Null);
        if key.is_null() {
            return Err(vec![records::error("MISSING_ARGUMENT", &format!("{ext} not specified"), &[])]);
        }
        let existing = self.find(object, ext, &key).map(|r| r.id.clone());
        let problems = validate(&schema, object, record, existing.is_none());
        if !problems.is_empty() {
            return Err(problems);
        }
        match existing {
            Some(id) => {
                self.update(object, &id, record);
                Ok((id, false))
            }
            None => Ok((self.create(object, record.clone()), true)),
        }
    }

    fn collection(&mut self, method: &str, rest: &[&str], query: &str, body: &J) -> (u16, String) {
        let records: Vec<serde_json::Map<String, J>> =
            body["records"].as_array().into_iter().flatten().filter_map(|r| r.as_object().cloned()).collect();
        if records.len() > 200 {
            return errors(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call");
        }
        let object_of =
            |r: &serde_json::Map<String, J>| r.get("attributes").and_then(|a| a["type"].as_str()).unwrap_or_default().to_string();
        // The body is parsed before any record is looked at: one bad record fails them all.
        for r in &records {
            let object = match rest {
                [object, ..] => object.to_string(),
                [] => object_of(r),
            };
            let schema = self.schemas.get(&object).cloned().unwrap_or_default();
            if let Some((code, message)) = records::undeserializable(&schema, &object, r) {
                return errors(400, code, &message);
            }
        }
        let results: Vec<J> = match (method, rest) {
            ("PATCH", [object, ext]) => records
                .iter()
                .map(|r| match self.upsert(object, ext, r) {
                    Ok((id, created)) => json!({ "id": id, "success": true, "errors": [], "created": created }),
                    Err(e) => failure(e),
                })
                .collect(),
            ("POST", []) => records
                .iter()
                .map(|r| {
                    let object = object_of(r);
                    let schema = self.schemas.get(&object).cloned().unwrap_or_default();
                    let mut problems = validate(&schema, &object, r, true);
                    for f in schema.iter().filter(|f| f.external_id) {
                        if let Some(v) = r.get(f.name).filter(|v| !v.is_null()) {
                            if let Some(other) = self.find(&object, f.name, v) {
                                problems.push(records::error(
                                    "DUPLICATE_VALUE",
                                    &format!("duplicate value found: {} duplicates value on record with id: {}", f.name, other.id),
                                    &[f.name],
                                ));
                            }
                        }
                    }
                    if problems.is_empty() {
                        json!({ "id": self.create(&object, r.clone()), "success": true, "errors": [] })
                    } else {
                        failure(problems)
                    }
                })
                .collect(),
            ("PATCH", []) => records
                .iter()
                .map(|r| {
                    let object = object_of(r);
                    let id = r.get("Id").and_then(J::as_str).unwrap_or_default().to_string();
                    let schema = self.schemas.get(&object).cloned().unwrap_or_default();
                    let problems = validate(&schema, &object, r, false);
                    if !problems.is_empty() {
                        failure(problems)
                    } else if self.update(&object, &id, r) {
                        json!({ "id": id, "success": true, "errors": [] })
                    } else {
                        failure(vec![records::error("ENTITY_IS_DELETED", "entity is deleted", &[])])
                    }
                })
                .collect(),
            ("DELETE", []) => {
                let pairs = jwt::form(query);
                let ids = pairs.iter().find(|(k, _)| k == "ids").map(|(_, v)| v.clone()).unwrap_or_default();
                ids.split(',')
                    .map(|id| {
                        let found = self.records.values_mut().flatten().find(|r| r.id == id && !r.deleted);
                        match found {
                            Some(r) => {
                                r.deleted = true;
                                json!({ "id": id, "success": true, "errors": [] })
                            }
                            None => json!({ "id": id, "success": false, "errors": [records::error("ENTITY_IS_DELETED", "entity is deleted", &[])] }),
                        }
                    })
                    .collect()
            }
            _ => return errors(404, "NOT_FOUND", "The requested resource does not exist"),
        };
        (200, J::Array(results).to_string())
    }

    fn data(&mut self, method: &str, parts: &[&str], query: &str, body: &str) -> (u16, String) {
        let json_body: J = serde_json::from_str(body).unwrap_or(J::Null);
        match (method, parts) {
            ("GET", ["sobjects", object, "describe"]) => match self.schemas.get(*object) {
                Some(schema) => {
                    let fields: Vec<J> = schema
                        .iter()
                        .map(|f| {
                            let picklist: Vec<J> = f.picklist.iter().map(|v| json!({ "value": v, "label": v, "active": true })).collect();
                            json!({ "name": f.name, "type": f.kind, "externalId": f.external_id, "createable": f.createable,
                            "updateable": f.createable, "nillable": f.nillable, "unique": f.external_id, "length": f.length,
                            "caseSensitive": f.case_sensitive, "picklistValues": picklist, "restrictedPicklist": !f.picklist.is_empty() })
                        })
                        .collect();
                    (200, json!({ "name": object, "fields": fields }).to_string())
                }
                None => errors(404, "NOT_FOUND", "The requested resource does not exist"),
            },
            ("GET", ["query"]) => {
                let q = jwt::form(query).into_iter().find(|(k, _)| k == "q").map(|(_, v)| v).unwrap_or_default();
                let Some((fields, object, field, literals)) = records::parse_in_query(&q) else {
                    return errors(400, "MALFORMED_QUERY", &format!("unexpected token: {q}"));
                };
                // Literals follow the field's type: numbers bare, text quoted.
                let f = self.field(&object, &field);
                let numeric = f.as_ref().is_some_and(|f| f.kind == "double");
                let mut values = Vec::new();
                for literal in literals {
                    match (literal, numeric) {
                        (records::Literal::Quoted(_), true) => {
                            return errors(400, "INVALID_FIELD", &format!(
                                "value of filter criterion for field '{field}' must be of type double and should not be enclosed in quotes"
                            ))
                        }
                        (records::Literal::Bare(v), true) => match v.parse::<f64>() {
                            Ok(n) => values.push(json!(n)),
                            Err(_) => return errors(400, "MALFORMED_QUERY", &format!("unexpected token: '{v}'")),
                        },
                        (records::Literal::Quoted(v), false) => values.push(J::String(v)),
                        (records::Literal::Bare(v), false) => {
                            return errors(400, "INVALID_FIELD", &format!("value of filter criterion for field '{field}' must be of type string and should be enclosed in quotes: {v}"))
                        }
                    }
                }
                let found: Vec<J> = self
                    .records
                    .get(&object)
                    .into_iter()
                    .flatten()
                    .filter(|r| !r.deleted && r.fields.get(&field).is_some_and(|v| values.iter().any(|x| records::same(f.as_ref(), v, x))))
                    .map(|r| {
                        let mut out = json!({ "attributes": { "type": object, "url": format!("{API}sobjects/{object}/{}", r.id) } });
                        for f in &fields {
                            out[f] = r.fields.get(f).cloned().unwrap_or(J::Null);
                        }
                        out
                    })
                    .collect();
                (200, json!({ "totalSize": found.len(), "done": true, "records": found }).to_string())
            }
            (_, ["composite", "sobjects", rest @ ..]) => self.collection(method, rest, query, &json_body),
            (_, ["jobs", "ingest", rest @ ..]) => bulk::handle(self, method, rest, body),
            _ => errors(404, "NOT_FOUND", "The requested resource does not exist"),
        }
    }

    fn login(&mut self, form: &str) -> (u16, String) {
        self.logins += 1;
        let refuse = |s: &mut State, d: &str| {
            s.login_refusals += 1;
            (400, json!({ "error": "invalid_grant", "error_description": d }).to_string())
        };
        let pairs = jwt::form(form);
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if get("grant_type").as_deref() != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
            return (400, json!({ "error": "unsupported_grant_type", "error_description": "grant type not supported" }).to_string());
        }
        let claims = match jwt::verify(&get("assertion").unwrap_or_default(), &self.apps) {
            Ok(c) => c,
            Err(jwt::JwtError::UnknownIssuer) => return refuse(self, "invalid client credentials"),
            Err(_) => return refuse(self, "invalid assertion"),
        };
        if !self.users.iter().any(|u| claims["sub"].as_str() == Some(u)) {
            return refuse(self, "user hasn't approved this consumer");
        }
        let audience = if self.sandbox { "https://test.salesforce.com" } else { "https://login.salesforce.com" };
        if claims["aud"].as_str() != Some(audience) {
            return refuse(self, "audience is invalid");
        }
        let exp = claims["exp"].as_i64().unwrap_or(0);
        if exp <= jwt::now() || exp > jwt::now() + 300 {
            return refuse(self, "expired authorization code");
        }
        let token = format!("00DEMULATED!{}", uuid::Uuid::new_v4().simple());
        self.sessions.insert(token.clone());
        let answer = json!({ "access_token": token, "instance_url": self.base, "id": format!("{}/id/00D000000000001/005000000000001", self.base),
            "token_type": "Bearer", "scope": "api", "issued_at": (jwt::now() * 1000).to_string(), "signature": "emulated" });
        (200, answer.to_string())
    }
}

async fn serve(AxumState(sf): AxumState<Salesforce>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let _serving = sf.in_flight.enter();
    let body = String::from_utf8_lossy(&body).into_owned();
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let logged_path = path.strip_prefix(API).unwrap_or(&path).to_string();
    let (fault, logged) = sf.with(|s| {
        s.log.push(Logged { method: method.to_string(), path: logged_path.clone(), query: query.clone(), body: body.clone(), status: 0 });
        let random = s.random_faults.as_mut().and_then(|r| r.pick());
        (s.faults.pop_front().or(random), s.log.len() - 1)
    });
    if let Some(Fault::Drop) = fault {
        super::faults::drop_connection();
    }
    // URI plus headers are capped at 16,384 bytes; past it Salesforce's front end answers with
    // an HTML page, not JSON.
    let head: usize = uri.to_string().len() + headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum::<usize>();
    if head > 16_384 {
        let status = if uri.to_string().len() > 16_384 { 414 } else { 431 };
        sf.with(|s| {
            if let Some(entry) = s.log.get_mut(logged) {
                entry.status = status;
            }
        });
        let page = format!("<h1>Bad Message {status}</h1><pre>reason: URI Too Long</pre>");
        let code = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::BAD_REQUEST);
        return (code, [("content-type", "text/html;charset=iso-8859-1")], page).into_response();
    }
    let (status, answer, usage, latency) = sf.with(|s| {
        if let Some(Fault::Revoke) = fault {
            s.sessions.clear();
        }
        let (status, answer) = if path == "/services/oauth2/token" && method == Method::POST {
            s.login(&body)
        } else if let Some(Fault::Status(code)) = fault {
            match code {
                403 => errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
                c => errors(c, "SERVER_UNAVAILABLE", "Server temporarily unavailable"),
            }
        } else if let Some(rest) = path.strip_prefix(API) {
            let token = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
            if !token.is_some_and(|t| s.sessions.contains(t)) {
                errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
            } else if s.api_used >= s.api_limit {
                errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            } else {
                s.api_used += 1;
                let parts: Vec<String> = rest
                    .trim_end_matches('/')
                    .split('/')
                    .map(|p| percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned())
                    .collect();
                let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
                s.data(method.as_str(), &parts, &query, &body)
            }
        } else {
            errors(404, "NOT_FOUND", "The requested resource does not exist")
        };
        if let Some(entry) = s.log.get_mut(logged) {
            entry.status = status;
        }
        let latency = s.latency.as_mut().map(|l| l.next());
        (status, answer, format!("api-usage={}/{}", s.api_used, s.api_limit), latency)
    });
    super::faults::answer_after(latency).await;
    match fault {
        Some(Fault::DropAfter) => super::faults::drop_connection(),
        Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
        _ => {}
    }
    let code = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = if answer.starts_with('[') || answer.starts_with('{') { "application/json;charset=UTF-8" } else { "text/csv" };
    (code, [("sforce-limit-info", usage), ("content-type", content_type.to_string())], answer).into_response()
}
