//! One run of one sync against a Notion database: one request per row (Notion has no batch
//! write): `POST /v1/pages` creates, `PATCH /v1/pages/{id}` updates, clears and archives.
//!
//! Finding a row's page, in order: the page id stored from an earlier write; else the key
//! index read when the run opened (`Index`, when the database fit in `scan_limit` queries);
//! else one query per batch with an `or` filter of the batch's keys. A stored page that is gone
//! (archived by hand, deleted for good) is looked up again by key, once. A key found on several
//! pages updates the first created and warns.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{json, Map, Value as J};

use super::client::{is_archived_refusal, About, NotionClient};
use super::config::PAGE_SIZE;
use super::encoding::{empty, encode, key_filter, key_text, page_key, MAX_PAYLOAD};
use super::Plan;
use crate::destinations::http::CallError;
use crate::destinations::{settle, DestinationError, Op, RowOp, RowOutcome, Target, Writer};
use crate::project::Mode;
use crate::value::Value;

/// Keys named in duplicate warnings per run; more are counted.
const DUPLICATES_SHOWN: usize = 10;
/// Answers (of 100 pages) one key lookup follows at most.
const LOOKUP_PAGES: usize = 20;

/// What the run knows of the database's pages, shared by the writer's forks.
#[derive(Default)]
struct Index {
    /// Every live page's key was read when the run opened: a key not here has no page.
    complete: bool,
    /// Key -> the live pages holding it, first created first.
    pages: HashMap<String, Vec<String>>,
    /// Page id -> key, for the live pages read or written.
    live: HashMap<String, String>,
    /// Keys whose create got no answer: a page may exist for them; looked up before writing.
    uncertain: HashSet<String>,
    /// Keys already warned about (found on several pages).
    warned: HashSet<String>,
    duplicates: usize,
}

impl Index {
    fn add(&mut self, key: &str, page: &str) {
        let pages = self.pages.entry(key.to_string()).or_default();
        if !pages.iter().any(|p| p == page) {
            pages.push(page.to_string());
        }
        self.live.insert(page.to_string(), key.to_string());
    }

    fn forget(&mut self, page: &str) {
        if let Some(key) = self.live.remove(page) {
            if let Some(pages) = self.pages.get_mut(&key) {
                pages.retain(|p| p != page);
                if pages.is_empty() {
                    self.pages.remove(&key);
                }
            }
        }
    }
}

/// A page as a query lists it: its id, creation time and key.
struct Listed {
    id: String,
    created: String,
    key: String,
}

pub struct NotionWriter {
    client: Arc<NotionClient>,
    target: Target,
    plan: Arc<Plan>,
    index: Arc<Mutex<Index>>,
    warnings: Vec<String>,
}

/// What a row's page request came to.
enum Sent {
    Done(String),
    /// The page is gone: deleted for good, or archived (in the trash).
    Gone,
    Refused(String),
}

impl NotionWriter {
    /// Opens the run: outside insert mode, reads the database's keys, up to `scan_limit` queries.
    pub async fn open(client: Arc<NotionClient>, target: Target, plan: Plan, scan_limit: u32) -> Result<Self, DestinationError> {
        let mut writer = NotionWriter { client, target, plan: Arc::new(plan), index: Default::default(), warnings: Vec::new() };
        if writer.target.mode != Mode::Insert && scan_limit > 0 {
            writer.scan(scan_limit).await?;
        }
        Ok(writer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One query of the database (`POST /v1/databases/{id}/query`), reading only the key
    /// property (`filter_properties`): the pages listed and the next cursor.
    async fn query(&self, filter: Option<J>, cursor: Option<String>) -> Result<(Vec<Listed>, Option<String>), DestinationError> {
        let p = &self.plan;
        let mut body = json!({ "page_size": PAGE_SIZE });
        if let Some(f) = filter {
            body["filter"] = f;
        }
        if let Some(c) = cursor {
            body["start_cursor"] = J::String(c);
        }
        let path = match p.key_id.as_str() {
            "" => format!("databases/{}/query", p.database_id),
            id => format!("databases/{}/query?filter_properties={}", p.database_id, urlencoding(id)),
        };
        let (_, answer) = self.client.call(Method::POST, &path, Some(&body), About::Database).await.map_err(DestinationError::from)?;
        // An answer that is not a page list (a proxy's page, another API at `base_url`) must not
        // read as "no pages": every row would be created again.
        let more = answer["has_more"] == true;
        if answer["object"] != "list" || !answer["results"].is_array() || (more && !answer["next_cursor"].is_string()) {
            return Err(DestinationError::transient(format!(
                "Notion's answer to a database query is not a page list (check `base_url`): {}",
                answer.to_string().chars().take(200).collect::<String>()
            )));
        }
        let listed = answer["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["archived"] != true && r["in_trash"] != true)
            .filter_map(|r| {
                Some(Listed {
                    id: r["id"].as_str()?.to_string(),
                    created: r["created_time"].as_str().unwrap_or_default().to_string(),
                    key: page_key(&r["properties"][&p.key_property], &p.key_type)?,
                })
            })
            .collect();
        let next = if more { answer["next_cursor"].as_str().map(str::to_string) } else { None };
        Ok((listed, next))
    }

    /// Reads every page's key, up to `limit` queries; the index is complete when they fit.
    async fn scan(&mut self, limit: u32) -> Result<(), DestinationError> {
        let mut all = Vec::new();
        let mut cursor = None;
        for _ in 0..limit {
            let (listed, next) = self.query(None, cursor).await?;
            all.extend(listed);
            cursor = next;
            if cursor.is_none() {
                break;
            }
        }
        if cursor.is_some() {
            tracing::info!(
                database = %self.plan.database_id,
                "the database holds more pages than `scan_limit` queries read: pages are looked up by key per batch, and pages \
                 archived by hand are not noticed"
            );
            return Ok(());
        }
        let warnings = {
            let mut index = self.lock();
            let warnings = self.record(&mut index, all);
            index.complete = true;
            warnings
        };
        self.warnings.extend(warnings);
        Ok(())
    }

    /// Adds listed pages to the index, first created first, and warns of keys on several pages.
    fn record(&self, index: &mut Index, mut listed: Vec<Listed>) -> Vec<String> {
        listed.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
        for l in &listed {
            index.add(&l.key, &l.id);
        }
        let mut warnings = Vec::new();
        let mut dups: Vec<String> =
            listed.iter().map(|l| l.key.clone()).filter(|k| index.pages.get(k).is_some_and(|p| p.len() > 1)).collect();
        dups.sort();
        dups.dedup();
        for key in dups {
            if !index.warned.insert(key.clone()) {
                continue;
            }
            index.duplicates += 1;
            let pages = &index.pages[&key];
            if index.duplicates <= DUPLICATES_SHOWN {
                warnings.push(format!(
                    "{} = {key} is on {} pages of the Notion database ({}): sluice updates the first created, {}, only (archive the others)",
                    self.plan.key_property,
                    pages.len(),
                    pages.join(", "),
                    pages[0]
                ));
            } else if index.duplicates == DUPLICATES_SHOWN + 1 {
                warnings.push("... and more keys found on several pages of the Notion database".to_string());
            }
        }
        warnings
    }

    /// The pages of `keys`, looked up by query (an `or` filter, at most 100 keys each).
    async fn lookup(&mut self, keys: Vec<String>) -> Result<HashMap<String, String>, DestinationError> {
        let mut found = Vec::new();
        for chunk in keys.chunks(PAGE_SIZE) {
            let filter = key_filter(&self.plan.key_property, &self.plan.key_type, chunk);
            let mut cursor = None;
            // At most 100 keys, so a few pages of answers (duplicates); a server that keeps
            // saying "more" is not followed for ever.
            for _ in 0..LOOKUP_PAGES {
                let (listed, next) = self.query(Some(filter.clone()), cursor).await?;
                found.extend(listed);
                cursor = next;
                if cursor.is_none() {
                    break;
                }
            }
            if cursor.is_some() {
                return Err(DestinationError::transient(format!(
                    "Notion kept listing pages for {} keys after {LOOKUP_PAGES} pages of answers",
                    chunk.len()
                )));
            }
        }
        let asked: HashSet<&String> = keys.iter().collect();
        found.retain(|l| asked.contains(&l.key));
        let (warnings, pages) = {
            let mut index = self.lock();
            let warnings = self.record(&mut index, found);
            for k in &keys {
                index.uncertain.remove(k);
            }
            let pages = keys.iter().filter_map(|k| Some((k.clone(), index.pages.get(k)?.first()?.clone()))).collect();
            (warnings, pages)
        };
        self.warnings.extend(warnings);
        Ok(pages)
    }

    /// The row's key as the key property compares it.
    fn key_of(&self, op: &RowOp) -> Option<String> {
        key_text(op.key.first()?, &self.plan.key_type)
    }

    /// The page a stored page id names, when the run can trust it: with a complete index, only
    /// a page still live (one archived by hand is not).
    /// Record ids are `DATABASE/PAGE`: a page of another database (the sync pointed elsewhere
    /// since) is not this row's page here.
    fn stored(&self, op: &RowOp) -> Option<String> {
        let (database, id) = op.destination_id.as_deref()?.split_once('/')?;
        if database != self.plan.database_id || id.is_empty() {
            return None;
        }
        let id = id.to_string();
        let index = self.lock();
        (!index.complete || index.live.contains_key(&id)).then_some(id)
    }

    /// Whether a row's page must be looked up by query: no trusted stored id, and the index
    /// cannot say (incomplete, or a create of that key went unanswered).
    /// In insert mode every key is looked up (one query per batch): a create whose answer was
    /// lost in an earlier, killed run must not be made twice.
    fn needs_lookup(&self, op: &RowOp, key: &str) -> bool {
        if op.op == Op::Insert {
            return true;
        }
        if self.stored(op).is_some() {
            return false;
        }
        let index = self.lock();
        !index.complete || index.uncertain.contains(key)
    }

    /// The properties a row writes: the key into the key property, then each mapped field
    /// written (a skipped NULL is left out), or with `clear`, each mapped field emptied.
    fn properties(&self, op: &RowOp, clear: bool) -> Result<J, String> {
        let p = &self.plan;
        let mut map = Map::new();
        if !clear {
            let key = op.key.first().cloned().unwrap_or(Value::Null);
            let value = encode(&key, &p.key_type, &p.key_property)?;
            map.insert(p.key_property.clone(), value);
        }
        for (j, (name, kind)) in self.target.fields.iter().zip(&p.types).enumerate() {
            // The key stays: in its property, and in any field that carries it.
            if *name == p.key_property || (clear && self.target.key_fields.contains(&Some(j))) {
                continue;
            }
            if clear {
                map.insert(name.clone(), empty(kind, name));
            } else if self.target.writes(op, j) {
                let value = op.fields.get(j).unwrap_or(&Value::Null);
                map.insert(name.clone(), encode(value, kind, name)?);
            }
        }
        Ok(J::Object(map))
    }

    /// A request body, or why it is too large for Notion (500 KB per request).
    fn sized(body: J) -> Result<J, String> {
        let size = serde_json::to_vec(&body).map(|b| b.len()).unwrap_or(0);
        if size > MAX_PAYLOAD {
            return Err(format!(
                "the page's properties take {} KB; Notion takes at most 500 KB per request (shorten the row's text in the model)",
                size / 1000
            ));
        }
        Ok(body)
    }

    async fn create(&self, key: &str, properties: J) -> Result<Sent, DestinationError> {
        let body = json!({ "parent": { "database_id": self.plan.database_id }, "properties": properties });
        match self.client.call(Method::POST, "pages", Some(&body), About::Database).await {
            Ok((_, page)) => match page["id"].as_str().filter(|id| !id.is_empty()) {
                Some(id) => {
                    self.lock().add(key, id);
                    Ok(Sent::Done(id.to_string()))
                }
                // Created, but which page is unknown: looked up before the row is written again.
                None => {
                    self.lock().uncertain.insert(key.to_string());
                    Err(DestinationError::transient("Notion's answer to a page create names no page id"))
                }
            },
            Err(CallError::Refused(reason)) => Ok(Sent::Refused(reason)),
            Err(CallError::Unanswered(e)) => {
                // The page may have been created: look the key up before writing it again.
                self.lock().uncertain.insert(key.to_string());
                Err(e)
            }
            Err(CallError::Failed(e)) => Err(e),
        }
    }

    async fn patch(&self, page: &str, body: J) -> Result<Sent, DestinationError> {
        match self.client.call(Method::PATCH, &format!("pages/{page}"), Some(&body), About::Page).await {
            Ok((404, _)) => {
                self.lock().forget(page);
                Ok(Sent::Gone)
            }
            Ok(_) => Ok(Sent::Done(page.to_string())),
            Err(CallError::Refused(reason)) if is_archived_refusal(&reason) => {
                self.lock().forget(page);
                Ok(Sent::Gone)
            }
            Err(CallError::Refused(reason)) => Ok(Sent::Refused(reason)),
            Err(e) => Err(e.into()),
        }
    }

    /// Upsert and update: the row's page is updated, or (upsert) created when there is none.
    async fn put(&mut self, op: &RowOp, key: &str, page: Option<String>) -> Result<RowOutcome, DestinationError> {
        let properties = match self.properties(op, false).and_then(|p| Self::sized(json!({ "properties": p }))) {
            Ok(body) => body,
            Err(reason) => return Ok(RowOutcome::Rejected(reason)),
        };
        let mut page = page;
        let mut looked_again = false;
        loop {
            let Some(id) = page.take() else {
                return match op.op {
                    Op::Update => Ok(RowOutcome::Rejected(format!(
                        "no page of the Notion database has {} = {key}: update mode changes existing pages only",
                        self.plan.key_property
                    ))),
                    _ => Ok(outcome(self.create(key, properties["properties"].clone()).await?)),
                };
            };
            match self.patch(&id, properties.clone()).await? {
                Sent::Gone if !looked_again => {
                    // Archived or deleted since it was written: find the key's page again, once.
                    looked_again = true;
                    page = self.find(key).await?;
                }
                Sent::Gone => page = None,
                sent => {
                    self.lock().add(key, &id);
                    return Ok(outcome(sent));
                }
            }
        }
    }

    /// The key's live page now: from a complete index, else by query.
    async fn find(&mut self, key: &str) -> Result<Option<String>, DestinationError> {
        {
            let index = self.lock();
            if index.complete && !index.uncertain.contains(key) {
                return Ok(index.pages.get(key).and_then(|p| p.first().cloned()));
            }
        }
        Ok(self.lookup(vec![key.to_string()]).await?.remove(key))
    }

    /// Delete (archive) and clear: the page stays found or not; a page already gone is done.
    async fn remove(&mut self, op: &RowOp, key: Option<&str>, page: Option<String>) -> Result<RowOutcome, DestinationError> {
        let clear = op.op == Op::Clear;
        let body = if clear {
            match self.properties(op, true) {
                Ok(p) => json!({ "properties": p }),
                Err(reason) => return Ok(RowOutcome::Rejected(reason)),
            }
        } else {
            json!({ "archived": true })
        };
        let Some(id) = page else {
            return Ok(match key {
                Some(_) => RowOutcome::written(),
                None => RowOutcome::Rejected(format!(
                    "no Notion page id is stored for this row and its key is empty: {} the page by hand",
                    if clear { "clear" } else { "archive" }
                )),
            });
        };
        let outcome = match self.patch(&id, body).await? {
            Sent::Done(id) => {
                if !clear {
                    self.lock().forget(&id);
                }
                RowOutcome::Written { destination_id: Some(id) }
            }
            Sent::Gone => RowOutcome::written(),
            Sent::Refused(reason) => return Ok(RowOutcome::Rejected(reason)),
        };
        // A removed row's key on other pages too (the duplicates warned about): they go as well,
        // or the database would keep the row the model no longer has.
        if let (false, Some(key)) = (clear, key) {
            let others: Vec<String> = self.lock().pages.get(key).cloned().unwrap_or_default();
            for other in others.into_iter().filter(|p| *p != id) {
                match self.patch(&other, json!({ "archived": true })).await? {
                    Sent::Done(p) => self.lock().forget(&p),
                    Sent::Gone => {}
                    Sent::Refused(reason) => return Ok(RowOutcome::Rejected(reason)),
                }
            }
        }
        Ok(outcome)
    }
}

fn outcome(sent: Sent) -> RowOutcome {
    match sent {
        Sent::Done(id) => RowOutcome::Written { destination_id: Some(id) },
        Sent::Gone => RowOutcome::Retryable("the page went away while it was written".into()),
        Sent::Refused(reason) => RowOutcome::Rejected(reason),
    }
}

/// A property id in a query string (Notion's ids hold characters such as `%` and `:`).
fn urlencoding(id: &str) -> String {
    // Notion gives property ids already URL-encoded (`%3AUPp`); anything else is encoded here.
    id.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '_' | '.' | '~' | '%' => c.to_string(),
            c => c.to_string().bytes().map(|b| format!("%{b:02X}")).collect(),
        })
        .collect()
}

#[async_trait]
impl Writer for NotionWriter {
    fn fork(&self) -> Option<Box<dyn Writer>> {
        Some(Box::new(NotionWriter {
            client: self.client.clone(),
            target: self.target.clone(),
            plan: self.plan.clone(),
            index: self.index.clone(),
            warnings: Vec::new(),
        }))
    }

    async fn write(&mut self, batch: &[RowOp]) -> Result<Vec<RowOutcome>, DestinationError> {
        let mut out: Vec<Option<RowOutcome>> = vec![None; batch.len()];
        let keys: Vec<Option<String>> = batch.iter().map(|op| self.key_of(op)).collect();
        for (i, op) in batch.iter().enumerate() {
            if keys[i].is_none() && !matches!(op.op, Op::Delete | Op::Clear) {
                out[i] = Some(RowOutcome::Rejected(format!(
                    "the key `{}` is empty: Notion pages are matched by it",
                    self.target.key_columns.first().map(String::as_str).unwrap_or("")
                )));
            }
        }
        let sent = async {
            // One query finds the pages of every row that needs a lookup.
            let wanted: Vec<String> = batch
                .iter()
                .zip(&keys)
                .zip(&out)
                .filter(|((op, key), o)| o.is_none() && key.as_ref().is_some_and(|k| self.needs_lookup(op, k)))
                .filter_map(|((_, key), _)| key.clone())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let mut found = if wanted.is_empty() { HashMap::new() } else { self.lookup(wanted).await? };
            for (i, op) in batch.iter().enumerate() {
                if out[i].is_some() {
                    continue;
                }
                let key = keys[i].clone();
                let page = match (&key, op.op) {
                    (_, Op::Insert) => None,
                    (Some(k), _) => match self.stored(op) {
                        Some(id) => Some(id),
                        None => match found.remove(k) {
                            Some(id) => Some(id),
                            None => {
                                let index = self.lock();
                                index.pages.get(k).and_then(|p| p.first().cloned())
                            }
                        },
                    },
                    (None, _) => self.stored(op),
                };
                let outcome = match op.op {
                    Op::Delete | Op::Clear => self.remove(op, key.as_deref(), page).await,
                    // An insert whose create got no answer, and was carried out after all.
                    Op::Insert if key.as_ref().is_some_and(|k| found.contains_key(k)) => {
                        Ok(RowOutcome::Written { destination_id: key.as_ref().and_then(|k| found.remove(k)) })
                    }
                    Op::Insert => {
                        let k = key.clone().unwrap_or_default();
                        match self.properties(op, false).and_then(|p| Self::sized(json!({ "properties": p }))) {
                            Ok(body) => self.create(&k, body["properties"].clone()).await.map(outcome),
                            Err(reason) => Ok(RowOutcome::Rejected(reason)),
                        }
                    }
                    _ => self.put(op, key.as_deref().unwrap_or_default(), page).await,
                };
                out[i] = Some(outcome?);
            }
            Ok::<(), DestinationError>(())
        }
        .await;
        let database = &self.plan.database_id;
        for o in out.iter_mut().flatten() {
            if let RowOutcome::Written { destination_id: Some(id) } = o {
                *id = format!("{database}/{id}");
            }
        }
        settle(out, sent, "Notion")
    }

    fn holds(&self, key: &[Value]) -> Option<bool> {
        let index = self.lock();
        if self.target.mode == Mode::Insert || !index.complete {
            return None;
        }
        let key = key_text(key.first()?, &self.plan.key_type)?;
        Some(index.pages.contains_key(&key))
    }

    fn reads_keys(&self) -> bool {
        self.target.mode != Mode::Insert && self.lock().complete
    }

    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}
