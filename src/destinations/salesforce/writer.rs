//! One run of one sync against a Salesforce object. Batches of up to 200 rows go through sObject
//! Collections (one request per kind of operation); in runs larger than `bulk_threshold` the
//! engine sends bigger batches, and their upserts become one Bulk API 2.0 job each.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{json, Value as J};

use super::bulk;
use super::client::{Body, SfClient};
use super::config::MAX_COLLECTION;
use super::encoding::{bulk_csv, bulk_error, gone, outcome, record, soql_literal, soql_quote};
use super::Plan;
use crate::destinations::http::CallError;
use crate::destinations::{settle, undecided, DestinationError, Op, RowOp, RowOutcome, Target, Writer};
use crate::value::Value;

#[derive(Clone)]
pub struct BulkSettings {
    pub threshold: u64,
    pub batch_rows: usize,
    pub poll: Duration,
    pub timeout: Duration,
}

pub struct SalesforceWriter {
    client: Arc<SfClient>,
    target: Target,
    plan: Plan,
    bulk: BulkSettings,
}

type Out = [Option<RowOutcome>];

impl SalesforceWriter {
    pub fn new(client: Arc<SfClient>, target: Target, plan: Plan, bulk: BulkSettings) -> Self {
        SalesforceWriter { client, target, plan, bulk }
    }

    /// The external id of a row: from its fields, or for a delete from its key.
    fn ext_of(&self, op: &RowOp) -> Option<String> {
        let value: &Value = match op.op {
            Op::Delete | Op::Clear => op.key.get(self.plan.key_ext?)?,
            _ => op.fields.get(self.plan.ext_field)?,
        };
        Some(value.to_text()).filter(|s| !s.trim().is_empty())
    }

    /// The record for a row: the fields it writes (see [`Self::keeps`]), and its `Id` if known.
    fn record(&self, op: &RowOp, id: Option<&str>, current: Option<&J>) -> J {
        let (names, values): (Vec<String>, Vec<Value>) = self
            .target
            .fields
            .iter()
            .zip(&op.fields)
            .enumerate()
            .filter(|(j, _)| !self.keeps(op, *j, current))
            .map(|(_, (n, v))| (n.clone(), v.clone()))
            .unzip();
        let kinds: Vec<&str> =
            self.plan.kinds.iter().enumerate().filter(|(j, _)| !self.keeps(op, *j, current)).map(|(_, k)| k.as_str()).collect();
        record(&self.plan.object, &names, &values, &kinds, id.map(|id| ("Id", J::String(id.into()))))
    }

    /// One sObject Collections request; its answer lists one result per record, in order.
    async fn collection(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<J>,
        rows: &[usize],
        out: &mut Out,
    ) -> Result<(), DestinationError> {
        match self.client.call(method, path, query, body.map(Body::Json).as_ref()).await {
            Ok((_, text)) => {
                let items: Vec<J> = serde_json::from_str(&text)
                    .map_err(|e| DestinationError::transient(format!("{path}: Salesforce answered with an unexpected body: {e}")))?;
                for (&i, item) in rows.iter().zip(&items) {
                    out[i] = Some(outcome(item));
                }
                Ok(())
            }
            Err(CallError::Refused(reason)) => {
                rows.iter().for_each(|&i| out[i] = Some(RowOutcome::RefusedInGroup(reason.clone())));
                Ok(())
            }
            Err(e) => Err(DestinationError::from(e)),
        }
    }

    /// Salesforce ids by external id (one SOQL query per 200 values).
    async fn lookup(&self, values: Vec<String>) -> Result<HashMap<String, String>, DestinationError> {
        let found = self.query_by_ext(values, &["Id"]).await?;
        Ok(found.into_iter().filter_map(|(ext, r)| Some((ext, r["Id"].as_str()?.to_string()))).collect())
    }

    /// Records by external id ([`Plan::ext_key`] of it), with `fields`: the external id's
    /// values are literals of its type, compared as Salesforce compares them.
    async fn query_by_ext(&self, values: Vec<String>, fields: &[&str]) -> Result<HashMap<String, J>, DestinationError> {
        let ext = self.plan.external_id.clone();
        let kind = self.plan.kinds[self.plan.ext_field].clone();
        let literals = values.iter().filter_map(|v| soql_literal(v, &kind)).collect();
        self.query_in(&ext, literals, fields, |r| match &r[&ext] {
            J::String(s) => Some(self.plan.ext_key(s)),
            J::Null => None,
            other => Some(self.plan.ext_key(&other.to_string())),
        })
        .await
    }

    /// `SELECT fields FROM object WHERE field IN (literals)`, records by `key_of(record)`. The
    /// field matched on is selected too, once. Each query takes at most 200 literals and stays
    /// under [`MAX_QUERY_BYTES`] encoded: Salesforce refuses a URI over 16,384 bytes (414).
    async fn query_in(
        &self,
        field: &str,
        literals: Vec<String>,
        fields: &[&str],
        key_of: impl Fn(&J) -> Option<String>,
    ) -> Result<HashMap<String, J>, DestinationError> {
        let p = &self.plan;
        let mut selected: Vec<&str> = Vec::new();
        for f in fields.iter().copied().chain([field]) {
            if !selected.contains(&f) {
                selected.push(f);
            }
        }
        let head = format!("SELECT {} FROM {} WHERE {field} IN (", selected.join(", "), p.object);
        let mut found = HashMap::new();
        for list in fitting(&head, literals) {
            let q = format!("{head}{})", list.join(", "));
            let (_, text) = self.client.call(Method::GET, "query", &[("q", q.as_str())], None).await.map_err(DestinationError::from)?;
            let answer: J = serde_json::from_str(&text).map_err(|e| DestinationError::transient(format!("query: {e}")))?;
            for r in answer["records"].as_array().into_iter().flatten() {
                if let Some(key) = key_of(r) {
                    found.insert(key, r.clone());
                }
            }
        }
        Ok(found)
    }

    /// For syncs with `write = "if_empty"` fields: the current values of the record each of the
    /// rows `rows` will change, by row: by stored Salesforce id when there is one (the external
    /// id may have changed), else by external id.
    async fn current(&self, batch: &[RowOp], rows: &[usize]) -> Result<HashMap<usize, J>, DestinationError> {
        let mut out = HashMap::new();
        if !self.target.has_if_empty() || rows.is_empty() {
            return Ok(out);
        }
        let fields: Vec<&str> =
            self.target.fields.iter().zip(&self.target.if_empty).filter(|(_, e)| **e).map(|(f, _)| f.as_str()).collect();
        let (by_id, by_ext): (Vec<usize>, Vec<usize>) = rows.iter().partition(|&&i| batch[i].destination_id.is_some());
        let ids: Vec<String> = by_id.iter().filter_map(|&i| batch[i].destination_id.clone()).collect();
        if !ids.is_empty() {
            let literals = ids.iter().map(|id| soql_quote(id)).collect();
            let found = self.query_in("Id", literals, &fields, |r| r["Id"].as_str().map(str::to_string)).await?;
            for &i in &by_id {
                if let Some(r) = batch[i].destination_id.as_ref().and_then(|id| found.get(id)) {
                    out.insert(i, r.clone());
                }
            }
        }
        let exts: Vec<(usize, String)> = by_ext.iter().filter_map(|&i| Some((i, self.ext_of(&batch[i])?))).collect();
        if !exts.is_empty() {
            let found = self.query_by_ext(exts.iter().map(|(_, e)| e.clone()).collect(), &fields).await?;
            for (i, e) in exts {
                if let Some(r) = found.get(&self.plan.ext_key(&e)) {
                    out.insert(i, r.clone());
                }
            }
        }
        Ok(out)
    }

    /// Whether field `j` of row `op` is left as the record has it (a skipped NULL, or an
    /// `if_empty` field that holds a value in `current`, the row's record as read).
    fn keeps(&self, op: &RowOp, j: usize, current: Option<&J>) -> bool {
        let name = &self.target.fields[j];
        let empty = current.map(|r| &r[name]).is_none_or(|v| v.is_null() || v.as_str() == Some(""));
        j != self.plan.ext_field && self.target.keeps_current(op, j, empty)
    }

    /// Each row's Salesforce id: stored, or looked up by external id.
    async fn ids(&self, batch: &[RowOp], rows: &[usize]) -> Result<Vec<Option<String>>, DestinationError> {
        let unknown: Vec<String> =
            rows.iter().filter(|&&i| batch[i].destination_id.is_none()).filter_map(|&i| self.ext_of(&batch[i])).collect();
        let found = if unknown.is_empty() { HashMap::new() } else { self.lookup(unknown).await? };
        Ok(rows
            .iter()
            .map(|&i| {
                batch[i].destination_id.clone().or_else(|| self.ext_of(&batch[i]).and_then(|e| found.get(&self.plan.ext_key(&e)).cloned()))
            })
            .collect())
    }

    async fn upsert(&self, batch: &[RowOp], rows: &[usize], out: &mut Out) -> Result<(), DestinationError> {
        if rows.len() > MAX_COLLECTION {
            return self.bulk_upsert(batch, rows, out).await;
        }
        let path = format!("composite/sobjects/{}/{}", self.plan.object, self.plan.external_id);
        let current = self.current(batch, rows).await?;
        let records: Vec<J> = rows.iter().map(|&i| self.record(&batch[i], None, current.get(&i))).collect();
        self.collection(Method::PATCH, &path, &[], Some(json!({ "allOrNone": false, "records": records })), rows, out).await
    }

    async fn bulk_upsert(&self, batch: &[RowOp], rows: &[usize], out: &mut Out) -> Result<(), DestinationError> {
        // A field a row leaves alone is an empty cell: the Bulk API keeps the record's value.
        let current = self.current(batch, rows).await?;
        let values: Vec<Vec<Option<&Value>>> = rows
            .iter()
            .map(|&i| batch[i].fields.iter().enumerate().map(|(j, v)| (!self.keeps(&batch[i], j, current.get(&i))).then_some(v)).collect())
            .collect();
        let csv = bulk_csv(&self.target.fields, &self.plan.kinds(), &values)
            .map_err(|e| DestinationError::fatal(format!("building the Bulk API CSV: {e}")))?;
        let result =
            match bulk::upsert(&self.client, &self.plan.object, &self.plan.external_id, csv, self.bulk.poll, self.bulk.timeout).await {
                Ok(r) => r,
                Err(CallError::Refused(reason)) => {
                    rows.iter().for_each(|&i| out[i] = Some(RowOutcome::RefusedInGroup(reason.clone())));
                    return Ok(());
                }
                Err(e) => return Err(DestinationError::from(e)),
            };
        let by_key =
            |m: HashMap<String, String>| -> HashMap<String, String> { m.into_iter().map(|(e, v)| (self.plan.ext_key(&e), v)).collect() };
        let (succeeded, failed) = (by_key(result.succeeded), by_key(result.failed));
        for &i in rows {
            let ext = self.plan.ext_key(&self.ext_of(&batch[i]).unwrap_or_default());
            out[i] = Some(match (succeeded.get(&ext), failed.get(&ext)) {
                (Some(id), _) => RowOutcome::Written { destination_id: Some(id.clone()) },
                (None, Some(error)) => bulk_error(error),
                (None, None) => RowOutcome::Retryable("the Bulk API job did not process this row".into()),
            });
        }
        Ok(())
    }

    /// Update mode: only existing records change; a row without one is rejected.
    async fn update(&self, batch: &[RowOp], rows: &[usize], out: &mut Out) -> Result<(), DestinationError> {
        for chunk in rows.chunks(MAX_COLLECTION) {
            let ids = self.ids(batch, chunk).await?;
            let current = self.current(batch, chunk).await?;
            let mut sent = Vec::new();
            let mut records = Vec::new();
            for (&i, id) in chunk.iter().zip(&ids) {
                match id {
                    Some(id) => {
                        sent.push(i);
                        records.push(self.record(&batch[i], Some(id), current.get(&i)));
                    }
                    None => {
                        out[i] = Some(RowOutcome::Rejected(format!(
                            "no {} has {} = {}: update mode changes existing records only",
                            self.plan.object,
                            self.plan.external_id,
                            self.ext_of(&batch[i]).unwrap_or_default()
                        )))
                    }
                }
            }
            if !records.is_empty() {
                self.collection(
                    Method::PATCH,
                    "composite/sobjects",
                    &[],
                    Some(json!({ "allOrNone": false, "records": records })),
                    &sent,
                    out,
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn insert(&self, batch: &[RowOp], rows: &[usize], out: &mut Out) -> Result<(), DestinationError> {
        for chunk in rows.chunks(MAX_COLLECTION) {
            let records: Vec<J> = chunk.iter().map(|&i| self.record(&batch[i], None, None)).collect();
            self.collection(Method::POST, "composite/sobjects", &[], Some(json!({ "allOrNone": false, "records": records })), chunk, out)
                .await?;
        }
        Ok(())
    }

    /// `on_remove = "clear"`: the record stays, every mapped field that can be null, but the
    /// external id, is set to null. A record already gone needs nothing.
    async fn clear(&self, batch: &[RowOp], rows: &[usize], out: &mut Out) -> Result<(), DestinationError> {
        for chunk in rows.chunks(MAX_COLLECTION) {
            let ids = self.ids(batch, chunk).await?;
            let mut sent = Vec::new();
            let mut records = Vec::new();
            for (&i, id) in chunk.iter().zip(&ids) {
                let Some(id) = id else {
                    out[i] = Some(if batch[i].destination_id.is_none() && self.ext_of(&batch[i]).is_none() {
                        RowOutcome::Rejected(format!(
                            "no Salesforce id is stored for this row and its key does not carry `{}`: clear the record by hand",
                            self.plan.external_id
                        ))
                    } else {
                        RowOutcome::written()
                    });
                    continue;
                };
                let mut record = serde_json::Map::new();
                record.insert("attributes".into(), json!({ "type": self.plan.object }));
                record.insert("Id".into(), J::String(id.clone()));
                // Fields that cannot be empty (required ones, checkboxes) keep their value.
                let clearable = self.target.fields.iter().zip(&self.plan.nillable).filter(|(f, n)| **n && **f != self.plan.external_id);
                for (name, _) in clearable {
                    record.insert(name.clone(), J::Null);
                }
                sent.push(i);
                records.push(J::Object(record));
            }
            if !records.is_empty() {
                let body = json!({ "allOrNone": false, "records": records });
                self.collection(Method::PATCH, "composite/sobjects", &[], Some(body), &sent, out).await?;
            }
        }
        Ok(())
    }

    /// Mirror removals by Salesforce id; a record already gone counts as deleted.
    async fn delete(&self, batch: &[RowOp], rows: &[usize], out: &mut Out) -> Result<(), DestinationError> {
        for chunk in rows.chunks(MAX_COLLECTION) {
            let ids = self.ids(batch, chunk).await?;
            let (sent, list): (Vec<usize>, Vec<String>) = chunk.iter().zip(ids).filter_map(|(&i, id)| Some((i, id?))).unzip();
            for &i in chunk.iter().filter(|i| !sent.contains(i)) {
                // Looked up by external id and not found: already gone. Nothing to look up by:
                // say so rather than pretend it was deleted.
                out[i] = Some(if batch[i].destination_id.is_none() && self.ext_of(&batch[i]).is_none() {
                    RowOutcome::Rejected(format!(
                        "no Salesforce id is stored for this row and its key does not carry `{}`: delete the record by hand",
                        self.plan.external_id
                    ))
                } else {
                    RowOutcome::written()
                });
            }
            if list.is_empty() {
                continue;
            }
            let joined = list.join(",");
            self.collection(Method::DELETE, "composite/sobjects", &[("ids", joined.as_str()), ("allOrNone", "false")], None, &sent, out)
                .await?;
            for &i in &sent {
                if let Some(RowOutcome::Rejected(reason)) = &out[i] {
                    if gone(reason.split(':').next().unwrap_or_default()) {
                        out[i] = Some(RowOutcome::written());
                    }
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Writer for SalesforceWriter {
    fn fork(&self) -> Option<Box<dyn Writer>> {
        Some(Box::new(SalesforceWriter {
            client: self.client.clone(),
            target: self.target.clone(),
            plan: self.plan.clone(),
            bulk: self.bulk.clone(),
        }))
    }

    fn preferred_batch_rows(&self, pending: u64) -> Option<usize> {
        (pending > self.bulk.threshold).then_some(self.bulk.batch_rows)
    }

    async fn write(&mut self, batch: &[RowOp]) -> Result<Vec<RowOutcome>, DestinationError> {
        let mut out: Vec<Option<RowOutcome>> = vec![None; batch.len()];
        for (i, op) in batch.iter().enumerate() {
            if op.op == Op::Upsert && self.ext_of(op).is_none() {
                out[i] = Some(RowOutcome::Rejected(format!("`{}` is empty: Salesforce matches records by it", self.plan.external_id)));
            }
        }
        let of = |op| undecided(batch, &out, op);
        let (upserts, updates, inserts, clears, deletes) = (of(Op::Upsert), of(Op::Update), of(Op::Insert), of(Op::Clear), of(Op::Delete));
        let sent = async {
            if !upserts.is_empty() {
                self.upsert(batch, &upserts, &mut out).await?;
            }
            self.update(batch, &updates, &mut out).await?;
            self.insert(batch, &inserts, &mut out).await?;
            self.clear(batch, &clears, &mut out).await?;
            self.delete(batch, &deletes, &mut out).await
        }
        .await;
        settle(out, sent, "Salesforce")
    }
}

/// The most of a SOQL query, encoded, one request carries: Salesforce caps URI plus headers at
/// 16,384 bytes; the rest of the URI and the headers fit in what is left.
const MAX_QUERY_BYTES: usize = 12_000;

/// `literals` in lists of at most [`MAX_COLLECTION`] whose query (`head`, the list, `)`) stays
/// under [`MAX_QUERY_BYTES`] once URL-encoded. A literal too long for any query goes alone.
fn fitting(head: &str, literals: Vec<String>) -> Vec<Vec<String>> {
    let encoded = |text: &str| -> usize {
        let mut url = reqwest::Url::parse("http://x/").expect("a constant URL parses");
        url.query_pairs_mut().append_pair("q", text);
        url.query().map_or(0, str::len)
    };
    let mut lists: Vec<Vec<String>> = Vec::new();
    let mut size = encoded(head);
    for literal in literals {
        // Each literal adds itself and ", " (encoded: `%2C+`).
        let more = encoded(&literal) + 4;
        match lists.last_mut() {
            Some(list) if list.len() < MAX_COLLECTION && size + more <= MAX_QUERY_BYTES => {
                size += more;
                list.push(literal);
            }
            _ => {
                size = encoded(head) + more;
                lists.push(vec![literal]);
            }
        }
    }
    lists
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_split_by_count_and_by_encoded_length() {
        let short: Vec<String> = (0..450).map(|i| format!("'c{i}'")).collect();
        assert_eq!(fitting("SELECT Id FROM Contact WHERE X IN (", short).iter().map(Vec::len).collect::<Vec<_>>(), vec![200, 200, 50]);
        let long: Vec<String> = (0..200).map(|i| format!("'{}{i:04}'", "x".repeat(110))).collect();
        let lists = fitting("SELECT Id FROM Contact WHERE X IN (", long);
        assert!(lists.len() > 1 && lists.iter().map(Vec::len).sum::<usize>() == 200);
        for list in lists {
            let q = format!("SELECT Id FROM Contact WHERE X IN ({})", list.join(", "));
            let mut url = reqwest::Url::parse("http://x/").unwrap();
            url.query_pairs_mut().append_pair("q", &q);
            assert!(url.query().unwrap().len() <= MAX_QUERY_BYTES);
        }
    }
}
