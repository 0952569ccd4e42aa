//! One run of one sync against a HubSpot object: each batch becomes one batch request per kind
//! of operation (upsert, update, create, archive), at most 100 inputs each.

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
        Some(property(value, p.types[p.id_field])).filter(|s| !s.trim().is_empty())
    }

    /// The mapped fields the row writes, as properties, the id property always included:
    /// HubSpot then echoes it in each result, which is how results are matched to rows. A
    /// skipped NULL, or an `if_empty` field the record already has a value for (`current`),
    /// is left out, so HubSpot keeps its value.
    fn properties(&self, op: &RowOp, current: Option<&Map<String, J>>) -> J {
        let p = &self.plan;
        let map: Map<String, J> = self
            .target
            .fields
            .iter()
            .zip(&op.fields)
            .zip(&p.types)
            .enumerate()
            .filter(|(j, ((name, _), _))| {
                let empty = current.and_then(|c| c.get(*name)).and_then(J::as_str).is_none_or(str::is_empty);
                *j == p.id_field || !self.target.keeps_current(op, *j, empty)
            })
            .map(|(_, ((name, value), kind))| (name.clone(), J::String(property(value, *kind))))
            .collect();
        J::Object(map)
    }

    /// For syncs with `write = "if_empty"` fields: the current properties of the record each of
    /// the rows `rows` will change, by row: read by the stored record id when there is one (the
    /// row's id property may have changed), else by the id property (`batch/read`).
    async fn current(&self, batch: &[RowOp], rows: &[usize]) -> Result<HashMap<usize, Map<String, J>>, DestinationError> {
        let mut out = HashMap::new();
        if !self.target.has_if_empty() || rows.is_empty() {
            return Ok(out);
        }
        let p = &self.plan;
        let mut properties: Vec<&str> = vec![p.id_property.as_str()];
        for (f, _) in self.target.fields.iter().zip(&self.target.if_empty).filter(|(f, e)| **e && **f != p.id_property) {
            properties.push(f);
        }
        let (by_record, by_value): (Vec<usize>, Vec<usize>) = rows.iter().partition(|&&i| batch[i].destination_id.is_some());
        if !by_record.is_empty() {
            let inputs: Vec<J> = by_record.iter().filter_map(|&i| batch[i].destination_id.as_ref()).map(|id| json!({ "id": id })).collect();
            let found = self.read(json!({ "inputs": inputs, "properties": properties }), |r| r["id"].as_str().map(str::to_string)).await?;
            for &i in &by_record {
                if let Some(props) = batch[i].destination_id.as_ref().and_then(|id| found.get(id)) {
                    out.insert(i, props.clone());
                }
            }
        }
        let values: Vec<(usize, String)> = by_value.iter().filter_map(|&i| Some((i, self.id_of(&batch[i])?))).collect();
        if !values.is_empty() {
            let inputs: Vec<J> = values.iter().map(|(_, v)| json!({ "id": v })).collect();
            let body = json!({ "idProperty": p.id_property, "inputs": inputs, "properties": properties });
            let found = self.read(body, |r| r["properties"][&p.id_property].as_str().map(id_key)).await?;
            for (i, v) in values {
                if let Some(props) = found.get(&id_key(&v)) {
                    out.insert(i, props.clone());
                }
            }
        }
        Ok(out)
    }

    /// One `batch/read`, its results' properties by `key_of(result)`.
    async fn read(&self, body: J, key_of: impl Fn(&J) -> Option<String>) -> Result<HashMap<String, Map<String, J>>, DestinationError> {
        let (_, answer) = self.client.call(Method::POST, &self.path("read"), Some(&body)).await.map_err(DestinationError::from)?;
        Ok(answer["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| Some((key_of(r)?, r["properties"].as_object()?.clone())))
            .collect())
    }

    /// Sends one batch request carrying exactly the rows `sent` (`ids` aligned with them) and
    /// records their outcomes. Rows decided before (rejected, already gone) are never in a
    /// request, so an answer never overwrites them.
    async fn send(
        &self,
        action: &str,
        body: J,
        sent: &[usize],
        ids: &[Option<String>],
        by_record_id: bool,
        out: &mut [Option<RowOutcome>],
    ) -> Result<(), DestinationError> {
        match self.client.call(Method::POST, &self.path(action), Some(&body)).await {
            Ok((_, answer)) => {
                for (&i, outcome) in sent.iter().zip(outcomes(&answer, ids, &self.plan.id_property, by_record_id)) {
                    out[i] = outcome;
                }
                Ok(())
            }
            // The whole request was refused for its content: the engine splits the rows to find
            // the bad ones.
            Err(CallError::Refused(reason)) => {
                sent.iter().for_each(|&i| out[i] = Some(RowOutcome::RefusedInGroup(reason.clone())));
                Ok(())
            }
            Err(e) => Err(DestinationError::from(e)),
        }
    }

    /// HubSpot record ids of rows by id property value (`batch/read`); absent values have none.
    async fn lookup(&self, values: &[String]) -> Result<HashMap<String, String>, DestinationError> {
        if values.is_empty() {
            return Ok(HashMap::new());
        }
        let p = &self.plan;
        let inputs: Vec<J> = values.iter().map(|v| json!({ "id": v })).collect();
        let body = json!({ "idProperty": p.id_property, "inputs": inputs, "properties": [p.id_property] });
        let (_, answer) = self.client.call(Method::POST, &self.path("read"), Some(&body)).await.map_err(DestinationError::from)?;
        Ok(answer["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| Some((id_key(r["properties"][&p.id_property].as_str()?), r["id"].as_str()?.to_string())))
            .collect())
    }

    async fn upsert(&self, batch: &[RowOp], rows: &[usize], out: &mut [Option<RowOutcome>]) -> Result<(), DestinationError> {
        let (sent, ids): (Vec<usize>, Vec<Option<String>>) = rows.iter().filter_map(|&i| Some((i, Some(self.id_of(&batch[i])?)))).unzip();
        if sent.is_empty() {
            return Ok(());
        }
        let current = self.current(batch, &sent).await?;
        let inputs: Vec<J> = sent
            .iter()
            .zip(&ids)
            .map(|(&i, id)| json!({ "idProperty": self.plan.id_property, "id": id, "properties": self.properties(&batch[i], current.get(&i)) }))
            .collect();
        self.send("upsert", json!({ "inputs": inputs }), &sent, &ids, false, out).await
    }

    async fn create(&self, batch: &[RowOp], rows: &[usize], out: &mut [Option<RowOutcome>]) -> Result<(), DestinationError> {
        let (sent, ids): (Vec<usize>, Vec<Option<String>>) = rows.iter().filter_map(|&i| Some((i, Some(self.id_of(&batch[i])?)))).unzip();
        if sent.is_empty() {
            return Ok(());
        }
        let inputs: Vec<J> = sent.iter().map(|&i| json!({ "properties": self.properties(&batch[i], None) })).collect();
        self.send("create", json!({ "inputs": inputs }), &sent, &ids, false, out).await
    }

    /// Each row's HubSpot record id: stored from an earlier write, else looked up by its id
    /// property value; `None` when neither finds one.
    async fn record_ids(&self, batch: &[RowOp], rows: &[usize]) -> Result<Vec<Option<String>>, DestinationError> {
        let unknown: Vec<String> =
            rows.iter().filter(|&&i| batch[i].destination_id.is_none()).filter_map(|&i| self.id_of(&batch[i])).collect();
        let found = self.lookup(&unknown).await?;
        Ok(rows
            .iter()
            .map(|&i| batch[i].destination_id.clone().or_else(|| self.id_of(&batch[i]).and_then(|v| found.get(&id_key(&v)).cloned())))
            .collect())
    }

    /// The rows of `rows` whose HubSpot record is found (stored or looked up), with its record id;
    /// every other row gets its outcome now from `unfound`, and goes in no request.
    async fn found(
        &self,
        batch: &[RowOp],
        rows: &[usize],
        out: &mut [Option<RowOutcome>],
        unfound: impl Fn(&RowOp) -> RowOutcome,
    ) -> Result<(Vec<usize>, Vec<Option<String>>), DestinationError> {
        let record_ids = self.record_ids(batch, rows).await?;
        let mut found = (Vec::new(), Vec::new());
        for (&i, record) in rows.iter().zip(record_ids) {
            match record {
                Some(id) => {
                    found.0.push(i);
                    found.1.push(Some(id));
                }
                None => out[i] = Some(unfound(&batch[i])),
            }
        }
        Ok(found)
    }

    /// Update mode: only records that exist change. Record ids come from state, else by lookup.
    async fn update(&self, batch: &[RowOp], rows: &[usize], out: &mut [Option<RowOutcome>]) -> Result<(), DestinationError> {
        let p = &self.plan;
        let (sent, ids) = self
            .found(batch, rows, out, |op| {
                RowOutcome::Rejected(format!(
                    "no {} record has {} = {}: update mode changes existing records only",
                    p.object,
                    p.id_property,
                    self.id_of(op).unwrap_or_default()
                ))
            })
            .await?;
        if sent.is_empty() {
            return Ok(());
        }
        let current = self.current(batch, &sent).await?;
        let inputs: Vec<J> =
            sent.iter().zip(&ids).map(|(&i, id)| json!({ "id": id, "properties": self.properties(&batch[i], current.get(&i)) })).collect();
        self.send("update", json!({ "inputs": inputs }), &sent, &ids, true, out).await
    }

    /// `on_remove = "clear"`: the record stays, every mapped property but the id property is
    /// emptied (HubSpot clears a property set to ""). A record already gone needs nothing.
    async fn clear(&self, batch: &[RowOp], rows: &[usize], out: &mut [Option<RowOutcome>]) -> Result<(), DestinationError> {
        let p = &self.plan;
        let (sent, ids) = self.found(batch, rows, out, |op| gone_or_unknown(self.id_of(op).is_some(), "clear", &p.id_property)).await?;
        if sent.is_empty() {
            return Ok(());
        }
        let empty: Map<String, J> =
            self.target.fields.iter().filter(|f| **f != p.id_property).map(|f| (f.clone(), J::String(String::new()))).collect();
        let inputs: Vec<J> = ids.iter().map(|id| json!({ "id": id, "properties": empty })).collect();
        self.send("update", json!({ "inputs": inputs }), &sent, &ids, true, out).await
    }

    /// Mirror removals: archive by stored record id (or by lookup); already gone counts as done.
    async fn archive(&self, batch: &[RowOp], rows: &[usize], out: &mut [Option<RowOutcome>]) -> Result<(), DestinationError> {
        let p = &self.plan;
        let (sent, ids) = self.found(batch, rows, out, |op| gone_or_unknown(self.id_of(op).is_some(), "archive", &p.id_property)).await?;
        if sent.is_empty() {
            return Ok(());
        }
        let inputs: Vec<J> = ids.iter().map(|id| json!({ "id": id })).collect();
        // HubSpot answers an archive with 204 and no body: every record it carried is gone.
        match self.client.call(Method::POST, &self.path("archive"), Some(&json!({ "inputs": inputs }))).await {
            Ok(_) => sent.iter().for_each(|&i| out[i] = Some(RowOutcome::written())),
            Err(CallError::Refused(reason)) => sent.iter().for_each(|&i| out[i] = Some(RowOutcome::RefusedInGroup(reason.clone()))),
            Err(e) => return Err(DestinationError::from(e)),
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
