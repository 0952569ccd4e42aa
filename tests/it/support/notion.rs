//! A Notion API emulator (version 2022-06-28): internal-integration bearer tokens, the
//! `Notion-Version` header, databases (`GET /v1/databases/{id}`, `POST /v1/databases/{id}/query`)
//! and pages (`POST /v1/pages`, `PATCH /v1/pages/{id}`) over an in-memory workspace, with
//! Notion's error bodies, its validation and its rate limit. Faults can be injected; every
//! request is logged.
//!
//! What Notion does that a client must survive, each modelled here with its source:
//! - errors are `{"object":"error","status":N,"code":"...","message":"...","request_id":"..."}`
//!   (developers.notion.com/reference/status-codes);
//! - a missing `Notion-Version` header is a 400 `missing_version`; so is, here, a version Notion
//!   does not publish (developers.notion.com/reference/versioning);
//! - a bad token is a 401 `unauthorized` "API token is invalid." (status-codes);
//! - a database or page not shared with the integration is a 404 `object_not_found` "Could not
//!   find database with ID: ... Make sure the relevant pages and databases are shared with your
//!   integration." (status-codes; the message as @notionhq/client users quote it);
//! - the rate limit is an average of three requests per second per integration, with bursts
//!   allowed: a token bucket here (rate 3/s, burst 10), answering 429 `rate_limited` with an
//!   integer `Retry-After` (developers.notion.com/reference/request-limits);
//! - query results come newest first when no sort is given, 100 per page at most, with
//!   `next_cursor` / `has_more`; archived pages are never listed
//!   (developers.notion.com/reference/post-database-query); `filter_properties` query
//!   parameters limit the properties each page carries;
//! - validation errors name the path in the body: `body failed validation:
//!   body.properties.MRR.number should be a number or \`null\`, instead was \`"abc"\`.`, rich
//!   text content over 2,000 characters (`...text.content.length should be ≤ \`2000\`, instead
//!   was \`2242\`.`, lizheming/doumark-action#11), arrays over 100 elements (selfboot/html2notion#5),
//!   empty strings refused (request-limits: "send null"); an unknown property name is
//!   "X is not a property that exists." (page-property-values);
//! - select and multi-select options that do not exist are created on write
//!   (developers.notion.com/reference/page-property-values#select);
//! - editing a page in the trash is refused: 400 validation_error "Can't edit block that is
//!   archived. You must unarchive the block before editing." (dvanoni/notero#704); sending
//!   `archived: false` restores it (developers.notion.com/reference/patch-page);
//! - `created_time` is rounded down to the minute, as Notion's timestamps are
//!   (developers.notion.com/reference/page: "rounded down to the nearest minute").

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Map, Value as J};

pub use super::faults::Fault;

pub const TOKEN: &str = "ntn_4105311111111111111111111111111111111111111111";
/// The database the tests write to, shared with the integration.
pub const DB: &str = "8e2c1b4a-5f6d-4e3a-9b2c-1d0e9f8a7b6c";
/// A user of the workspace (for people properties).
pub const USER: &str = "6794760a-1f15-45cd-9c65-0dfe42f5135a";
/// The versions Notion publishes (developers.notion.com/reference/changes-by-version).
const VERSIONS: [&str; 6] = ["2021-05-11", "2021-05-13", "2021-08-16", "2022-02-22", "2022-06-28", "2025-09-03"];

#[derive(Clone, Debug)]
pub struct Property {
    pub id: String,
    pub name: String,
    /// title, rich_text, number, checkbox, select, multi_select, date, email, url,
    /// phone_number, people, formula
    pub kind: String,
    /// A select's or multi-select's options, by name.
    pub options: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Database {
    pub id: String,
    pub title: String,
    pub properties: Vec<Property>,
    /// Whether the integration was given access (the database's ••• menu > Connections).
    pub shared: bool,
}

#[derive(Clone, Debug)]
pub struct Page {
    pub id: String,
    pub database: String,
    /// The order pages were created in (Notion's `created_time` is only good to the minute).
    pub seq: u64,
    pub created_time: String,
    /// By property name: the property value object, as Notion answers it.
    pub properties: Map<String, J>,
    pub archived: bool,
}

impl Page {
    /// The plain text of a title or rich text property; a number, select or other as text.
    pub fn text(&self, property: &str) -> String {
        let v = &self.properties[property];
        match v["type"].as_str().unwrap_or("") {
            "title" | "rich_text" => {
                v[v["type"].as_str().unwrap()].as_array().into_iter().flatten().map(|t| t["plain_text"].as_str().unwrap_or("")).collect()
            }
            "number" => v["number"].as_f64().map(|n| n.to_string()).unwrap_or_default(),
            "select" => v["select"]["name"].as_str().unwrap_or("").to_string(),
            "email" | "url" | "phone_number" => v[v["type"].as_str().unwrap()].as_str().unwrap_or("").to_string(),
            "checkbox" => v["checkbox"].to_string(),
            "date" => v["date"]["start"].as_str().unwrap_or("").to_string(),
            "multi_select" | "people" => {
                let kind = v["type"].as_str().unwrap();
                let field = if kind == "people" { "id" } else { "name" };
                v[kind].as_array().into_iter().flatten().map(|o| o[field].as_str().unwrap_or("")).collect::<Vec<_>>().join(",")
            }
            _ => v.to_string(),
        }
    }

    /// The value of one property, as Notion answers it (e.g. `{"number": 5}` -> `5`).
    pub fn value(&self, property: &str) -> J {
        let v = &self.properties[property];
        v[v["type"].as_str().unwrap_or("")].clone()
    }
}

#[derive(Clone, Debug)]
pub struct Logged {
    pub at: Instant,
    pub method: String,
    /// The path and query.
    pub path: String,
    pub body: J,
    pub status: u16,
}

pub struct State {
    pub databases: HashMap<String, Database>,
    pub pages: Vec<Page>,
    pub tokens: HashSet<String>,
    seq: u64,
    /// The token bucket: requests per second on average, and the burst above it.
    pub rate_per_second: f64,
    pub burst: f64,
    pub bucket: f64,
    refilled: Instant,
    pub rate_refusals: usize,
    pub log: Vec<Logged>,
    faults: VecDeque<Fault>,
    pub random_faults: Option<super::faults::RandomFaults>,
    pub latency: Option<super::faults::Latency>,
}

#[derive(Clone)]
pub struct Notion {
    state: Arc<Mutex<State>>,
    pub base_url: String,
    pub in_flight: super::faults::InFlight,
}

fn prop(id: &str, name: &str, kind: &str) -> Property {
    Property { id: id.into(), name: name.into(), kind: kind.into(), options: Vec::new() }
}

/// The test database: every property type sluice writes, and one Notion computes.
fn customers() -> Database {
    Database {
        id: DB.into(),
        title: "Customers".into(),
        properties: vec![
            prop("title", "Name", "title"),
            prop("%3AUPp", "Customer ID", "rich_text"),
            prop("MRR%3D", "MRR", "number"),
            prop("bA%5Dk", "Active", "checkbox"),
            Property { options: vec!["Free".into()], ..prop("s%3Bk%5E", "Plan", "select") },
            prop("tG%3Fz", "Tags", "multi_select"),
            prop("r%3Dnw", "Renews", "date"),
            prop("em%40l", "Email", "email"),
            prop("w%2Fb", "Website", "url"),
            prop("ph%3A1", "Phone", "phone_number"),
            prop("own%7B", "Owner", "people"),
            prop("nt%3Fs", "Notes", "rich_text"),
            prop("sc%3Dr", "Score", "formula"),
        ],
        shared: true,
    }
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Notion's error body (developers.notion.com/reference/status-codes).
fn error(status: u16, code: &str, message: &str) -> (u16, J) {
    (status, json!({ "object": "error", "status": status, "code": code, "message": message, "request_id": request_id() }))
}

fn invalid(message: String) -> (u16, J) {
    error(400, "validation_error", &message)
}

/// `instead was `...``: the value as Notion quotes it.
fn shown(v: &J) -> String {
    match v {
        J::Null => "null".into(),
        other => other.to_string(),
    }
}

fn utf16(s: &str) -> usize {
    s.encode_utf16().count()
}

fn empty_value(kind: &str) -> J {
    match kind {
        "title" | "rich_text" | "multi_select" | "people" => J::Array(Vec::new()),
        "checkbox" => J::Bool(false),
        _ => J::Null,
    }
}

fn rich_text_object(content: &str) -> J {
    json!({ "type": "text", "text": { "content": content, "link": null },
        "annotations": { "bold": false, "italic": false, "strikethrough": false, "underline": false, "code": false, "color": "default" },
        "plain_text": content, "href": null })
}

fn now_minute() -> String {
    let now = chrono::Utc::now();
    let rounded = now - chrono::Duration::seconds(i64::from(chrono::Timelike::second(&now)));
    rounded.format("%Y-%m-%dT%H:%M:00.000Z").to_string()
}

impl State {
    fn database(&self, id: &str) -> Option<&Database> {
        let id = normalise_id(id)?;
        self.databases.get(&id).filter(|d| d.shared)
    }

    /// Checks one property value against its property (path `body.properties.NAME`) and returns
    /// it as Notion stores it, creating select options named for the first time.
    fn value(&mut self, db: &str, name: &str, given: &J) -> Result<J, String> {
        let database = &self.databases[db];
        let Some(p) = database.properties.iter().find(|p| p.name == name || p.id == name).cloned() else {
            return Err(format!("{name} is not a property that exists."));
        };
        let kind = p.kind.as_str();
        let path = format!("body.properties.{name}");
        let failed = |m: String| format!("body failed validation: {m}.");
        if matches!(kind, "formula" | "rollup" | "created_time" | "created_by" | "last_edited_time" | "last_edited_by") {
            return Err(failed(format!("{path}.{kind} should be not present, instead was `{}`", shown(&given[kind]))));
        }
        let Some(v) = given.get(kind) else {
            return Err(failed(format!("{path}.{kind} should be defined, instead was `undefined`")));
        };
        let stored = match kind {
            "title" | "rich_text" => {
                let Some(items) = v.as_array() else {
                    return Err(failed(format!("{path}.{kind} should be an array, instead was `{}`", shown(v))));
                };
                if items.len() > 100 {
                    return Err(failed(format!("{path}.{kind}.length should be ≤ `100`, instead was `{}`", items.len())));
                }
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let Some(content) = item["text"]["content"].as_str() else {
                        return Err(failed(format!("{path}.{kind}[{i}].text should be defined, instead was `undefined`")));
                    };
                    if utf16(content) > 2000 {
                        return Err(failed(format!(
                            "{path}.{kind}[{i}].text.content.length should be ≤ `2000`, instead was `{}`",
                            utf16(content)
                        )));
                    }
                    out.push(rich_text_object(content));
                }
                J::Array(out)
            }
            "number" => match v {
                J::Null | J::Number(_) => v.clone(),
                _ => return Err(failed(format!("{path}.number should be a number or `null`, instead was `{}`", shown(v)))),
            },
            "checkbox" => match v {
                J::Bool(_) => v.clone(),
                _ => return Err(failed(format!("{path}.checkbox should be a boolean, instead was `{}`", shown(v)))),
            },
            "select" => match v {
                J::Null => J::Null,
                J::Object(o) => {
                    let Some(option) = o.get("name").and_then(J::as_str) else {
                        return Err(failed(format!("{path}.select.name should be defined, instead was `undefined`")));
                    };
                    self.option(db, &p.name, &format!("{path}.select"), option)?
                }
                _ => return Err(failed(format!("{path}.select should be an object or `null`, instead was `{}`", shown(v)))),
            },
            "multi_select" => {
                let Some(items) = v.as_array() else {
                    return Err(failed(format!("{path}.multi_select should be an array, instead was `{}`", shown(v))));
                };
                if items.len() > 100 {
                    return Err(failed(format!("{path}.multi_select.length should be ≤ `100`, instead was `{}`", items.len())));
                }
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let Some(option) = item["name"].as_str() else {
                        return Err(failed(format!("{path}.multi_select[{i}].name should be defined, instead was `undefined`")));
                    };
                    out.push(self.option(db, &p.name, &format!("{path}.multi_select[{i}]"), option)?);
                }
                J::Array(out)
            }
            "date" => match v {
                J::Null => J::Null,
                J::Object(o) => {
                    let start = o.get("start").and_then(J::as_str).unwrap_or_default();
                    let iso =
                        chrono::NaiveDate::parse_from_str(start, "%Y-%m-%d").is_ok() || chrono::DateTime::parse_from_rfc3339(start).is_ok();
                    if !iso {
                        // The wording of this message is not documented; the path is.
                        return Err(failed(format!(
                            "{path}.date.start should be a valid ISO 8601 date string, instead was `{}`",
                            shown(&o.get("start").cloned().unwrap_or(J::Null))
                        )));
                    }
                    json!({ "start": start, "end": o.get("end").cloned().unwrap_or(J::Null), "time_zone": null })
                }
                _ => return Err(failed(format!("{path}.date should be an object or `null`, instead was `{}`", shown(v)))),
            },
            "email" | "url" | "phone_number" => match v {
                J::Null => J::Null,
                J::String(s) => {
                    let max = if kind == "url" { 2000 } else { 200 };
                    if s.is_empty() {
                        return Err(failed(format!("{path}.{kind}.length should be ≥ `1`, instead was `0`")));
                    }
                    if utf16(s) > max {
                        return Err(failed(format!("{path}.{kind}.length should be ≤ `{max}`, instead was `{}`", utf16(s))));
                    }
                    v.clone()
                }
                _ => return Err(failed(format!("{path}.{kind} should be a string or `null`, instead was `{}`", shown(v)))),
            },
            "people" => {
                let Some(items) = v.as_array() else {
                    return Err(failed(format!("{path}.people should be an array, instead was `{}`", shown(v))));
                };
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let Some(id) = item["id"].as_str().filter(|id| uuid::Uuid::parse_str(id).is_ok()) else {
                        return Err(failed(format!("{path}.people[{i}].id should be a valid uuid, instead was `{}`", shown(&item["id"]))));
                    };
                    out.push(json!({ "object": "user", "id": id }));
                }
                J::Array(out)
            }
            other => return Err(format!("Unsupported property type in the emulator: {other}")),
        };
        Ok(json!({ "id": p.id, "type": kind, kind: stored }))
    }

    /// A select option by name, created when new (with Notion's color "default").
    fn option(&mut self, db: &str, property: &str, path: &str, name: &str) -> Result<J, String> {
        if name.is_empty() {
            return Err(format!("body failed validation: {path}.name.length should be ≥ `1`, instead was `0`."));
        }
        if utf16(name) > 100 {
            return Err(format!("body failed validation: {path}.name.length should be ≤ `100`, instead was `{}`.", utf16(name)));
        }
        let database = self.databases.get_mut(db).expect("database");
        let p = database.properties.iter_mut().find(|p| p.name == property).expect("property");
        if !p.options.iter().any(|o| o == name) {
            p.options.push(name.to_string());
        }
        Ok(json!({ "id": option_id(name), "name": name, "color": "default" }))
    }

    fn properties(&mut self, db: &str, given: &J) -> Result<Map<String, J>, String> {
        let mut out = Map::new();
        for (name, value) in given.as_object().into_iter().flatten() {
            let stored = self.value(db, name, value)?;
            let canonical = self.databases[db].properties.iter().find(|p| p.name == *name || p.id == *name).unwrap().name.clone();
            out.insert(canonical, stored);
        }
        Ok(out)
    }

    fn page_json(&self, page: &Page, only: &[String]) -> J {
        let db = &self.databases[&page.database];
        let mut properties = Map::new();
        for p in &db.properties {
            if !only.is_empty() && !only.iter().any(|o| *o == p.id || *o == percent_decode(&p.id) || *o == p.name) {
                continue;
            }
            let value = page.properties.get(&p.name).cloned().unwrap_or_else(|| match p.kind.as_str() {
                "formula" => json!({ "id": p.id, "type": "formula", "formula": { "type": "number", "number": null } }),
                kind => json!({ "id": p.id, "type": kind, kind: empty_value(kind) }),
            });
            properties.insert(p.name.clone(), value);
        }
        json!({
            "object": "page", "id": page.id, "created_time": page.created_time, "last_edited_time": now_minute(),
            "created_by": { "object": "user", "id": USER }, "last_edited_by": { "object": "user", "id": USER },
            "cover": null, "icon": null, "parent": { "type": "database_id", "database_id": page.database },
            "archived": page.archived, "in_trash": page.archived, "properties": properties,
            "url": format!("https://www.notion.so/{}", page.id.replace('-', "")), "public_url": null
        })
    }

    fn database_json(&self, db: &Database) -> J {
        let mut properties = Map::new();
        for p in &db.properties {
            let config = match p.kind.as_str() {
                "select" | "multi_select" => {
                    json!({ "options": p.options.iter().map(|o| json!({ "id": option_id(o), "name": o, "color": "default" })).collect::<Vec<_>>() })
                }
                "number" => json!({ "format": "number" }),
                "formula" => json!({ "expression": "prop(\"MRR\") * 12" }),
                _ => json!({}),
            };
            properties.insert(p.name.clone(), json!({ "id": p.id, "name": p.name, "type": p.kind, p.kind.clone(): config }));
        }
        json!({ "object": "database", "id": db.id, "created_time": "2024-01-01T00:00:00.000Z", "last_edited_time": now_minute(),
            "title": [rich_text_object(&db.title)], "description": [], "is_inline": false, "archived": false, "in_trash": false,
            "parent": { "type": "workspace", "workspace": true }, "url": format!("https://www.notion.so/{}", db.id.replace('-', "")),
            "public_url": null, "properties": properties })
    }

    /// Whether a page passes a query filter (developers.notion.com/reference/post-database-query-filter).
    fn matches(&self, db: &Database, page: &Page, filter: &J) -> Result<bool, String> {
        if let Some(any) = filter["or"].as_array() {
            if any.len() > 100 {
                return Err(format!("body failed validation: body.filter.or.length should be ≤ `100`, instead was `{}`.", any.len()));
            }
            for f in any {
                if self.matches(db, page, f)? {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        if let Some(all) = filter["and"].as_array() {
            for f in all {
                if !self.matches(db, page, f)? {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        let name = filter["property"].as_str().unwrap_or_default();
        let Some(p) = db.properties.iter().find(|p| p.name == name || p.id == name) else {
            return Err(format!("Could not find property with name or id: {name}"));
        };
        let Some(condition) = filter.get(&p.kind) else {
            return Err(format!("body failed validation: body.filter.{} should be defined, instead was `undefined`.", p.kind));
        };
        let page_value = page.properties.get(&p.name).map(|v| v[&p.kind].clone()).unwrap_or_else(|| empty_value(&p.kind));
        let text = || page_value.as_array().map(|a| a.iter().map(|t| t["plain_text"].as_str().unwrap_or("")).collect::<String>());
        Ok(match (p.kind.as_str(), condition.as_object().and_then(|c| c.iter().next())) {
            ("title" | "rich_text", Some((op, v))) => {
                let t = text().unwrap_or_default();
                match op.as_str() {
                    "equals" => Some(t.as_str()) == v.as_str(),
                    "is_empty" => t.is_empty(),
                    "is_not_empty" => !t.is_empty(),
                    _ => return Err(format!("The emulator does not model the {op} filter")),
                }
            }
            ("number", Some((op, v))) => match op.as_str() {
                "equals" => page_value.as_f64().is_some() && page_value.as_f64() == v.as_f64(),
                "is_empty" => page_value.is_null(),
                "is_not_empty" => !page_value.is_null(),
                _ => return Err(format!("The emulator does not model the {op} filter")),
            },
            _ => return Err(format!("The emulator does not model filters on {} properties", p.kind)),
        })
    }

    fn query(&mut self, db_id: &str, body: &J, only: &[String]) -> (u16, J) {
        let Some(db) = self.database(db_id).cloned() else { return not_found("database", db_id) };
        let size = match &body["page_size"] {
            J::Null => 100,
            J::Number(n) if n.as_u64().is_some_and(|n| (1..=100).contains(&n)) => n.as_u64().unwrap() as usize,
            other => return invalid(format!("body failed validation: body.page_size should be ≤ `100`, instead was `{}`.", shown(other))),
        };
        let mut listed: Vec<&Page> = Vec::new();
        for page in self.pages.iter().filter(|p| p.database == db.id && !p.archived) {
            match &body["filter"] {
                J::Null => listed.push(page),
                filter => match self.matches(&db, page, filter) {
                    Ok(true) => listed.push(page),
                    Ok(false) => {}
                    Err(m) => return invalid(m),
                },
            }
        }
        // No sort given: newest first.
        listed.sort_by_key(|p| std::cmp::Reverse(p.seq));
        let start = match body["start_cursor"].as_str() {
            None => 0,
            Some(cursor) => match listed.iter().position(|p| p.id == cursor) {
                Some(at) => at,
                None => {
                    return invalid(format!(
                        "body failed validation: body.start_cursor should be a valid cursor, instead was `\"{cursor}\"`."
                    ))
                }
            },
        };
        let page: Vec<J> = listed.iter().skip(start).take(size).map(|p| self.page_json(p, only)).collect();
        let next = listed.get(start + size).map(|p| J::String(p.id.clone())).unwrap_or(J::Null);
        (
            200,
            json!({ "object": "list", "results": page, "next_cursor": next, "has_more": !next.is_null(),
            "type": "page_or_database", "page_or_database": {}, "request_id": request_id() }),
        )
    }

    fn create(&mut self, body: &J) -> (u16, J) {
        let Some(db_id) = body["parent"]["database_id"].as_str() else {
            return invalid("body failed validation: body.parent.database_id should be defined, instead was `undefined`.".into());
        };
        let Some(db) = self.database(db_id).map(|d| d.id.clone()) else { return not_found("database", db_id) };
        let properties = match self.properties(&db, &body["properties"]) {
            Ok(p) => p,
            Err(m) => return invalid(m),
        };
        self.seq += 1;
        let page = Page {
            id: uuid::Uuid::new_v4().to_string(),
            database: db,
            seq: self.seq,
            created_time: now_minute(),
            properties,
            archived: false,
        };
        let answer = self.page_json(&page, &[]);
        self.pages.push(page);
        (200, answer)
    }

    fn update(&mut self, page_id: &str, body: &J) -> (u16, J) {
        let id = normalise_id(page_id).unwrap_or_default();
        let Some(at) = self.pages.iter().position(|p| p.id == id && self.databases.get(&p.database).is_some_and(|d| d.shared)) else {
            return not_found("page", page_id);
        };
        let archive = body["archived"].as_bool().or(body["in_trash"].as_bool());
        if self.pages[at].archived && archive != Some(false) {
            return invalid("Can't edit block that is archived. You must unarchive the block before editing.".into());
        }
        let db = self.pages[at].database.clone();
        let properties = match body.get("properties") {
            Some(p) => match self.properties(&db, p) {
                Ok(p) => p,
                Err(m) => return invalid(m),
            },
            None => Map::new(),
        };
        let page = &mut self.pages[at];
        page.properties.extend(properties);
        if let Some(a) = archive {
            page.archived = a;
        }
        let page = page.clone();
        (200, self.page_json(&page, &[]))
    }

    fn handle(&mut self, method: &Method, path: &str, query: &str, body: &J) -> (u16, J) {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let only: Vec<String> = query.split('&').filter_map(|kv| kv.strip_prefix("filter_properties=")).map(percent_decode).collect();
        match (method.as_str(), parts.as_slice()) {
            ("GET", ["v1", "databases", id]) => match self.database(id) {
                Some(db) => (200, self.database_json(db)),
                None => not_found("database", id),
            },
            ("POST", ["v1", "databases", id, "query"]) => self.query(id, body, &only),
            ("POST", ["v1", "pages"]) => self.create(body),
            ("PATCH", ["v1", "pages", id]) => self.update(id, body),
            _ => error(400, "invalid_request_url", "Invalid request URL."),
        }
    }

    /// Takes one request from the bucket; `Err(seconds to wait)` when it is empty.
    fn admit(&mut self) -> Result<(), u64> {
        let now = Instant::now();
        self.bucket = (self.bucket + now.duration_since(self.refilled).as_secs_f64() * self.rate_per_second).min(self.burst);
        self.refilled = now;
        if self.bucket >= 1.0 {
            self.bucket -= 1.0;
            return Ok(());
        }
        Err((((1.0 - self.bucket) / self.rate_per_second).ceil() as u64).max(1))
    }
}

/// A property id Notion would give an option (stable per name here).
fn option_id(name: &str) -> String {
    let h = name.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("{:08x}-0000-4000-8000-000000000000", h)
}

/// An id with or without dashes, dashed (Notion takes both).
fn normalise_id(raw: &str) -> Option<String> {
    let hex: String = raw.chars().filter(|c| *c != '-').collect::<String>().to_lowercase();
    (hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn not_found(what: &str, id: &str) -> (u16, J) {
    error(
        404,
        "object_not_found",
        &format!("Could not find {what} with ID: {id}. Make sure the relevant pages and databases are shared with your integration."),
    )
}

impl Notion {
    pub async fn start() -> Notion {
        let state = State {
            databases: HashMap::from([(DB.to_string(), customers())]),
            pages: Vec::new(),
            tokens: HashSet::from([TOKEN.to_string()]),
            seq: 0,
            rate_per_second: 3.0,
            burst: 10.0,
            bucket: 10.0,
            refilled: Instant::now(),
            rate_refusals: 0,
            log: Vec::new(),
            faults: VecDeque::new(),
            random_faults: None,
            latency: None,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind emulator");
        let addr = listener.local_addr().expect("emulator address");
        let notion = Notion { state: Arc::new(Mutex::new(state)), base_url: format!("http://{addr}"), in_flight: Default::default() };
        let app = Router::new().fallback(serve).with_state(notion.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        notion
    }

    /// A `[destinations.NAME]` table for this emulator.
    pub fn destination_toml(&self, extra: &str) -> String {
        format!("kind = \"notion\"\ntoken = \"{TOKEN}\"\nbase_url = \"{}\"\nretry_initial_delay = \"20ms\"\n{extra}\n", self.base_url)
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("emulator state"))
    }

    /// The live (not archived) pages of the test database, oldest first.
    pub fn pages(&self) -> Vec<Page> {
        self.with(|s| s.pages.iter().filter(|p| p.database == DB && !p.archived).cloned().collect())
    }

    /// Every page of the test database, archived ones too.
    pub fn all_pages(&self) -> Vec<Page> {
        self.with(|s| s.pages.iter().filter(|p| p.database == DB).cloned().collect())
    }

    /// The live pages whose `Customer ID` is `key`.
    pub fn by_key(&self, key: &str) -> Vec<Page> {
        self.pages().into_iter().filter(|p| p.properties.contains_key("Customer ID") && p.text("Customer ID") == key).collect()
    }

    /// The one live page of `key`.
    pub fn page(&self, key: &str) -> Page {
        let mut pages = self.by_key(key);
        assert_eq!(pages.len(), 1, "pages with Customer ID {key}");
        pages.remove(0)
    }

    /// A page made by hand in Notion (not through the API: no request is logged or counted).
    pub fn add_by_hand(&self, key: &str, name: &str) -> String {
        self.with(|s| {
            s.seq += 1;
            let id = uuid::Uuid::new_v4().to_string();
            let mut properties = Map::new();
            properties.insert("Customer ID".into(), json!({ "id": "%3AUPp", "type": "rich_text", "rich_text": [rich_text_object(key)] }));
            properties.insert("Name".into(), json!({ "id": "title", "type": "title", "title": [rich_text_object(name)] }));
            s.pages.push(Page { id: id.clone(), database: DB.into(), seq: s.seq, created_time: now_minute(), properties, archived: false });
            id
        })
    }

    /// Moves a page to the trash by hand.
    pub fn archive_by_hand(&self, page_id: &str) {
        self.with(|s| s.pages.iter_mut().filter(|p| p.id == page_id).for_each(|p| p.archived = true));
    }

    pub fn log(&self) -> Vec<Logged> {
        self.with(|s| s.log.clone())
    }

    pub fn clear_log(&self) {
        self.with(|s| s.log.clear());
    }

    /// Answered requests of `method` whose path starts with `/v1/{prefix}`.
    pub fn requests(&self, method: &str, prefix: &str) -> Vec<Logged> {
        self.log().into_iter().filter(|l| l.method == method && l.path.starts_with(&format!("/v1/{prefix}"))).collect()
    }

    pub fn fail_next(&self, faults: &[Fault]) {
        self.with(|s| s.faults.extend(faults.iter().copied()));
    }

    /// A rate limit the tests can go fast under.
    pub fn fast(&self) {
        self.with(|s| {
            s.rate_per_second = 1000.0;
            s.burst = 1000.0;
            s.bucket = 1000.0;
        });
    }
}

async fn serve(AxumState(notion): AxumState<Notion>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let _serving = notion.in_flight.enter();
    let too_large = body.len() > 500 * 1000;
    let parsed: Result<J, _> = if body.is_empty() { Ok(J::Null) } else { serde_json::from_slice(&body) };
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let shown_path = if query.is_empty() { path.clone() } else { format!("{path}?{query}") };
    let (fault, logged) = notion.with(|s| {
        let logged_body = parsed.as_ref().cloned().unwrap_or(J::Null);
        s.log.push(Logged { at: Instant::now(), method: method.to_string(), path: shown_path.clone(), body: logged_body, status: 0 });
        let random = s.random_faults.as_mut().and_then(|r| r.pick());
        (s.faults.pop_front().or(random), s.log.len() - 1)
    });
    if let Some(Fault::Drop) = fault {
        super::faults::drop_connection();
    }
    let (status, answer, retry_after, latency) = notion.with(|s| {
        let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let version = headers.get("notion-version").and_then(|v| v.to_str().ok());
        if let Some(Fault::Revoke) = fault {
            s.tokens.clear();
        }
        let mut retry_after = None;
        let (status, answer) = match fault {
            Some(Fault::Status(code)) => {
                if code == 429 {
                    retry_after = Some(1);
                }
                match code {
                    429 => error(429, "rate_limited", "You have been rate limited. Please try again in a few minutes."),
                    409 => error(409, "conflict_error", "Conflict occurred while saving. Please try again."),
                    502 => error(502, "bad_gateway", "Notion encountered an issue while attempting to complete this request."),
                    503 => error(503, "service_unavailable", "Notion is unavailable. This can occur when the time to respond to a request takes longer than 60 seconds, the maximum request timeout. Please try again later."),
                    504 => error(504, "gateway_timeout", "Notion timed out while attempting to complete this request. Please try again later."),
                    529 => error(529, "service_overload", "Notion is currently experiencing high load. Please try again later."),
                    c => error(c, "internal_server_error", "Unexpected error occurred."),
                }
            }
            _ => match version {
                None => error(400, "missing_version", "Notion-Version header failed validation: Notion-Version header should be defined, instead was `undefined`."),
                Some(v) if !VERSIONS.contains(&v) => error(400, "missing_version", &format!("Notion-Version header failed validation: Notion-Version header should be a valid version, instead was `\"{v}\"`.")),
                Some(_) if !bearer.is_some_and(|t| s.tokens.contains(t)) => error(401, "unauthorized", "API token is invalid."),
                Some(_) => match s.admit() {
                    Err(wait) => {
                        s.rate_refusals += 1;
                        retry_after = Some(wait);
                        error(429, "rate_limited", "You have been rate limited. Please try again in a few minutes.")
                    }
                    Ok(()) if too_large => invalid("Request body too large.".into()),
                    Ok(()) => match &parsed {
                        Err(e) => error(400, "invalid_json", &format!("Error parsing JSON body: {e}")),
                        Ok(body) => s.handle(&method, &path, &query, body),
                    },
                },
            },
        };
        if let Some(entry) = s.log.get_mut(logged) {
            entry.status = status;
        }
        (status, answer, retry_after, s.latency.as_mut().map(|l| l.next()))
    });
    super::faults::answer_after(latency).await;
    match fault {
        Some(Fault::DropAfter) => super::faults::drop_connection(),
        Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
        _ => {}
    }
    let code = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (code, [("content-type", "application/json; charset=utf-8")], answer.to_string()).into_response();
    response.headers_mut().insert("x-notion-request-id", axum::http::HeaderValue::from_str(&request_id()).expect("header"));
    if let Some(wait) = retry_after {
        response.headers_mut().insert("retry-after", axum::http::HeaderValue::from_str(&wait.to_string()).expect("header"));
    }
    response
}

/// A DuckDB project syncing to a Notion emulator through the destination `notion`: what the
/// Notion tests share.
pub struct Workspace {
    pub env: super::Env,
    pub notion: Notion,
}

impl Workspace {
    /// The project: `notion` with `extra` settings, the source set up by `setup` (SQL), and the
    /// sync `customers` with this `header` and `model`. `fast`: the emulator's rate limit out of
    /// the way (the client's is set in `extra`).
    pub async fn start(extra: &str, setup: &str, header: &str, model: &str, fast: bool) -> Workspace {
        let env = super::Env::new(super::SourceKind::DuckDb, super::StateKind::Sqlite).await;
        let notion = Notion::start().await;
        if fast {
            notion.fast();
        }
        env.add_destination("notion", &notion.destination_toml(extra));
        env.exec(setup).await;
        env.write_sync("customers", header, model);
        Workspace { env, notion }
    }

    /// Runs `customers`, which must succeed.
    pub async fn run_ok(&self) -> sluice::engine::SyncReport {
        let report = self.env.run("customers").await;
        assert_eq!(report.status, sluice::state::RunStatus::Success, "run failed: {:?} {:?}", report.error, report.warnings);
        report
    }
}

/// How long a test waits for something to happen before it fails.
pub const DEADLINE: Duration = Duration::from_secs(30);
