//! How a row's key is stored (`key_json` in the state store) and shown to people.
//!
//! Stored form: a JSON object of key column -> typed [`Value`] (`{"id":{"Int":42}}`), in key
//! order, so a removed row's key can be sent back to the destination exactly as it was.

use indexmap::IndexMap;

use crate::value::{AsJson, Value};

pub fn key_json(columns: &[String], values: &[Value]) -> String {
    let map: IndexMap<&str, &Value> = columns.iter().map(String::as_str).zip(values.iter()).collect();
    // Serialising strings and plain enums to JSON cannot fail.
    serde_json::to_string(&map).unwrap_or_default()
}

/// The key as plain JSON in key order (`{"id":42}`): how the change log stores it.
pub fn plain_key_json(columns: &[String], values: &[Value]) -> String {
    let map: IndexMap<&str, AsJson> = columns.iter().map(String::as_str).zip(values.iter().map(AsJson)).collect();
    serde_json::to_string(&map).unwrap_or_default()
}

/// The key values back from the stored form, in key order.
pub fn parse_key_json(text: &str) -> Result<Vec<Value>, String> {
    let map: IndexMap<String, Value> =
        serde_json::from_str(text).map_err(|e| format!("corrupt key in the state store ({e}): run `sluice reset` for this sync"))?;
    Ok(map.into_values().collect())
}

/// The stored key as plain JSON (`{"id":42}`), for `status`/`failures` output.
pub fn display_key_json(text: &str) -> serde_json::Value {
    match serde_json::from_str::<IndexMap<String, Value>>(text) {
        Ok(map) => serde_json::Value::Object(map.into_iter().map(|(k, v)| (k, v.to_json())).collect()),
        Err(_) => serde_json::Value::String(text.to_string()),
    }
}

/// The stored key as plain JSON text in key order (`{"id":42}`): the change log's form.
pub fn plain_from_stored(text: &str) -> String {
    match serde_json::from_str::<IndexMap<String, Value>>(text) {
        Ok(map) => serde_json::to_string(&map.iter().map(|(k, v)| (k.as_str(), AsJson(v))).collect::<IndexMap<_, _>>()).unwrap_or_default(),
        Err(_) => text.to_string(),
    }
}

pub use crate::value::key_label;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_keys_round_trip_in_key_order() {
        let cols = vec!["z".to_string(), "a".to_string()];
        let vals = vec![Value::Int(1), Value::Text("x".into())];
        let stored = key_json(&cols, &vals);
        assert_eq!(parse_key_json(&stored).unwrap(), vals);
        assert_eq!(display_key_json(&stored), serde_json::json!({"z": 1, "a": "x"}));
        assert_eq!(key_label(&cols, &vals), "z=1, a=x");
    }
}
