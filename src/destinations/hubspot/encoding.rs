//! Values as HubSpot property strings, and HubSpot's batch answers as per-row outcomes. No I/O.

use std::collections::HashMap;

use chrono::{NaiveTime, TimeZone, Utc};
use serde_json::Value as J;

use crate::destinations::RowOutcome;
use crate::value::Value;

/// A property's type, as `GET /crm/v3/properties/{object}` gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropertyType {
    Date,
    DateTime,
    Other,
}

impl PropertyType {
    pub fn from_api(kind: &str) -> PropertyType {
        match kind {
            "date" => PropertyType::Date,
            "datetime" => PropertyType::DateTime,
            _ => PropertyType::Other,
        }
    }
}

/// Every property travels as a string. NULL is `""`, which clears the property; booleans are
/// `true`/`false`; date properties take midnight UTC as epoch milliseconds, datetime properties
/// the instant in epoch milliseconds.
pub fn property(value: &Value, kind: PropertyType) -> String {
    let midnight = |d: chrono::NaiveDate| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN)).timestamp_millis().to_string();
    match (value, kind) {
        (Value::Date(d), _) => midnight(*d),
        (Value::Timestamp(t), PropertyType::Date) => midnight(t.date_naive()),
        (Value::Timestamp(t), _) => t.timestamp_millis().to_string(),
        (Value::Json(text), _) => text.clone(),
        (other, _) => other.to_text(),
    }
}

/// How record ids are compared: HubSpot matches emails and unique values case-insensitively.
pub fn id_key(id: &str) -> String {
    id.trim().to_lowercase()
}

/// One batch answer (200, 201 or 207) as outcomes for `ids` (the id property value of each row,
/// `None` for rows not sent). Results are matched by `id_property`'s value, errors by their
/// `context.ids`; `by_record_id` matches results by HubSpot's record id instead (batch/update).
pub fn outcomes(body: &J, ids: &[Option<String>], id_property: &str, by_record_id: bool) -> Vec<Option<RowOutcome>> {
    let mut position: HashMap<String, usize> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        if let Some(id) = id {
            position.insert(id_key(id), i);
        }
    }
    let mut out: Vec<Option<RowOutcome>> = vec![None; ids.len()];
    let results = body["results"].as_array().cloned().unwrap_or_default();
    for r in &results {
        let record = r["id"].as_str().map(str::to_string);
        let matched = if by_record_id { record.clone() } else { r["properties"][id_property].as_str().map(str::to_string) };
        if let Some(&i) = matched.and_then(|m| position.get(&id_key(&m))) {
            out[i] = Some(RowOutcome::Written { destination_id: record });
        }
    }
    for e in body["errors"].as_array().into_iter().flatten() {
        let category = e["category"].as_str().unwrap_or("");
        let message =
            format!("{}: {}", if category.is_empty() { "error" } else { category }, e["message"].as_str().unwrap_or("no message"));
        // Data problems are not worth retrying until the row changes; anything else may pass later.
        let data_problem =
            matches!(category, "VALIDATION_ERROR" | "CONFLICT" | "OBJECT_NOT_FOUND" | "INVALID_EMAIL" | "PROPERTY_DOESNT_EXIST");
        for id in e["context"]["ids"].as_array().into_iter().flatten().filter_map(J::as_str) {
            if let Some(&i) = position.get(&id_key(id)) {
                out[i] = Some(if data_problem { RowOutcome::Rejected(message.clone()) } else { RowOutcome::Retryable(message.clone()) });
            }
        }
    }
    // A full answer in the order asked, whose results did not echo the id property.
    let sent = ids.iter().filter(|i| i.is_some()).count();
    if results.len() == sent && body["errors"].as_array().is_none_or(Vec::is_empty) && out.iter().flatten().count() < sent {
        let mut results = results.iter();
        for (slot, id) in out.iter_mut().zip(ids) {
            if id.is_some() {
                let record = results.next().and_then(|r| r["id"].as_str()).map(str::to_string);
                slot.get_or_insert(RowOutcome::Written { destination_id: record });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn properties_are_strings_hubspot_accepts() {
        let d = chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        assert_eq!(property(&Value::Date(d), PropertyType::Date), "1709251200000");
        let t = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap();
        assert_eq!(property(&Value::Timestamp(t), PropertyType::Date), "1709251200000");
        assert_eq!(property(&Value::Timestamp(t), PropertyType::DateTime), "1709294400000");
        assert_eq!(property(&Value::Bool(true), PropertyType::Other), "true");
        assert_eq!(property(&Value::Null, PropertyType::Other), "");
        assert_eq!(property(&Value::Decimal("12.5".into()), PropertyType::Other), "12.5");
    }

    #[test]
    fn answers_become_row_outcomes() {
        let body = json!({
            "status": "COMPLETE",
            "results": [{"id": "11", "properties": {"email": "ann@x.com"}}],
            "numErrors": 2,
            "errors": [
                {"status": "error", "category": "VALIDATION_ERROR", "message": "Property values were not valid", "context": {"ids": ["BOB@x.com"]}},
                {"status": "error", "category": "INTERNAL_ERROR", "message": "try later", "context": {"ids": ["cy@x.com"]}}
            ]
        });
        let ids = vec![Some("Ann@x.com".into()), Some("bob@x.com".into()), Some("cy@x.com".into()), Some("dee@x.com".into()), None];
        let out = outcomes(&body, &ids, "email", false);
        assert_eq!(out[0], Some(RowOutcome::Written { destination_id: Some("11".into()) }));
        assert!(matches!(&out[1], Some(RowOutcome::Rejected(m)) if m.contains("VALIDATION_ERROR")));
        assert!(matches!(&out[2], Some(RowOutcome::Retryable(_))));
        assert_eq!((&out[3], &out[4]), (&None, &None));
    }
}
