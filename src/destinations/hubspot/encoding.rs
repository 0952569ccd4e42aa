//! Values as HubSpot property strings, and HubSpot's batch answers as per-row outcomes. No I/O.

use std::collections::HashMap;

use chrono::{NaiveTime, TimeZone, Utc};
use serde_json::Value as J;

use crate::destinations::RowOutcome;
use crate::value::Value;

/// A property's type, as `GET /crm/v3/properties/{object}` gives it: where a value is written
/// or compared in a way of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropertyType {
    Date,
    DateTime,
    /// HubSpot echoes numbers in their plain form: `00042` comes back as `42`.
    Number,
    /// A multiple-checkbox enumeration: its options joined by `;`.
    MultipleCheckbox,
    Other,
}

impl PropertyType {
    pub fn from_api(kind: &str, field_type: &str) -> PropertyType {
        match (kind, field_type) {
            ("date", _) => PropertyType::Date,
            ("datetime", _) => PropertyType::DateTime,
            ("number", _) => PropertyType::Number,
            ("enumeration", "checkbox") => PropertyType::MultipleCheckbox,
            _ => PropertyType::Other,
        }
    }
}

/// Every property travels as a string. NULL is `""`, which clears the property; booleans are
/// `true`/`false`; date properties take midnight UTC as epoch milliseconds, datetime properties
/// the instant in epoch milliseconds; a list (or a JSON array) for a multiple-checkbox property
/// is its values joined by `;` (HubSpot's format: a JSON text would be one unknown option).
pub fn property(value: &Value, kind: PropertyType) -> String {
    let midnight = |d: chrono::NaiveDate| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN)).timestamp_millis().to_string();
    match (value, kind) {
        (Value::Date(d), _) => midnight(*d),
        (Value::Timestamp(t), PropertyType::Date) => midnight(t.date_naive()),
        (Value::Timestamp(t), _) => t.timestamp_millis().to_string(),
        (Value::Array(items), PropertyType::MultipleCheckbox) => {
            items.iter().filter(|v| !v.is_null()).map(Value::to_text).collect::<Vec<_>>().join(";")
        }
        (Value::Json(text), PropertyType::MultipleCheckbox) => match serde_json::from_str::<Vec<J>>(text) {
            Ok(items) => items
                .iter()
                .filter(|v| !v.is_null())
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(";"),
            Err(_) => text.clone(),
        },
        (Value::Json(text), _) => text.clone(),
        (other, _) => other.to_text(),
    }
}

/// How an id property's values are compared, as HubSpot compares them: emails and unique
/// values case-insensitively, numbers by their value (`00042` is `42`).
pub fn id_key(id: &str, kind: PropertyType) -> String {
    let id = id.trim();
    if kind == PropertyType::Number {
        if let Ok(n) = id.parse::<f64>() {
            if n.is_finite() && n.fract() == 0.0 && n.abs() < 1e15 {
                return format!("{}", n as i64);
            }
            if n.is_finite() {
                return format!("{n}");
            }
        }
    }
    id.to_lowercase()
}

/// What one batch answer (200, 201 or 207) says of the rows it carried.
#[derive(Debug, Default)]
pub struct Answered {
    /// Per row: its outcome, or `None` where the answer does not mention it (it stays pending:
    /// results come in any order, and a row is never matched by position).
    pub outcomes: Vec<Option<RowOutcome>>,
    /// Rows whose record HubSpot does not know (OBJECT_NOT_FOUND): deleted or merged away.
    pub not_found: Vec<usize>,
}

/// One batch answer as outcomes for the rows it carried, `ids` their id property values (or,
/// with `by_record_id`, HubSpot record ids: batch/update). Results are matched by that value as
/// HubSpot echoes it (normalised: compared with [`id_key`]), errors by their `context.ids`.
pub fn outcomes(body: &J, ids: &[String], kind: PropertyType, id_property: &str, by_record_id: bool) -> Answered {
    let kind = if by_record_id { PropertyType::Other } else { kind };
    let position: HashMap<String, usize> = ids.iter().enumerate().map(|(i, id)| (id_key(id, kind), i)).collect();
    let mut answered = Answered { outcomes: vec![None; ids.len()], not_found: Vec::new() };
    for r in body["results"].as_array().into_iter().flatten() {
        let record = r["id"].as_str().map(str::to_string);
        let matched = if by_record_id { record.clone() } else { r["properties"][id_property].as_str().map(str::to_string) };
        if let Some(&i) = matched.and_then(|m| position.get(&id_key(&m, kind))) {
            answered.outcomes[i] = Some(RowOutcome::Written { destination_id: record });
        }
    }
    for e in body["errors"].as_array().into_iter().flatten() {
        let category = e["category"].as_str().unwrap_or("");
        let message =
            format!("{}: {}", if category.is_empty() { "error" } else { category }, e["message"].as_str().unwrap_or("no message"));
        // Data problems are not worth retrying until the row changes; anything else may pass later.
        let data_problem = matches!(category, "VALIDATION_ERROR" | "CONFLICT" | "INVALID_EMAIL" | "PROPERTY_DOESNT_EXIST");
        for id in e["context"]["ids"].as_array().into_iter().flatten().filter_map(J::as_str) {
            let Some(&i) = position.get(&id_key(id, kind)) else { continue };
            match category {
                "OBJECT_NOT_FOUND" => answered.not_found.push(i),
                _ if data_problem => answered.outcomes[i] = Some(RowOutcome::Rejected(message.clone())),
                _ => answered.outcomes[i] = Some(RowOutcome::Retryable(message.clone())),
            }
        }
    }
    answered
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
        let ids: Vec<String> = ["Ann@x.com", "bob@x.com", "cy@x.com", "dee@x.com"].map(String::from).to_vec();
        let out = outcomes(&body, &ids, PropertyType::Other, "email", false).outcomes;
        assert_eq!(out[0], Some(RowOutcome::Written { destination_id: Some("11".into()) }));
        assert!(matches!(&out[1], Some(RowOutcome::Rejected(m)) if m.contains("VALIDATION_ERROR")));
        assert!(matches!(&out[2], Some(RowOutcome::Retryable(_))));
        assert_eq!(&out[3], &None);
    }

    #[test]
    fn results_are_matched_by_value_never_by_position() {
        // Every row answered, but the results do not echo the id property: none is guessed.
        let body = json!({ "status": "COMPLETE", "results": [{"id": "11", "properties": {}}, {"id": "12", "properties": {}}] });
        let ids: Vec<String> = vec!["a@x.com".into(), "b@x.com".into()];
        assert_eq!(outcomes(&body, &ids, PropertyType::Other, "email", false).outcomes, vec![None, None]);
        // Numbers come back in their plain form.
        let body = json!({ "results": [{"id": "7", "properties": {"erp_id": "42"}}] });
        let out = outcomes(&body, &["00042".to_string()], PropertyType::Number, "erp_id", false).outcomes;
        assert_eq!(out, vec![Some(RowOutcome::Written { destination_id: Some("7".into()) })]);
        // A record HubSpot does not know is named, not rejected.
        let body = json!({ "results": [], "errors": [{"category": "OBJECT_NOT_FOUND", "message": "gone", "context": {"ids": ["512"]}}] });
        let answered = outcomes(&body, &["512".to_string()], PropertyType::Other, "email", true);
        assert_eq!((answered.outcomes, answered.not_found), (vec![None], vec![0]));
    }

    #[test]
    fn lists_fill_multiple_checkboxes_joined_by_semicolons() {
        let list = Value::Array(vec![Value::Text("a".into()), Value::Null, Value::Text("b".into())]);
        assert_eq!(property(&list, PropertyType::MultipleCheckbox), "a;b");
        assert_eq!(property(&Value::Json(r#"["a","b"]"#.into()), PropertyType::MultipleCheckbox), "a;b");
        assert_eq!(property(&Value::Text("a;b".into()), PropertyType::MultipleCheckbox), "a;b");
        assert_eq!(property(&Value::Array(vec![]), PropertyType::MultipleCheckbox), "");
    }
}
