//! Saved plans: `sluice plan --out FILE` records every change a run would make (key, op,
//! fingerprint), and `sluice apply FILE` runs the syncs again, refusing to send anything when the
//! changes it finds are not exactly those. The plan file's shape is documented in
//! docs/saved-plans.md; the CLI writes and reads it (`cli::apply`), the engine only records
//! (`Recorder`, in a plan) and compares (`Expected` -> `Check`, in a real run).
//!
//! Why fingerprints: a row's fingerprint covers its values and the sync's definition (mapping,
//! mode, destination), so "same key, same op, same fingerprint" means the row would be sent
//! exactly as reviewed. Any other run between plan and apply changes the stored state, so the
//! diff changes too and the apply refuses.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::sync::Mutex;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::destinations::Op;
use crate::value::Hash128;

/// One planned change, as the engine records it while planning (one JSON line in a temp file
/// per sync; the CLI turns them into the plan file's entries).
#[derive(Debug, Serialize, Deserialize)]
pub struct Planned {
    /// The key as plain JSON in key order (the change log's form: `{"id":42}`).
    pub key: String,
    #[serde(with = "hex128")]
    pub key_hash: Hash128,
    pub op: Op,
    /// `added`, `changed` or `removed`.
    pub change: String,
    /// Absent for removals.
    #[serde(default, with = "hex128_opt", skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Hash128>,
    /// The fields as they would be sent (absent for removals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
}

/// Collects a plan's changes, per sync, in temp files: memory stays flat however many rows
/// a plan changes.
#[derive(Default)]
pub struct Recorder {
    syncs: Mutex<HashMap<String, (BufWriter<File>, u64)>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

impl Recorder {
    pub fn push(&self, sync: &str, planned: &Planned) -> Result<(), String> {
        let mut syncs = self.syncs.lock().map_err(|_| "the plan's recorder broke (a bug)".to_string())?;
        let (file, count) = match syncs.get_mut(sync) {
            Some(entry) => entry,
            None => {
                let file = tempfile::tempfile().map_err(|e| format!("the plan's temp file: {e}"))?;
                syncs.entry(sync.to_string()).or_insert((BufWriter::new(file), 0))
            }
        };
        serde_json::to_writer(&mut *file, planned).map_err(|e| format!("the plan's temp file: {e}"))?;
        file.write_all(b"\n").map_err(|e| format!("the plan's temp file: {e}"))?;
        *count += 1;
        Ok(())
    }

    /// Forgets what a sync recorded (a plan that failed half way records nothing).
    pub fn discard(&self, sync: &str) {
        if let Ok(mut syncs) = self.syncs.lock() {
            syncs.remove(sync);
        }
    }

    /// A sync's recorded changes, in the order they were found, to read back.
    pub fn take(&self, sync: &str) -> Result<RecordedChanges, String> {
        let taken = self.syncs.lock().map_err(|_| "the plan's recorder broke (a bug)".to_string())?.remove(sync);
        let Some((file, count)) = taken else { return Ok(RecordedChanges { lines: None, count: 0 }) };
        let mut file = file.into_inner().map_err(|e| format!("the plan's temp file: {}", e.error()))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| format!("the plan's temp file: {e}"))?;
        Ok(RecordedChanges { lines: Some(BufReader::new(file)), count })
    }
}

/// A sync's recorded changes, read back in chunks.
pub struct RecordedChanges {
    lines: Option<BufReader<File>>,
    pub count: u64,
}

impl RecordedChanges {
    /// Up to `n` next changes; empty when done.
    pub fn next_chunk(&mut self, n: usize) -> Result<Vec<Planned>, String> {
        let mut out = Vec::new();
        let Some(lines) = self.lines.as_mut() else { return Ok(out) };
        let mut line = String::new();
        while out.len() < n {
            line.clear();
            if lines.read_line(&mut line).map_err(|e| format!("the plan's temp file: {e}"))? == 0 {
                break;
            }
            out.push(serde_json::from_str(&line).map_err(|e| format!("the plan's temp file: {e}"))?);
        }
        Ok(out)
    }
}

/// What a saved plan says each sync's run must do, by key hash.
#[derive(Debug, Default)]
pub struct Expected {
    pub syncs: HashMap<String, SyncExpected>,
}

#[derive(Debug, Default)]
pub struct SyncExpected {
    /// Key hash -> the op and, for rows sent with values, their fingerprint.
    pub changes: FxHashMap<Hash128, (Op, Option<Hash128>)>,
    /// When the plan was made (RFC 3339), for the refusal's message.
    pub planned_at: String,
}

/// One real run's comparison with its sync's plan (`SyncExpected`), fed row by row.
#[derive(Debug, Default)]
pub struct Check {
    matched: u64,
    differ: u64,
    new: u64,
    /// Rows the destination lost (removed by hand): a plan, which opens nothing, cannot see them.
    restored: u64,
}

impl Check {
    /// A change the run found: `fingerprint` is `None` for removals.
    pub fn see(&mut self, plan: &SyncExpected, key_hash: Hash128, op: Op, fingerprint: Option<Hash128>, restored: bool) {
        match plan.changes.get(&key_hash) {
            Some(&(o, f)) if o == op && f == fingerprint => self.matched += 1,
            Some(_) => self.differ += 1,
            None if restored => self.restored += 1,
            None => self.new += 1,
        }
    }

    /// `None` when the run found exactly the planned changes; else why it must not send.
    pub fn drift(&self, plan: &SyncExpected, sync: &str) -> Option<String> {
        let planned = plan.changes.len() as u64;
        if self.matched == planned && self.differ == 0 && self.new == 0 && self.restored == 0 {
            return None;
        }
        let gone = planned - self.matched - self.differ;
        let mut parts = vec![format!("{} now differ", self.differ), format!("{} are new", self.new), format!("{gone} are gone")];
        if self.restored > 0 {
            parts.push(format!(
                "{} row(s) removed from the destination by hand would be written again (a plan cannot see the destination: \
                 `sluice run {sync}` restores them)",
                self.restored
            ));
        }
        Some(format!(
            "the model's changes no longer match the plan made at {}: {} of its {planned} change(s) still hold; {}; nothing was \
             sent. Make a new plan (`sluice plan {sync} --out FILE`), review it and apply that",
            plan.planned_at,
            self.matched,
            parts.join(", ")
        ))
    }
}

/// Hashes as 32 hex digits in the plan file (JSON numbers cannot hold 128 bits).
pub mod hex128 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{h:032x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let text = String::deserialize(d)?;
        u128::from_str_radix(&text, 16).map_err(|_| serde::de::Error::custom(format!("`{text}` is not a 32-digit hex hash")))
    }
}

pub mod hex128_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &Option<u128>, s: S) -> Result<S::Ok, S::Error> {
        match h {
            Some(h) => super::hex128::serialize(h, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u128>, D::Error> {
        #[derive(serde::Deserialize)]
        struct Hex(#[serde(with = "super::hex128")] u128);
        Ok(Option::<Hex>::deserialize(d)?.map(|Hex(h)| h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(changes: &[(Hash128, Op, Option<Hash128>)]) -> SyncExpected {
        SyncExpected { changes: changes.iter().map(|&(k, o, f)| (k, (o, f))).collect(), planned_at: "2026-12-07T10:00:00Z".into() }
    }

    #[test]
    fn the_same_changes_pass_and_any_other_is_counted() {
        let plan = expected(&[(1, Op::Upsert, Some(10)), (2, Op::Upsert, Some(20)), (3, Op::Delete, None)]);
        let mut same = Check::default();
        same.see(&plan, 2, Op::Upsert, Some(20), false);
        same.see(&plan, 3, Op::Delete, None, false);
        same.see(&plan, 1, Op::Upsert, Some(10), false);
        assert_eq!(same.drift(&plan, "s"), None);

        let mut other = Check::default();
        other.see(&plan, 1, Op::Upsert, Some(11), false); // values changed since
        other.see(&plan, 4, Op::Upsert, Some(40), false); // a new row
        other.see(&plan, 5, Op::Upsert, Some(50), true); // lost by the destination
        let why = other.drift(&plan, "s").unwrap();
        assert!(why.contains("0 of its 3 change(s) still hold; 1 now differ, 1 are new, 2 are gone"), "{why}");
        assert!(why.contains("1 row(s) removed from the destination by hand"), "{why}");

        // Fewer changes than planned is drift too: the plan would not be what is sent.
        let mut fewer = Check::default();
        fewer.see(&plan, 1, Op::Upsert, Some(10), false);
        assert!(fewer.drift(&plan, "s").unwrap().contains("1 of its 3 change(s) still hold; 0 now differ, 0 are new, 2 are gone"));
    }

    #[test]
    fn recorded_changes_come_back_in_order() {
        let rec = Recorder::default();
        for i in 0..5u128 {
            let p = Planned {
                key: format!("{{\"id\":{i}}}"),
                key_hash: i << 100,
                op: Op::Upsert,
                change: "added".into(),
                fingerprint: Some(u128::MAX - i),
                after: None,
            };
            rec.push("s", &p).unwrap();
        }
        let mut back = rec.take("s").unwrap();
        assert_eq!(back.count, 5);
        let first = back.next_chunk(3).unwrap();
        assert_eq!(first.iter().map(|p| p.key_hash).collect::<Vec<_>>(), [0, 1 << 100, 2 << 100]);
        assert_eq!(first[2].fingerprint, Some(u128::MAX - 2));
        assert_eq!(back.next_chunk(3).unwrap().len(), 2);
        assert!(rec.take("other").unwrap().next_chunk(3).unwrap().is_empty());
    }
}
