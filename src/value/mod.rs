//! The canonical value model.
//!
//! Every source converts its native values into [`Value`] so that the same data gives the same
//! fingerprint whether it came from Postgres or DuckDB: integers of every width become `Int`,
//! exact numerics become a normalised decimal string, timestamps are UTC instants, JSON is
//! re-serialised with sorted keys. Destinations encode from `Value` too, so a type is converted
//! in exactly one place per direction.

mod json;
mod types;

pub use types::ValueType;

use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, SecondsFormat, Timelike, Utc};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

/// One cell of a model row, in canonical form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Bool(bool),
    /// Every integer type that fits in 64 bits.
    Int(i64),
    Float(f64),
    /// An exact numeric as a normalised decimal string: no exponent, no trailing fractional
    /// zeros, no `-0` (see [`normalize_decimal`]). `1.50` and `1.5` are the same value.
    Decimal(String),
    Text(String),
    Bytes(Vec<u8>),
    Date(NaiveDate),
    Time(NaiveTime),
    /// A point in time. Timestamps without a time zone are taken as UTC.
    Timestamp(DateTime<Utc>),
    Uuid(uuid::Uuid),
    /// Canonical JSON text: compact, object keys sorted.
    Json(String),
    Array(Vec<Value>),
}

/// `id=42, region=EU`: a key in a message.
pub fn key_label(columns: &[String], values: &[Value]) -> String {
    columns.iter().zip(values).map(|(c, v)| format!("{c}={v}")).collect::<Vec<_>>().join(", ")
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Canonical JSON text of any JSON document: compact, object keys sorted at every level.
    pub fn json_from_str(text: &str) -> Result<Value, serde_json::Error> {
        json::canonical(text).map(Value::Json)
    }

    pub fn json(v: &serde_json::Value) -> Value {
        // serde_json's maps keep keys sorted unless its `preserve_order` feature is on: then
        // (and only then) the document is rebuilt with sorted keys.
        if keys_sorted(v) {
            Value::Json(v.to_string())
        } else {
            Value::Json(sorted_json(v).to_string())
        }
    }

    /// The value as a JSON value for destinations that speak JSON. Exact decimals become numbers
    /// only when an f64 renders back to the same digits; otherwise they stay strings so that no
    /// precision is lost silently.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map(J::Number).unwrap_or_else(|| J::String(float_text(*f))),
            Value::Decimal(d) => decimal_as_json_number(d).unwrap_or_else(|| J::String(d.clone())),
            Value::Json(text) => serde_json::from_str(text).unwrap_or_else(|_| J::String(text.clone())),
            Value::Array(items) => J::Array(items.iter().map(Value::to_json).collect()),
            other => J::String(other.to_text()),
        }
    }

    /// The value as text, for text-only destinations (CSV cells, sheet cells). NULL is empty.
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => float_text(*f),
            Value::Decimal(d) => d.clone(),
            Value::Text(s) => s.clone(),
            Value::Bytes(b) => base64::engine::general_purpose::STANDARD.encode(b),
            Value::Date(d) => d.format("%Y-%m-%d").to_string(),
            Value::Time(t) => time_text(t),
            Value::Timestamp(ts) => ts.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            Value::Uuid(u) => u.hyphenated().to_string(),
            Value::Json(text) => text.clone(),
            Value::Array(_) => self.to_json().to_string(),
        }
    }

    /// Appends the type-tagged canonical encoding that fingerprints hash. Every variable-length
    /// part is length-prefixed, so two different value sequences never encode to the same bytes.
    /// Stored fingerprints depend on these bytes: changing them re-sends every row once.
    fn encode_into(&self, h: &mut Vec<u8>) {
        match self {
            Value::Null => h.extend_from_slice(&[0]),
            Value::Bool(b) => h.extend_from_slice(&[1, *b as u8]),
            Value::Int(i) => {
                h.extend_from_slice(&[2]);
                h.extend_from_slice(&i.to_le_bytes());
            }
            Value::Float(f) => {
                h.extend_from_slice(&[3]);
                h.extend_from_slice(&canonical_float_bits(*f).to_le_bytes());
            }
            Value::Decimal(d) => hash_bytes(h, 4, d.as_bytes()),
            Value::Text(s) => hash_bytes(h, 5, s.as_bytes()),
            Value::Bytes(b) => hash_bytes(h, 6, b),
            Value::Date(d) => {
                h.extend_from_slice(&[7]);
                h.extend_from_slice(&d.num_days_from_ce().to_le_bytes());
            }
            Value::Time(t) => {
                h.extend_from_slice(&[8]);
                let nanos = t.num_seconds_from_midnight() as u64 * 1_000_000_000 + t.nanosecond() as u64;
                h.extend_from_slice(&nanos.to_le_bytes());
            }
            Value::Timestamp(ts) => {
                h.extend_from_slice(&[9]);
                h.extend_from_slice(&ts.timestamp().to_le_bytes());
                h.extend_from_slice(&ts.timestamp_subsec_nanos().to_le_bytes());
            }
            Value::Uuid(u) => {
                h.extend_from_slice(&[10]);
                h.extend_from_slice(u.as_bytes());
            }
            Value::Json(text) => hash_bytes(h, 11, text.as_bytes()),
            Value::Array(items) => {
                h.extend_from_slice(&[12]);
                h.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for item in items {
                    item.encode_into(h);
                }
            }
        }
    }
}

/// Serialises a value exactly as [`Value::to_json`] renders it, without building a JSON tree
/// for the common types: destinations encode every cell of every row sent, and `to_json` copies
/// each string.
pub struct AsJson<'a>(pub &'a Value);

impl Serialize for AsJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) if f.is_finite() => s.serialize_f64(*f),
            Value::Text(t) => s.serialize_str(t),
            Value::Array(items) => s.collect_seq(items.iter().map(AsJson)),
            other => other.to_json().serialize(s),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            other => f.write_str(&other.to_text()),
        }
    }
}

/// Rebuilds objects with their keys inserted in sorted order, so the text is canonical whether
/// serde_json's map keeps insertion order or sorts.
fn sorted_json(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        J::Object(map) => {
            let mut entries: Vec<(&String, &J)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            J::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted_json(v))).collect())
        }
        J::Array(items) => J::Array(items.iter().map(sorted_json).collect()),
        other => other.clone(),
    }
}

fn keys_sorted(v: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match v {
        J::Object(map) => map.keys().is_sorted() && map.values().all(keys_sorted),
        J::Array(items) => items.iter().all(keys_sorted),
        _ => true,
    }
}

fn hash_bytes(h: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    h.push(tag);
    h.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    h.extend_from_slice(bytes);
}

/// `-0.0` equals `0.0` and every NaN is the same NaN.
fn canonical_float_bits(f: f64) -> u64 {
    if f == 0.0 {
        0
    } else if f.is_nan() {
        f64::NAN.to_bits()
    } else {
        f.to_bits()
    }
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else {
        f.to_string()
    }
}

fn time_text(t: &NaiveTime) -> String {
    if t.nanosecond() == 0 {
        t.format("%H:%M:%S").to_string()
    } else {
        t.format("%H:%M:%S%.f").to_string()
    }
}

fn decimal_as_json_number(d: &str) -> Option<serde_json::Value> {
    if !d.contains('.') {
        if let Ok(i) = d.parse::<i64>() {
            return Some(serde_json::Value::from(i));
        }
    }
    let f: f64 = d.parse().ok()?;
    let number = serde_json::Number::from_f64(f)?;
    // Only when the shortest f64 rendering is the same digits is the number exact.
    let rendered = if f.fract() == 0.0 && !d.contains('.') { format!("{f:.0}") } else { f.to_string() };
    (rendered == d).then_some(serde_json::Value::Number(number))
}

/// Normalises a plain decimal string (`-12.3400`, `+5`, `0.0`) to the canonical form
/// (`-12.34`, `5`, `0`). Input must be digits with an optional sign and point: no exponent.
pub fn normalize_decimal(plain: &str) -> String {
    let (negative, digits) = match plain.as_bytes().first() {
        Some(b'-') => (true, &plain[1..]),
        Some(b'+') => (false, &plain[1..]),
        _ => (false, plain),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    let int_part = int_part.trim_start_matches('0');
    let frac_part = frac_part.trim_end_matches('0');
    let int_part = if int_part.is_empty() { "0" } else { int_part };
    if int_part == "0" && frac_part.is_empty() {
        return "0".into();
    }
    let mut out = String::with_capacity(plain.len());
    if negative {
        out.push('-');
    }
    out.push_str(int_part);
    if !frac_part.is_empty() {
        out.push('.');
        out.push_str(frac_part);
    }
    out
}

/// A 128-bit hash: the identity of a row (its key) or the content of a row (its fingerprint).
pub type Hash128 = u128;

/// Hashes a sequence of values (the key columns, or the mapped columns in mapping order).
pub fn hash_values<'a>(values: impl IntoIterator<Item = &'a Value>) -> Hash128 {
    let hashed: Result<Hash128, std::convert::Infallible> = hash_with(|e| {
        values.into_iter().for_each(|v| e.value(v));
        Ok(())
    });
    match hashed {
        Ok(hash) => hash,
        Err(never) => match never {},
    }
}

/// Hashes what `encode` appends: the same hash as [`hash_values`] of the values it encodes.
/// `encode` must not hash anything itself (the buffer is borrowed while it runs).
///
/// The encoding goes into one reused buffer, hashed in one call: xxh3's one-shot hash is the
/// streaming hash of the same bytes, and several times faster than feeding it piece by piece.
pub fn hash_with<E>(encode: impl FnOnce(&mut Encoder<'_>) -> Result<(), E>) -> Result<Hash128, E> {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        let encoded = encode(&mut Encoder(buf));
        let hash = xxh3_128(buf);
        // One huge cell (a 10 MB JSON document) must not stay pinned per thread.
        if buf.capacity() > 1 << 20 {
            *buf = Vec::new();
        }
        encoded.map(|()| hash)
    })
}

/// Appends values to a fingerprint encoding. Sources that hold cells in their own form
/// (DuckDB's Arrow chunks) encode text and JSON straight from it, without building a `Value`
/// (a copied string) per cell: most rows of most runs are unchanged and only ever hashed.
pub struct Encoder<'a>(&'a mut Vec<u8>);

impl Encoder<'_> {
    pub fn value(&mut self, v: &Value) {
        v.encode_into(self.0);
    }

    /// What `Value::Text(s)` encodes to.
    pub fn text(&mut self, s: &str) {
        hash_bytes(self.0, 5, s.as_bytes());
    }

    /// What `Value::json_from_str(text)` encodes to, or why `text` is not JSON.
    pub fn json(&mut self, text: &str) -> Result<(), serde_json::Error> {
        // The canonical text is written in place, and its length filled in after.
        self.0.push(11);
        let at = self.0.len();
        self.0.extend_from_slice(&[0; 8]);
        json::canonical_into(text, self.0)?;
        let len = (self.0.len() - at - 8) as u64;
        self.0[at..at + 8].copy_from_slice(&len.to_le_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_normalise_to_one_spelling() {
        assert_eq!(normalize_decimal("1.50"), "1.5");
        assert_eq!(normalize_decimal("-0.000"), "0");
        assert_eq!(normalize_decimal("+007.0100"), "7.01");
        assert_eq!(normalize_decimal("-12"), "-12");
        assert_eq!(normalize_decimal(".5"), "0.5");
        assert_eq!(normalize_decimal("100"), "100");
    }

    #[test]
    fn decimals_become_json_numbers_only_when_exact() {
        assert_eq!(Value::Decimal("123.45".into()).to_json(), serde_json::json!(123.45));
        assert_eq!(Value::Decimal("100".into()).to_json(), serde_json::json!(100));
        let big = "12345678901234567890.123456789";
        assert_eq!(Value::Decimal(big.into()).to_json(), serde_json::json!(big));
    }

    #[test]
    fn hashing_is_type_tagged_and_unambiguous() {
        let a = hash_values(&[Value::Text("1".into())]);
        let b = hash_values(&[Value::Int(1)]);
        assert_ne!(a, b, "text '1' and integer 1 must differ");
        let ab_c = hash_values(&[Value::Text("ab".into()), Value::Text("c".into())]);
        let a_bc = hash_values(&[Value::Text("a".into()), Value::Text("bc".into())]);
        assert_ne!(ab_c, a_bc, "column boundaries are part of the encoding");
        assert_eq!(hash_values(&[Value::Float(0.0)]), hash_values(&[Value::Float(-0.0)]));
        assert_ne!(hash_values(&[Value::Null]), hash_values(&[Value::Text(String::new())]));
    }

    #[test]
    fn fingerprints_stay_what_earlier_versions_stored() {
        // xxh3-128 of [2, 42i64 LE, 5, 1u64 LE, "a", 0], by the reference implementation: a
        // change here re-sends every row of every sync once after an upgrade.
        let h = hash_values(&[Value::Int(42), Value::Text("a".into()), Value::Null]);
        assert_eq!(h, 0xd33079fc09046d5b6c3f617296817f19);
    }

    #[test]
    fn the_encoder_hashes_text_and_json_as_their_values_hash() {
        let doc = r#"{"b": [1, 2.5], "a": "\u00e9"}"#;
        let values = [Value::Int(7), Value::Text("caf\u{e9}".into()), Value::json_from_str(doc).unwrap(), Value::Null];
        let encoded = hash_with(|e| {
            e.value(&values[0]);
            e.text("caf\u{e9}");
            e.json(doc)?;
            e.value(&Value::Null);
            Ok::<(), serde_json::Error>(())
        });
        assert_eq!(encoded.unwrap(), hash_values(&values));
        assert!(hash_with(|e| e.json("{")).is_err());
    }

    #[test]
    fn json_is_canonical_regardless_of_key_order() {
        let a = Value::json_from_str(r#"{"b": 1, "a": [1, 2]}"#).unwrap();
        let b = Value::json_from_str(r#"{"a":[1,2],"b":1}"#).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn as_json_renders_as_to_json_does() {
        let ts = DateTime::parse_from_rfc3339("2024-03-01T10:00:00.250+02:00").unwrap().with_timezone(&Utc);
        let values = [
            Value::Null,
            Value::Bool(true),
            Value::Int(-7),
            Value::Float(0.1),
            Value::Float(1e300),
            Value::Float(f64::NAN),
            Value::Float(f64::NEG_INFINITY),
            Value::Decimal("12.5".into()),
            Value::Decimal("12345678901234567890.1".into()),
            Value::Text("quote \" and \u{e9}\n".into()),
            Value::Bytes(vec![0, 255]),
            Value::Timestamp(ts),
            Value::json_from_str(r#"{"b": [1, 2.5], "a": null}"#).unwrap(),
            Value::Array(vec![Value::Int(1), Value::Null, Value::Text("x".into())]),
        ];
        for v in &values {
            assert_eq!(serde_json::to_string(&AsJson(v)).unwrap(), v.to_json().to_string(), "{v:?}");
        }
    }

    #[test]
    fn text_rendering_of_temporal_values() {
        let ts = DateTime::parse_from_rfc3339("2024-03-01T10:00:00.250+02:00").unwrap().with_timezone(&Utc);
        assert_eq!(Value::Timestamp(ts).to_text(), "2024-03-01T08:00:00.250Z");
        let t = NaiveTime::from_hms_opt(7, 5, 0).unwrap();
        assert_eq!(Value::Time(t).to_text(), "07:05:00");
    }
}
