//! A HubSpot CRM v3 emulator: private-app bearer tokens, object properties, the batch
//! create/read/update/upsert/archive endpoints over an in-memory store that enforces unique id
//! properties, read-only and unknown properties, value types and the 100-input limit, with
//! HubSpot's bodies (200/201/207/204, top-level errors) and its rolling 10-second rate limit with
//! `X-HubSpot-RateLimit-*` headers. Faults can be injected; every request is logged.
//!
//! What HubSpot does that a client must survive, each modelled here (sources in
//! ../shared/reference/saas-apis.md §3 and §6):
//! - batch `results` come back in no particular order (HubSpot/hubspot-api-nodejs#190: "there
//!   is no way" to get input order): they are shuffled, from a printed, replayable seed;
//! - echoed values are normalised: emails lower-cased, numbers in their plain form (`007` is `7`);
//! - duplicate ids in one batch are refused whole: 400 "Duplicate IDs found in batch input";
//! - a `batch/update` of records that are gone answers per-row OBJECT_NOT_FOUND, or a 404 when
//!   none is found;
//! - multiple-checkbox properties take their options joined by `;`;
//! - with `email` as the `idProperty`, HubSpot does not support partial upserts (its contacts
//!   guide). The docs do not say what a partial upsert is; the stricter reading is taken: every
//!   input of such a batch must carry the same properties, or the batch is refused;
//! - 423 Locked (high-volume upserts: wait at least 2 s) and 477 Migration in progress (with
//!   Retry-After) come as injected faults.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value as J};

pub use super::faults::Fault;

pub const TOKEN: &str = "pat-na1-11111111-2222-3333-4444-555555555555";
/// The account (portal) `TOKEN` belongs to.
pub const PORTAL: u64 = 62515;

#[derive(Clone, Debug)]
pub struct Property {
    pub name: &'static str,
    /// string, number, date, datetime, bool, enumeration
    pub kind: &'static str,
    pub unique: bool,
    pub read_only: bool,
    /// An enumeration's allowed values (none: any); `multiple`: a multiple-checkbox property,
    /// whose value is several of them joined by `;`.
    pub options: &'static [&'static str],
    pub multiple: bool,
}

const fn prop(name: &'static str, kind: &'static str) -> Property {
    Property { name, kind, unique: false, read_only: false, options: &[], multiple: false }
}

/// A value as HubSpot stores and echoes it: emails lower-cased, numbers in their plain form.
fn normalised(p: Option<&Property>, value: &str) -> String {
    match p {
        Some(p) if p.name == "email" => value.to_lowercase(),
        Some(p) if p.kind == "number" => match value.parse::<f64>() {
            Ok(n) if n.is_finite() && n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", n as i64),
            Ok(n) if n.is_finite() => format!("{n}"),
            _ => value.to_string(),
        },
        _ => value.to_string(),
    }
}

#[derive(Clone, Debug)]
pub struct Record {
    pub id: String,
    pub properties: BTreeMap<String, String>,
    pub archived: bool,
}

#[derive(Clone, Debug)]
pub struct Logged {
    /// When the request arrived.
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub body: J,
    pub status: u16,
}

pub struct State {
    pub schemas: HashMap<String, Vec<Property>>,
    pub records: HashMap<String, Vec<Record>>,
    next_id: u64,
    /// Requests allowed per rolling window.
    pub rate_max: usize,
    pub rate_window: Duration,
    seen: VecDeque<Instant>,
    pub rate_refusals: usize,
    pub log: Vec<Logged>,
    faults: VecDeque<Fault>,
    pub random_faults: Option<super::faults::RandomFaults>,
    /// Private-app tokens HubSpot accepts, and the account (portal) each belongs to.
    pub tokens: HashMap<String, u64>,
    /// The order batch results come back in.
    rng: fastrand::Rng,
    /// How long each answer takes (none: at once).
    pub latency: Option<super::faults::Latency>,
    /// Where records are by a property's value, for the properties searched by value (unique
    /// ones, id properties): `(object, property)` -> stored value -> positions, built on the
    /// first search so a large portal stays quick (the emulator's own time must not pass for
    /// HubSpot's latency in a benchmark). Entries left by an update are checked on use; a test
    /// that changes records by hand (`HubSpot::with`) drops the indexes.
    index: HashMap<(String, String), HashMap<String, Vec<usize>>>,
}

#[derive(Clone)]
pub struct HubSpot {
    state: Arc<Mutex<State>>,
    pub base_url: String,
    /// Requests being served at once.
    pub in_flight: super::faults::InFlight,
}

fn contacts() -> Vec<Property> {
    vec![
        prop("email", "string"),
        prop("firstname", "string"),
        prop("lastname", "string"),
        // A default contact property: "Company name".
        prop("company", "string"),
        Property {
            options: &[
                "subscriber",
                "lead",
                "marketingqualifiedlead",
                "salesqualifiedlead",
                "opportunity",
                "customer",
                "evangelist",
                "other",
            ],
            ..prop("lifecyclestage", "enumeration")
        },
        Property { options: &["product", "pricing", "support", "events"], multiple: true, ..prop("interests", "enumeration") },
        prop("score", "number"),
        prop("signup_date", "date"),
        prop("last_seen", "datetime"),
        prop("is_vip", "bool"),
        Property { unique: true, ..prop("customer_id", "string") },
        Property { read_only: true, ..prop("hs_object_id", "number") },
        Property { read_only: true, ..prop("createdate", "datetime") },
    ]
}

fn companies() -> Vec<Property> {
    vec![
        prop("name", "string"),
        prop("domain", "string"),
        prop("annualrevenue", "number"),
        Property { unique: true, ..prop("account_id", "string") },
        Property { unique: true, ..prop("erp_id", "number") },
    ]
}

impl HubSpot {
    pub async fn start() -> HubSpot {
        let state = State {
            schemas: HashMap::from([("contacts".to_string(), contacts()), ("companies".to_string(), companies())]),
            records: HashMap::new(),
            next_id: 1001,
            rate_max: 100,
            rate_window: Duration::from_secs(10),
            seen: VecDeque::new(),
            rate_refusals: 0,
            log: Vec::new(),
            faults: VecDeque::new(),
            random_faults: None,
            tokens: HashMap::from([(TOKEN.to_string(), PORTAL)]),
            rng: fastrand::Rng::with_seed(super::faults::seed("SLUICE_HUBSPOT_SEED")),
            latency: None,
            index: HashMap::new(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind emulator");
        let addr = listener.local_addr().expect("emulator address");
        let hubspot = HubSpot { state: Arc::new(Mutex::new(state)), base_url: format!("http://{addr}/"), in_flight: Default::default() };
        let app = Router::new().fallback(serve).with_state(hubspot.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        hubspot
    }

    /// A `[destinations.NAME]` table for this emulator.
    pub fn destination_toml(&self, extra: &str) -> String {
        format!("kind = \"hubspot\"\ntoken = \"{TOKEN}\"\nbase_url = \"{}\"\nretry_initial_delay = \"20ms\"\n{extra}\n", self.base_url)
    }

    /// The state, for a test to read or change by hand (the indexes are rebuilt after).
    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().expect("emulator state");
        let out = f(&mut state);
        state.index.clear();
        out
    }

    /// The state, as the service itself changes it.
    fn serving<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("emulator state"))
    }

    /// The live (not archived) records of an object.
    pub fn records(&self, object: &str) -> Vec<Record> {
        self.with(|s| s.records.get(object).map(|r| r.iter().filter(|r| !r.archived).cloned().collect()).unwrap_or_default())
    }

    /// A live record's property by another property's value.
    pub fn find(&self, object: &str, by: &str, value: &str) -> Option<Record> {
        self.records(object).into_iter().find(|r| r.properties.get(by).map(String::as_str) == Some(value))
    }

    pub fn log(&self) -> Vec<Logged> {
        self.with(|s| s.log.clone())
    }

    pub fn clear_log(&self) {
        self.with(|s| s.log.clear());
    }

    /// Answered batch writes (create, update, upsert, archive), by action.
    pub fn writes(&self, action: &str) -> Vec<Logged> {
        self.log().into_iter().filter(|l| l.path.ends_with(&format!("/batch/{action}")) && l.status < 300).collect()
    }

    pub fn fail_next(&self, faults: &[Fault]) {
        self.with(|s| s.faults.extend(faults.iter().copied()));
    }
}

fn correlation() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn error(status: u16, category: &str, message: &str) -> (u16, J) {
    (status, json!({ "status": "error", "message": message, "correlationId": correlation(), "category": category }))
}

fn invalid_values(problems: &[(String, String, &str)]) -> String {
    let items: Vec<J> = problems
        .iter()
        .map(|(name, message, code)| json!({ "isValid": false, "message": message, "error": code, "name": name, "localizedErrorMessage": message }))
        .collect();
    format!("Property values were not valid: {}", J::Array(items))
}

/// Checks one input's properties: unknown or read-only properties fail the whole request (`Err`),
/// bad values fail only the input (`Ok(Some(message))`).
fn validate(schema: &[Property], props: &Map) -> Result<Option<String>, (u16, J)> {
    let mut bad = Vec::new();
    for (name, value) in props {
        let Some(p) = schema.iter().find(|p| p.name == name) else {
            let m = format!("Property \"{name}\" does not exist");
            return Err(error(400, "VALIDATION_ERROR", &invalid_values(&[(name.clone(), m, "PROPERTY_DOESNT_EXIST")])));
        };
        if p.read_only {
            let m = format!("\"{name}\" is a read only property; its value cannot be set.");
            return Err(error(400, "VALIDATION_ERROR", &invalid_values(&[(name.clone(), m, "READ_ONLY_VALUE")])));
        }
        let v = value.as_str().unwrap_or_default();
        if v.is_empty() {
            continue;
        }
        let problem = match p.kind {
            "number" if v.parse::<f64>().is_err() => Some((format!("{v} was not a valid number."), "INVALID_INTEGER")),
            "bool" if v != "true" && v != "false" => Some((format!("{v} was not a valid boolean."), "INVALID_BOOLEAN")),
            "date" if v.parse::<i64>().map_or(true, |ms| ms % 86_400_000 != 0) => {
                Some((format!("{v} is at not midnight UTC; date properties take midnight UTC in epoch milliseconds"), "INVALID_DATE"))
            }
            "datetime" if v.parse::<i64>().is_err() && chrono::DateTime::parse_from_rfc3339(v).is_err() => {
                Some((format!("{v} was not a valid long."), "INVALID_LONG"))
            }
            "string" if name == "email" && !v.contains('@') => Some((format!("Email address {v} is invalid"), "INVALID_EMAIL")),
            "enumeration" if !p.options.is_empty() => {
                let values: Vec<&str> = if p.multiple { v.split(';').collect() } else { vec![v] };
                values
                    .iter()
                    .find(|x| !p.options.contains(&x.trim()))
                    .map(|x| (format!("{x} was not one of the allowed options: [{}]", p.options.join(", ")), "INVALID_OPTION"))
            }
            _ => None,
        };
        if let Some((m, code)) = problem {
            bad.push((name.clone(), m, code));
        }
    }
    Ok((!bad.is_empty()).then(|| invalid_values(&bad)))
}

type Map = serde_json::Map<String, J>;

fn input_error(message: String, id: &str) -> J {
    json!({ "status": "error", "category": "VALIDATION_ERROR", "message": message, "context": { "ids": [id] } })
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn result(r: &Record, new: Option<bool>) -> J {
    let mut j = json!({ "id": r.id, "properties": r.properties, "createdAt": now_text(), "updatedAt": now_text(), "archived": false });
    if let Some(new) = new {
        j["new"] = J::Bool(new);
    }
    j
}

/// A batch answer: 200/201 when every input succeeded, 207 with `errors` otherwise; the results
/// in no particular order, as HubSpot gives them.
fn batch_answer(rng: &mut fastrand::Rng, ok: u16, mut results: Vec<J>, errors: Vec<J>) -> (u16, J) {
    rng.shuffle(&mut results);
    let now = now_text();
    let mut body = json!({ "status": "COMPLETE", "results": results, "requestedAt": now, "startedAt": now, "completedAt": now });
    if errors.is_empty() {
        return (ok, body);
    }
    body["numErrors"] = json!(errors.len());
    body["errors"] = J::Array(errors);
    (207, body)
}

impl State {
    fn live(&mut self, object: &str) -> impl Iterator<Item = &mut Record> {
        self.records.entry(object.to_string()).or_default().iter_mut().filter(|r| !r.archived)
    }

    fn position_by(&mut self, object: &str, property: &str, value: &str) -> Option<usize> {
        let value = self.stored(object, property, &J::String(value.to_string()));
        let slot = (object.to_string(), property.to_string());
        if !self.index.contains_key(&slot) {
            let mut built: HashMap<String, Vec<usize>> = HashMap::new();
            for (at, r) in self.records.get(object).into_iter().flatten().enumerate() {
                // Records a test put in by hand may hold values HubSpot would have normalised.
                let held = if property == "hs_object_id" { Some(r.id.clone()) } else { r.properties.get(property).cloned() };
                if let Some(v) = held {
                    built.entry(self.stored(object, property, &J::String(v))).or_default().push(at);
                }
            }
            self.index.insert(slot.clone(), built);
        }
        let places = self.index.get(&slot)?.get(&value)?;
        let records = self.records.get(object)?;
        places
            .iter()
            .copied()
            .filter(|&at| {
                records.get(at).is_some_and(|r| {
                    !r.archived
                        && if property == "hs_object_id" {
                            r.id == value
                        } else {
                            r.properties.get(property).is_some_and(|v| self.stored(object, property, &J::String(v.clone())) == value)
                        }
                })
            })
            .min()
    }

    /// Adds the record at `at` to the indexes of `object`'s searched properties.
    fn index_record(&mut self, object: &str, at: usize) {
        let Some(record) = self.records.get(object).and_then(|r| r.get(at)).cloned() else { return };
        let searched: Vec<String> = self.index.keys().filter(|(o, _)| o == object).map(|(_, p)| p.clone()).collect();
        for property in searched {
            let held = if property == "hs_object_id" { Some(record.id.clone()) } else { record.properties.get(&property).cloned() };
            if let Some(v) = held {
                let key = self.stored(object, &property, &J::String(v));
                self.index.entry((object.to_string(), property)).or_default().entry(key).or_default().push(at);
            }
        }
    }

    /// A property's value as stored: normalised by its type.
    fn stored(&self, object: &str, name: &str, value: &J) -> String {
        let p = self.schemas.get(object).and_then(|s| s.iter().find(|p| p.name == name));
        normalised(p, value.as_str().unwrap_or_default())
    }

    fn create(&mut self, object: &str, props: &Map) -> Record {
        let id = self.next_id.to_string();
        self.next_id += 1;
        let mut properties: BTreeMap<String, String> = props.iter().map(|(k, v)| (k.clone(), self.stored(object, k, v))).collect();
        properties.insert("hs_object_id".into(), id.clone());
        let record = Record { id, properties, archived: false };
        let records = self.records.entry(object.to_string()).or_default();
        records.push(record.clone());
        let at = records.len() - 1;
        self.index_record(object, at);
        record
    }

    fn apply(&mut self, object: &str, at: usize, props: &Map) -> Record {
        let values: Vec<(String, String)> = props.iter().map(|(k, v)| (k.clone(), self.stored(object, k, v))).collect();
        let record = &mut self.records.get_mut(object).expect("object")[at];
        record.properties.extend(values);
        let record = record.clone();
        self.index_record(object, at);
        record
    }

    fn batch(&mut self, object: &str, action: &str, body: &J) -> (u16, J) {
        let Some(schema) = self.schemas.get(object).cloned() else {
            return error(400, "VALIDATION_ERROR", &format!("Unable to infer object type from: {object}"));
        };
        let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
        if inputs.len() > 100 {
            return error(400, "VALIDATION_ERROR", &format!("Too many inputs: {} (the limit is 100)", inputs.len()));
        }
        let unique = |name: &str| schema.iter().any(|p| p.name == name && p.unique) || (object == "contacts" && name == "email");
        let empty = Map::new();
        let props = |i: &J| i["properties"].as_object().cloned().unwrap_or_default();
        // Unknown or read-only properties fail the whole request before anything is done.
        let mut checked = Vec::new();
        for input in &inputs {
            match validate(&schema, input["properties"].as_object().unwrap_or(&empty)) {
                Ok(problem) => checked.push(problem),
                Err(answer) => return answer,
            }
        }
        // One batch may not name a record twice (read, update and upsert alike).
        if matches!(action, "read" | "update" | "upsert") {
            let by = body["idProperty"].as_str().unwrap_or("hs_object_id");
            let mut seen = std::collections::HashSet::new();
            for input in &inputs {
                let id = input["id"].as_str().unwrap_or_default();
                let property = input["idProperty"].as_str().unwrap_or(by);
                if !seen.insert(self.stored(object, property, &J::String(id.to_string()))) {
                    return error(400, "VALIDATION_ERROR", &format!("Duplicate IDs found in batch input: [{id}]"));
                }
            }
        }
        let (mut results, mut errors) = (Vec::new(), Vec::new());
        match action {
            "upsert" => {
                for input in &inputs {
                    let property = input["idProperty"].as_str().unwrap_or("hs_object_id");
                    if property != "hs_object_id" && !unique(property) {
                        return error(
                            400,
                            "VALIDATION_ERROR",
                            &format!("{property} is not a unique property and cannot be used as idProperty"),
                        );
                    }
                }
                // Email as the idProperty: no partial upserts (see the module docs).
                let by_email: Vec<Vec<&String>> = inputs
                    .iter()
                    .filter(|i| i["idProperty"].as_str() == Some("email"))
                    .map(|i| i["properties"].as_object().map(|p| p.keys().collect()).unwrap_or_default())
                    .collect();
                if by_email.windows(2).any(|w| w[0] != w[1]) {
                    return error(
                        400,
                        "VALIDATION_ERROR",
                        "Partial upserts are not supported when using email as the idProperty: every input must set the same properties",
                    );
                }
                for (input, problem) in inputs.iter().zip(checked) {
                    let (property, id) = (input["idProperty"].as_str().unwrap_or("hs_object_id"), input["id"].as_str().unwrap_or_default());
                    let bad_email = property == "email" && !id.contains('@');
                    let problem = problem.or_else(|| {
                        bad_email.then(|| invalid_values(&[("email".into(), format!("Email address {id} is invalid"), "INVALID_EMAIL")]))
                    });
                    if let Some(message) = problem {
                        errors.push(input_error(message, id));
                        continue;
                    }
                    match self.position_by(object, property, id) {
                        Some(at) => results.push(result(&self.apply(object, at, &props(input)), Some(false))),
                        None => {
                            let mut p = props(input);
                            p.insert(property.to_string(), J::String(id.to_string()));
                            results.push(result(&self.create(object, &p), Some(true)));
                        }
                    }
                }
                batch_answer(&mut self.rng, 200, results, errors)
            }
            "create" => {
                for (input, problem) in inputs.iter().zip(checked) {
                    let p = props(input);
                    // Batch create is all or nothing: one invalid input or one existing record
                    // fails the whole request (400 / 409) and nothing is created.
                    if let Some(message) = problem {
                        return error(400, "VALIDATION_ERROR", &message);
                    }
                    let conflict = schema.iter().filter(|s| unique(s.name)).find_map(|s| {
                        let v = p.get(s.name)?.as_str()?;
                        self.position_by(object, s.name, v).map(|at| self.records[object][at].id.clone())
                    });
                    if let Some(existing) = conflict {
                        return error(409, "CONFLICT", &format!("Contact already exists. Existing ID: {existing}"));
                    }
                }
                for input in &inputs {
                    results.push(result(&self.create(object, &props(input)), None));
                }
                batch_answer(&mut self.rng, 201, results, errors)
            }
            "update" => {
                for (input, problem) in inputs.iter().zip(checked) {
                    let id = input["id"].as_str().unwrap_or_default();
                    if let Some(message) = problem {
                        errors.push(input_error(message, id));
                        continue;
                    }
                    match self.position_by(object, "hs_object_id", id) {
                        Some(at) => results.push(result(&self.apply(object, at, &props(input)), None)),
                        None => errors.push(json!({ "status": "error", "category": "OBJECT_NOT_FOUND",
                            "message": format!("Object not found. objectId are usually numeric."), "context": { "ids": [id] } })),
                    }
                }
                if results.is_empty() && errors.iter().all(|e| e["category"] == "OBJECT_NOT_FOUND") && !errors.is_empty() {
                    return error(404, "OBJECT_NOT_FOUND", "Object not found. objectId are usually numeric.");
                }
                batch_answer(&mut self.rng, 200, results, errors)
            }
            "read" => {
                let property = body["idProperty"].as_str().unwrap_or("hs_object_id");
                let mut missing = Vec::new();
                for input in &inputs {
                    let id = input["id"].as_str().unwrap_or_default();
                    match self.position_by(object, property, id) {
                        Some(at) => results.push(result(&self.records[object][at], None)),
                        None => missing.push(id.to_string()),
                    }
                }
                if !missing.is_empty() {
                    errors.push(json!({ "status": "error", "category": "OBJECT_NOT_FOUND",
                        "message": format!("Could not get some {object} objects, they may be deleted or not exist."), "context": { "ids": missing } }));
                }
                batch_answer(&mut self.rng, 200, results, errors)
            }
            "archive" => {
                let ids: Vec<String> = inputs.iter().filter_map(|i| i["id"].as_str().map(str::to_string)).collect();
                for r in self.live(object) {
                    if ids.contains(&r.id) {
                        r.archived = true;
                    }
                }
                (204, J::Null)
            }
            _ => error(404, "OBJECT_NOT_FOUND", "Unknown batch action"),
        }
    }

    fn handle(&mut self, method: &Method, path: &str, body: &J) -> (u16, J) {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method.as_str(), parts.as_slice()) {
            ("GET", ["crm", "v3", "properties", object]) => match self.schemas.get(*object) {
                Some(schema) => {
                    let results: Vec<J> = schema
                        .iter()
                        .map(|p| {
                            let field_type = match (p.kind, p.multiple) {
                                ("enumeration", true) => "checkbox",
                                ("enumeration", false) => "select",
                                ("bool", _) => "booleancheckbox",
                                ("number", _) => "number",
                                ("date" | "datetime", _) => "date",
                                _ => "text",
                            };
                            let options: Vec<J> = p.options.iter().enumerate().map(|(i, o)| json!({ "label": o, "value": o, "displayOrder": i, "hidden": false })).collect();
                            json!({ "name": p.name, "label": p.name, "type": p.kind, "fieldType": field_type, "groupName": "contactinformation",
                                "options": options, "hasUniqueValue": p.unique,
                                "modificationMetadata": { "archivable": true, "readOnlyDefinition": p.read_only, "readOnlyValue": p.read_only } })
                        })
                        .collect();
                    (200, json!({ "results": results }))
                }
                None => error(400, "VALIDATION_ERROR", &format!("Unable to infer object type from: {object}")),
            },
            ("POST", ["crm", "v3", "objects", object, "batch", action]) => self.batch(object, action, body),
            _ => (404, json!({ "status": "error", "message": "Not found", "correlationId": correlation() })),
        }
    }

    /// Counts the request in the rolling window; `false` when over the limit.
    fn admit(&mut self) -> bool {
        let now = Instant::now();
        while self.seen.front().is_some_and(|t| now.duration_since(*t) >= self.rate_window) {
            self.seen.pop_front();
        }
        if self.seen.len() >= self.rate_max {
            return false;
        }
        self.seen.push_back(now);
        true
    }
}

async fn serve(AxumState(hubspot): AxumState<HubSpot>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let _serving = hubspot.in_flight.enter();
    let body: J = if body.is_empty() { J::Null } else { serde_json::from_slice(&body).unwrap_or(J::Null) };
    let path = uri.path().to_string();
    let (fault, logged) = hubspot.serving(|s| {
        s.log.push(Logged { at: Instant::now(), method: method.to_string(), path: path.clone(), body: body.clone(), status: 0 });
        let random = s.random_faults.as_mut().and_then(|r| r.pick());
        (s.faults.pop_front().or(random), s.log.len() - 1)
    });
    if let Some(Fault::Drop) = fault {
        super::faults::drop_connection();
    }
    let (status, answer, remaining, max, window, latency) = hubspot.serving(|s| {
        let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let portal = bearer.and_then(|t| s.tokens.get(t).copied());
        let authorized = portal.is_some();
        let (status, answer) = if let Some(Fault::Status(code)) = fault {
            match code {
                429 => (429, json!({ "status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT", "correlationId": correlation(), "policyName": "SECONDLY" })),
                423 => error(423, "LOCKED", "The record is locked by another request: wait at least 2 seconds, then try again."),
                477 => error(477, "MIGRATION_IN_PROGRESS", "This account is being migrated: try again later."),
                c => error(c, "INTERNAL_ERROR", "internal error"),
            }
        } else if !authorized {
            error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview")
        } else if !s.admit() {
            s.rate_refusals += 1;
            (429, json!({ "status": "error", "message": "You have reached your ten_secondly_rolling limit.", "errorType": "RATE_LIMIT",
                "correlationId": correlation(), "policyName": "TEN_SECONDLY_ROLLING", "groupName": "publicapi:private-app:1" }))
        } else if method == Method::GET && path == "/account-info/v3/details" {
            // The account information API: the token's account. (developers.hubspot.com/docs/
            // api-reference/latest/account/account-information/get-account-details)
            (200, json!({ "portalId": portal, "accountType": "STANDARD", "timeZone": "US/Eastern", "companyCurrency": "USD",
                "additionalCurrencies": [], "utcOffset": "-05:00", "utcOffsetMilliseconds": -18000000, "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1" }))
        } else {
            s.handle(&method, &path, &body)
        };
        if let Some(entry) = s.log.get_mut(logged) {
            entry.status = status;
        }
        let latency = s.latency.as_mut().map(|l| l.next());
        (status, answer, s.rate_max.saturating_sub(s.seen.len()), s.rate_max, s.rate_window, latency)
    });
    super::faults::answer_after(latency).await;
    match fault {
        Some(Fault::DropAfter) => super::faults::drop_connection(),
        Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
        _ => {}
    }
    let code = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let rate_headers = [
        ("x-hubspot-ratelimit-max", max.to_string()),
        ("x-hubspot-ratelimit-remaining", remaining.to_string()),
        ("x-hubspot-ratelimit-interval-milliseconds", window.as_millis().to_string()),
        ("x-hubspot-ratelimit-daily", "250000".to_string()),
        ("x-hubspot-ratelimit-daily-remaining", "249000".to_string()),
    ];
    if status == 204 {
        return (code, rate_headers).into_response();
    }
    // 477 Migration in progress says when to come back.
    let retry_after: Vec<(&str, &str)> = if status == 477 { vec![("retry-after", "1")] } else { Vec::new() };
    let mut response = (code, rate_headers, [("content-type", "application/json;charset=utf-8")], answer.to_string()).into_response();
    for (name, value) in retry_after {
        response.headers_mut().insert(name, axum::http::HeaderValue::from_static(value));
    }
    response
}

/// A DuckDB project syncing to a HubSpot emulator through the destination `crm`: what the
/// HubSpot tests share.
pub struct Crm {
    pub env: super::Env,
    pub hubspot: HubSpot,
}

impl Crm {
    /// The project: `crm` with `extra` settings, the source set up by `setup` (SQL), and the sync
    /// `people` with this `header` and `model`.
    pub async fn start(extra: &str, setup: &str, header: &str, model: &str) -> Crm {
        let env = super::Env::new(super::SourceKind::DuckDb, super::StateKind::Sqlite).await;
        let hubspot = HubSpot::start().await;
        env.add_destination("crm", &hubspot.destination_toml(extra));
        env.exec(setup).await;
        env.write_sync("people", header, model);
        Crm { env, hubspot }
    }

    /// Runs `people`, which must succeed.
    pub async fn run_ok(&self) -> sluice::engine::SyncReport {
        let report = self.env.run("people").await;
        assert_eq!(report.status, sluice::state::RunStatus::Success, "run failed: {:?} {:?}", report.error, report.warnings);
        report
    }

    /// A live contact's property, by its email.
    pub fn prop(&self, email: &str, name: &str) -> Option<String> {
        self.hubspot.find("contacts", "email", email).and_then(|r| r.properties.get(name).cloned())
    }
}
