//! One run of one sync against a HubSpot object: each batch becomes one batch request per kind
//! of operation (upsert, update, create, archive), at most 100 inputs each.
//!
//! HubSpot answers in no particular order and normalises what it echoes, so rows are matched to
//! results by their id property's value ([`id_key`]) or record id, never by position. A batch
//! names each record once (HubSpot refuses duplicates whole). A stored record id HubSpot no
//! longer knows (the record was deleted, or merged into another) is looked up again by the id
//! property, once, in the same write.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{json, Map, Value as J};

use super::client::HubSpotClient;
use super::encoding::{id_key, outcomes, property};
use super::Plan;
use crate::destinations::http::CallError;
use crate::destinations::{settle, undecided, DestinationError, Op, RowOp, RowOutcome, Target, Writer};

type Out = [Option<RowOutcome>];

pub struct HubSpotWriter {
    client: Arc<HubSpotClient>,
    target: Target,
    plan: Plan,
}

impl HubSpotWriter {
    pub fn new(client: Arc<HubSpotClient>, target: Target, plan: Plan) -> Self {
        HubSpotWriter { client, target, plan }
    }

    fn path(&self, action: &str) -> String {
        format!("objects/{}/batch/{action}", self.plan.object)
    }

    /// The id property's value for a row: from its fields, or for a delete from its key.
    fn id_of(&self, op: &RowOp) -> Option<String> {
        let p = &self.plan;
        let value = match op.op {
            Op::Delete | Op::Clear => op.key.get(p.key_id?)?,
            _ => op.fields.get(p.id_field)?,
        };
        Some(property(value, p.id_kind())).filter(|s| !s.trim().is_empty())
    }

    fn key(&self, id: &str) -> String {
        id_key(id, self.plan.id_kind())
    }

    /// The mapped fields the row writes, as properties, the id property always included:
    /// HubSpot then echoes it in each result, which is how results are matched to rows. A
    /// skipped NULL, or an `if_empty` field the record already has a value for (`current`),
    /// keeps HubSpot's value: left out, or with [`Plan::whole_sets`] sent as HubSpot holds it.
    fn properties(&self, op: &RowOp, current: Option<&Map<String, J>>) -> J {
        let p = &self.plan;
        let mut map = Map::new();
        for (j, ((name, value), kind)) in self.target.fields.iter().zip(&op.fields).zip(&p.types).enumerate() {
            let now = current.and_then(|c| c.get(name)).and_then(J::as_str);
            if j == p.id_field || !self.target.keeps_current(op, j, now.is_none_or(str::is_empty)) {
                map.insert(name.clone(), J::String(property(value, *kind)));
            } else if p.whole_sets {
                map.insert(name.clone(), J::String(now.unwrap_or_default().to_string()));
            }
        }
        J::Object(map)
    }

    /// Whether writing `rows` needs the records' current values: for `if_empty` fields, and
    /// for skipped NULLs when every property must be sent.
    fn needs_current(&self) -> bool {
        self.target.has_if_empty() || (self.plan.whole_sets && self.target.skip_nulls)
    }

    /// The current properties of the record each of the rows `rows` will change, by row: read by
    /// the stored record id when there is one (the row's id property may have changed), else,
    /// or when that record is gone, by the id property (`batch/read`).
    async fn current(&self, batch: &[RowOp], rows: &[usize]) -> Result<HashMap<usize, Map<String, J>>, DestinationError> {
        let mut out = HashMap::new();
        if !self.needs_current() || rows.is_empty() {
            return Ok(out);
        }
        let p = &self.plan;
        let mut properties: Vec<&str> = vec![p.id_property.as_str()];
        properties.extend(self.target.fields.iter().map(String::as_str).filter(|f| *f != p.id_property));
        let by_record: Vec<usize> = rows.iter().copied().filter(|&i| batch[i].destination_id.is_some()).collect();
        let records: Vec<&String> = by_record.iter().filter_map(|&i| batch[i].destination_id.as_ref()).collect();
        if !records.is_empty() {
            let found = self.read(None, &records, &properties, |r| r["id"].as_str().map(str::to_string)).await?;
            for &i in &by_record {
                if let Some(props) = batch[i].destination_id.as_ref().and_then(|id| found.get(id)) {
                    out.insert(i, props.clone());
                }
            }
        }
        let values: Vec<(usize, String)> =
            rows.iter().filter(|i| !out.contains_key(i)).filter_map(|&i| Some((i, self.id_of(&batch[i])?))).collect();
        if !values.is_empty() {
            let asked: Vec<&String> = values.iter().map(|(_, v)| v).collect();
            let found = self
                .read(Some(&p.id_property), &asked, &properties, |r| r["properties"][&p.id_property].as_str().map(|v| self.key(v)))
                .await?;
            for (i, v) in values {
                if let Some(props) = found.get(&self.key(&v)) {
                    out.insert(i, props.clone());
                }
            }
        }
        Ok(out)
    }

    /// One `batch/read` of the records `ids` (by `id_property`, else by record id), each asked
    /// once: their properties by `key_of(result)`. Records not found are left out.
    async fn read(
        &self,
        id_property: Option<&str>,
        ids: &[&String],
        properties: &[&str],
        key_of: impl Fn(&J) -> Option<String>,
    ) -> Result<HashMap<String, Map<String, J>>, DestinationError> {
        let mut seen = std::collections::HashSet::new();
        let inputs: Vec<J> = ids.iter().filter(|id| seen.insert(self.key(id))).map(|id| json!({ "id": id })).collect();
        let mut body = json!({ "inputs": inputs, "properties": properties });
        if let Some(p) = id_property {
            body["idProperty"] = J::String(p.to_string());
        }
        let (_, answer) = self.client.call(Method::POST, &self.path("read"), Some(&body)).await?;
        Ok(answer["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| Some((key_of(r)?, r["properties"].as_object()?.clone())))
            .collect())
    }

    /// HubSpot record ids of rows by id property value (`batch/read`); absent values have none.
    async fn lookup(&self, values: &[String]) -> Result<HashMap<String, String>, DestinationError> {
        if values.is_empty() {
            return Ok(HashMap::new());
        }
        let p = &self.plan;
        let asked: Vec<&String> = values.iter().collect();
        let found = self.read(Some(&p.id_property), &asked, &[p.id_property.as_str()], |r| r["id"].as_str().map(str::to_string)).await?;
        Ok(found.into_iter().filter_map(|(record, props)| Some((self.key(props.get(&p.id_property)?.as_str()?), record))).collect())
    }

    /// Sends one batch request carrying exactly the rows `sent` (`ids` aligned with them: id
    /// property values, or with `by_record_id` record ids) and records their outcomes. Rows
    /// decided before (rejected, already gone) are never in a request, so an answer never
    /// overwrites them. Returns the rows whose record HubSpot does not know.
    async fn send(
        &self,
        action: &str,
        body: J,
        sent: &[usize],
        ids: &[String],
        by_record_id: bool,
        out: &mut Out,
    ) -> Result<Vec<usize>, DestinationError> {
        match self.client.call(Method::POST, &self.path(action), Some(&body)).await {
            // None of the records exists (HubSpot answers a 404 rather than a 207).
            Ok((404, _)) => Ok(sent.to_vec()),
            Ok((_, answer)) => {
                let answered = outcomes(&answer, ids, self.plan.id_kind(), &self.plan.id_property, by_record_id);
                for (&i, outcome) in sent.iter().zip(answered.outcomes) {
                    out[i] = outcome;
                }
                Ok(answered.not_found.iter().map(|&k| sent[k]).collect())
            }
            // The whole request was refused for its content: the engine splits the rows to find
            // the bad ones.
            Err(CallError::Refused(reason)) => {
                sent.iter().for_each(|&i| out[i] = Some(RowOutcome::RefusedInGroup(reason.clone())));
                Ok(Vec::new())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `rows` with the record each names (`ids`, compared by `key`), each record once: a later
    /// row naming a record an earlier one names is rejected, saying which (HubSpot refuses a
    /// batch that names a record twice, and two rows cannot both be that record).
    fn distinct(
        &self,
        batch: &[RowOp],
        rows: Vec<(usize, String)>,
        key: impl Fn(&str) -> String,
        out: &mut Out,
    ) -> (Vec<usize>, Vec<String>) {
        let mut first: HashMap<String, usize> = HashMap::new();
        let mut kept = (Vec::new(), Vec::new());
        for (i, id) in rows {
            match first.get(&key(&id)) {
                Some(&earlier) => {
                    out[i] = Some(RowOutcome::Rejected(format!(
                        "row ({}) names the same HubSpot record ({} = {id}): HubSpot keeps one record per {}, so only that row is written",
                        batch[earlier].key_label(&self.target),
                        self.plan.id_property,
                        self.plan.id_property
                    )))
                }
                None => {
                    first.insert(key(&id), i);
                    kept.0.push(i);
                    kept.1.push(id);
                }
            }
        }
        kept
    }

    /// The rows of `rows` with their id property values, each value once.
    fn by_value(&self, batch: &[RowOp], rows: &[usize], out: &mut Out) -> (Vec<usize>, Vec<String>) {
        let valued = rows.iter().filter_map(|&i| Some((i, self.id_of(&batch[i])?))).collect();
        self.distinct(batch, valued, |v| self.key(v), out)
    }

    async fn upsert(&self, batch: &[RowOp], rows: &[usize], out: &mut Out) -> Result<(), DestinationError> {
        let (sent, ids) = self.by_value(batch, rows, out);
        if sent.is_empty() {
            return Ok(());
        }
        let current = self.current(batch, &sent).await?;
        let inputs: Vec<J> = sent
            .iter()
            .zip(&ids)
            .map(|(&i, id)| json!({ "idProperty": self.plan.id_property, "id": id, "properties": self.properties(&batch[i], current.get(&i)) }))
            .collect();
        self.send("upsert", json!({ "inputs": inputs }), &sent, &ids, false, out).await.map(drop)
    }

    async fn create(&self, batch: &[RowOp], rows: &[usize], out: &mut Out) -> Result<(), DestinationError> {
        let (sent, ids) = self.by_value(batch, rows, out);
        if sent.is_empty() {
            return Ok(());
        }
        let inputs: Vec<J> = sent.iter().map(|&i| json!({ "properties": self.properties(&batch[i], None) })).collect();
        self.send("create", json!({ "inputs": inputs }), &sent, &ids, false, out).await.map(drop)
    }

    /// Each row's HubSpot record id: stored from an earlier write, else looked up by its id
    /// property value; `None` when neither finds one.
    async fn record_ids(&self, batch: &[RowOp], rows: &[usize]) -> Result<Vec<Option<String>>, DestinationError> {
        let unknown: Vec<String> =
            rows.iter().filter(|&&i| batch[i].destination_id.is_none()).filter_map(|&i| self.id_of(&batch[i])).collect();
        let found = self.lookup(&unknown).await?;
        Ok(rows
            .iter()
            .map(|&i| batch[i].destination_id.clone().or_else(|| self.id_of(&batch[i]).and_then(|v| found.get(&self.key(&v)).cloned())))
            .collect())
    }

    /// `batch/update` of the records of `rows`, each with `properties(row)`. A row whose record
    /// is not found gets `unfound`; a stored record id HubSpot no longer knows is looked up
    /// again by the id property, once, and the update sent to the record found.
    async fn update_records(
        &self,
        batch: &[RowOp],
        rows: &[usize],
        out: &mut Out,
        properties: impl Fn(usize) -> J,
        unfound: impl Fn(&RowOp) -> RowOutcome,
    ) -> Result<(), DestinationError> {
        let mut records: Vec<(usize, String)> = Vec::new();
        for (&i, record) in rows.iter().zip(self.record_ids(batch, rows).await?) {
            match record {
                Some(id) => records.push((i, id)),
                None => out[i] = Some(unfound(&batch[i])),
            }
        }
        let mut looked_again = false;
        while !records.is_empty() {
            let (sent, ids) = self.distinct(batch, std::mem::take(&mut records), str::to_string, out);
            let inputs: Vec<J> = sent.iter().zip(&ids).map(|(&i, id)| json!({ "id": id, "properties": properties(i) })).collect();
            let gone = self.send("update", json!({ "inputs": inputs }), &sent, &ids, true, out).await?;
            // A stored id that is gone: the record was deleted or merged into another. Find the
            // row's record again by its id property, once; a looked-up id that is gone is final.
            let (again, lost): (Vec<usize>, Vec<usize>) =
                gone.into_iter().partition(|&i| !looked_again && batch[i].destination_id.is_some());
            lost.iter().for_each(|&i| out[i] = Some(unfound(&batch[i])));
            let values: Vec<String> = again.iter().filter_map(|&i| self.id_of(&batch[i])).collect();
            let found = self.lookup(&values).await?;
            for i in again {
                match self.id_of(&batch[i]).and_then(|v| found.get(&self.key(&v)).cloned()) {
                    Some(id) => records.push((i, id)),
                    None => out[i] = Some(unfound(&batch[i])),
                }
            }
            looked_again = true;
        }
        Ok(())
    }

    /// Update mode: only records that exist change. Record ids come from state, else by lookup.
    async fn update(&self, batch: &[RowOp], rows: &[usize], out: &mut Out) -> Result<(), DestinationError> {
        if rows.is_empty() {
            return Ok(());
        }
        let p = &self.plan;
        let current = self.current(batch, rows).await?;
        let unfound = |op: &RowOp| {
            RowOutcome::Rejected(format!(
                "no {} record has {} = {}: update mode changes existing records only",
                p.object,
                p.id_property,
                self.id_of(op).unwrap_or_default()
            ))
        };
        self.update_records(batch, rows, out, |i| self.properties(&batch[i], current.get(&i)), unfound).await
    }

    /// `on_remove = "clear"`: the record stays, every mapped property but the id property is
    /// emptied (HubSpot clears a property set to ""). A record already gone needs nothing.
    async fn clear(&self, batch: &[RowOp], rows: &[usize], out: &mut Out) -> Result<(), DestinationError> {
        if rows.is_empty() {
            return Ok(());
        }
        let p = &self.plan;
        let empty: Map<String, J> =
            self.target.fields.iter().filter(|f| **f != p.id_property).map(|f| (f.clone(), J::String(String::new()))).collect();
        let unfound = |op: &RowOp| gone_or_unknown(self.id_of(op).is_some(), "clear", &p.id_property);
        self.update_records(batch, rows, out, |_| J::Object(empty.clone()), unfound).await
    }

    /// Mirror removals: archive by stored record id (or by lookup); already gone counts as done
    /// (HubSpot archives an unknown id without complaint).
    async fn archive(&self, batch: &[RowOp], rows: &[usize], out: &mut Out) -> Result<(), DestinationError> {
        let p = &self.plan;
        let mut records: Vec<(usize, String)> = Vec::new();
        for (&i, record) in rows.iter().zip(self.record_ids(batch, rows).await?) {
            match record {
                Some(id) => records.push((i, id)),
                None => out[i] = Some(gone_or_unknown(self.id_of(&batch[i]).is_some(), "archive", &p.id_property)),
            }
        }
        let (sent, ids) = self.distinct(batch, records, str::to_string, out);
        if sent.is_empty() {
            return Ok(());
        }
        let inputs: Vec<J> = ids.iter().map(|id| json!({ "id": id })).collect();
        // HubSpot answers an archive with 204 and no body: every record it carried is gone.
        match self.client.call(Method::POST, &self.path("archive"), Some(&json!({ "inputs": inputs }))).await {
            Ok(_) => sent.iter().for_each(|&i| out[i] = Some(RowOutcome::written())),
            Err(CallError::Refused(reason)) => sent.iter().for_each(|&i| out[i] = Some(RowOutcome::RefusedInGroup(reason.clone()))),
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }
}

/// The outcome of a removal whose record was not found: looked up by its id property and not
/// there, it is already gone; with nothing to look it up by, say so rather than pretend.
fn gone_or_unknown(looked_up: bool, action: &str, id_property: &str) -> RowOutcome {
    if looked_up {
        RowOutcome::written()
    } else {
        RowOutcome::Rejected(format!(
            "no HubSpot record id is stored for this row and its key does not carry `{id_property}`: {action} the record by hand"
        ))
    }
}

#[async_trait]
impl Writer for HubSpotWriter {
    fn fork(&self) -> Option<Box<dyn Writer>> {
        Some(Box::new(HubSpotWriter { client: self.client.clone(), target: self.target.clone(), plan: self.plan.clone() }))
    }

    async fn write(&mut self, batch: &[RowOp]) -> Result<Vec<RowOutcome>, DestinationError> {
        let mut out: Vec<Option<RowOutcome>> = vec![None; batch.len()];
        for (i, op) in batch.iter().enumerate() {
            if !matches!(op.op, Op::Delete | Op::Clear) && self.id_of(op).is_none() {
                out[i] = Some(RowOutcome::Rejected(format!("`{}` is empty: HubSpot matches records by it", self.plan.id_property)));
            }
        }
        let of = |op| undecided(batch, &out, op);
        let (upserts, updates, inserts, clears, deletes) = (of(Op::Upsert), of(Op::Update), of(Op::Insert), of(Op::Clear), of(Op::Delete));
        let sent = async {
            self.upsert(batch, &upserts, &mut out).await?;
            self.update(batch, &updates, &mut out).await?;
            self.create(batch, &inserts, &mut out).await?;
            self.clear(batch, &clears, &mut out).await?;
            self.archive(batch, &deletes, &mut out).await
        }
        .await;
        settle(out, sent, "HubSpot")
    }
}
