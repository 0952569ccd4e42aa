//! The scan's first stage: every row of a model chunk hashed (its key hash and fingerprint) on
//! a thread of its own, between the source's reader and the diff. Hashing is most of a scan's
//! work when little changed (JSON canonicalised, every mapped cell encoded); on its own thread
//! it overlaps the diff's lookups instead of waiting for them. Chunks stay in model order, and
//! at most `HASHED_IN_FLIGHT` wait, so memory stays bounded as it is with the source alone.

use tokio::sync::mpsc;

use super::shape::Shape;
use super::{keys, RunError};
use crate::source::{Chunk, SourceError};
use crate::value::{hash_values, hash_with, Hash128, Value};

const HASHED_IN_FLIGHT: usize = 2;

/// A chunk with the hashes of its rows.
pub struct Hashed {
    pub chunk: Chunk,
    /// (key hash, fingerprint) of each row with a whole key, in row order.
    pub probes: Vec<(Hash128, Hash128)>,
    /// The chunk row of each probe.
    pub rows: Vec<usize>,
    /// The field values of each probe's row, for syncs with static values or templates
    /// (empty otherwise): they were built to be hashed, and are what is sent.
    pub computed: Vec<Vec<Value>>,
    /// Rows with a key that cannot be one: (chunk row, index into the key columns, why).
    pub bad_keys: Vec<(usize, usize, BadKey)>,
}

/// Why a row's key cannot be a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadKey {
    Null,
    /// NaN or an infinity: NaN equals nothing, and neither has a JSON form to store.
    NotFinite,
}

/// Hashes the chunks of `source` as they come, each fingerprint prefixed with `fp_prefix` (the
/// configuration fingerprint); the stage stops when the receiver is dropped or at the first
/// error, which it passes on.
pub fn spawn(
    shape: Shape,
    fp_prefix: Value,
    mut source: mpsc::Receiver<Result<Chunk, SourceError>>,
) -> mpsc::Receiver<Result<Hashed, RunError>> {
    let (tx, rx) = mpsc::channel(HASHED_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        while let Some(chunk) = source.blocking_recv() {
            let hashed = chunk.map_err(RunError::from).and_then(|chunk| hash_chunk(&shape, &fp_prefix, chunk));
            let failed = hashed.is_err();
            if tx.blocking_send(hashed).is_err() || failed {
                return;
            }
        }
    });
    rx
}

fn hash_chunk(shape: &Shape, fp_prefix: &Value, chunk: Chunk) -> Result<Hashed, RunError> {
    let n = chunk.len();
    let mut out = Hashed { probes: Vec::with_capacity(n), rows: Vec::with_capacity(n), computed: Vec::new(), bad_keys: Vec::new(), chunk };
    let chunk = &out.chunk;
    for r in 0..n {
        if let Some(k) = shape.key_idx.iter().position(|&i| chunk.is_null(r, i)) {
            out.bad_keys.push((r, k, BadKey::Null));
            continue;
        }
        let not_finite = |k: &usize| matches!(chunk.value(r, shape.key_idx[*k]), Ok(Value::Float(f)) if !f.is_finite());
        if let Some(k) = shape.float_keys.iter().copied().find(not_finite) {
            out.bad_keys.push((r, k, BadKey::NotFinite));
            continue;
        }
        // Hashed where the chunk holds the cells: most rows of most runs are unchanged, and
        // copy nothing. Static values and templates are filled in first, for the syncs that
        // have them.
        let key_hash = hash_with(|e| chunk.encode_cells(r, &shape.key_idx, e))?;
        let fingerprint = if shape.computed() {
            let row = chunk.row(r)?;
            let values = shape
                .field_values(&row)
                .map_err(|e| RunError::Invalid(format!("{e} (row {})", keys::key_label(&shape.key_columns, &shape.key_of(&row)))))?;
            let fingerprint = hash_values(std::iter::once(fp_prefix).chain(&values));
            out.computed.push(values);
            fingerprint
        } else {
            hash_with(|e| {
                e.value(fp_prefix);
                chunk.encode_cells(r, &shape.field_idx, e)
            })?
        };
        out.probes.push((key_hash, fingerprint));
        out.rows.push(r);
    }
    Ok(out)
}
