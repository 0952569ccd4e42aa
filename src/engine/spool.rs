//! The rows a run will send, parked in an anonymous temp file between the scan (which must see
//! every row before anything is sent, to catch duplicate keys) and the send phase. Keeps memory
//! flat however many rows changed.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use serde::{Deserialize, Serialize};

use crate::destinations::Op;
use crate::value::{Hash128, Value};

#[derive(Debug, Serialize, Deserialize)]
pub struct SpoolRow {
    pub op: Op,
    pub key_hash: Hash128,
    pub fingerprint: Hash128,
    pub key: Vec<Value>,
    pub fields: Vec<Value>,
    /// The source database's key and fingerprint (`diff = "warehouse"`), recorded in its
    /// table once the row is written.
    pub warehouse: Option<super::warehouse::WarehouseRow>,
}

pub struct Spool {
    writer: BufWriter<File>,
    len: u64,
}

fn io(e: std::io::Error) -> String {
    format!("spool file: {e}")
}

impl Spool {
    pub fn new() -> Result<Spool, String> {
        Ok(Spool { writer: BufWriter::new(tempfile::tempfile().map_err(io)?), len: 0 })
    }

    pub fn push(&mut self, row: &SpoolRow) -> Result<(), String> {
        let bytes = postcard::to_stdvec(row).map_err(|e| format!("spool encode: {e}"))?;
        self.writer.write_all(&(bytes.len() as u32).to_le_bytes()).map_err(io)?;
        self.writer.write_all(&bytes).map_err(io)?;
        self.len += 1;
        Ok(())
    }

    /// The first row of each of up to `limit` of the given keys, in spool order (naming the
    /// rows of a failed run: reads the whole spool).
    pub fn find(self, keys: &rustc_hash::FxHashSet<Hash128>, limit: usize) -> Result<Vec<SpoolRow>, String> {
        let mut reader = self.into_reader()?;
        let mut found: Vec<SpoolRow> = Vec::new();
        while found.len() < limit {
            let rows = reader.next_batch(1_000)?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                if found.len() < limit && keys.contains(&row.key_hash) && !found.iter().any(|f| f.key_hash == row.key_hash) {
                    found.push(row);
                }
            }
        }
        Ok(found)
    }

    /// Ends writing; the reader yields the rows in the order they were pushed.
    pub fn into_reader(self) -> Result<SpoolReader, String> {
        let mut file = self.writer.into_inner().map_err(|e| io(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        Ok(SpoolReader { reader: BufReader::new(file), left: self.len, buf: Vec::new() })
    }
}

pub struct SpoolReader {
    reader: BufReader<File>,
    left: u64,
    buf: Vec<u8>,
}

impl SpoolReader {
    /// Up to `n` next rows; empty when done.
    pub fn next_batch(&mut self, n: usize) -> Result<Vec<SpoolRow>, String> {
        let mut out = Vec::with_capacity(n.min(self.left as usize));
        while out.len() < n && self.left > 0 {
            let mut len = [0u8; 4];
            self.reader.read_exact(&mut len).map_err(io)?;
            self.buf.resize(u32::from_le_bytes(len) as usize, 0);
            self.reader.read_exact(&mut self.buf).map_err(io)?;
            out.push(postcard::from_bytes(&self.buf).map_err(|e| format!("spool decode: {e}"))?);
            self.left -= 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_back_in_order_and_in_batches() {
        let mut spool = Spool::new().unwrap();
        for i in 0..5 {
            let row = SpoolRow {
                op: Op::Upsert,
                key_hash: i,
                fingerprint: i * 7,
                key: vec![Value::Int(i as i64)],
                fields: vec![Value::Float(f64::NAN), Value::Timestamp(chrono::Utc::now()), Value::Null],
                warehouse: None,
            };
            spool.push(&row).unwrap();
        }
        let mut r = spool.into_reader().unwrap();
        let first = r.next_batch(3).unwrap();
        assert_eq!(first.iter().map(|r| r.key_hash).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(r.next_batch(3).unwrap().len(), 2);
        assert!(r.next_batch(3).unwrap().is_empty());
    }
}
