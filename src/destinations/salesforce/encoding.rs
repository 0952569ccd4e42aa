//! Rows as Salesforce records (JSON for sObject Collections, CSV for Bulk API 2.0), and
//! Salesforce's per-record answers as row outcomes. No I/O.

use std::collections::HashMap;

use serde_json::{Map, Value as J};

use crate::destinations::RowOutcome;
use crate::value::Value;

/// A value as a record field of type `kind` (describe's `type`): numbers and booleans as
/// themselves, NULL as `null` (which clears the field), dates `YYYY-MM-DD`, timestamps ISO-8601
/// UTC to the millisecond (Salesforce's parser refuses finer ones, and the whole request with
/// them), a list (or JSON array) for a multi-select picklist as its values joined by `;` (none:
/// `null`), everything else as text.
pub fn field(value: &Value, kind: &str) -> J {
    let joined = |items: Vec<String>| if items.is_empty() { J::Null } else { J::String(items.join(";")) };
    match (value, kind) {
        (Value::Null, _) => J::Null,
        (Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Decimal(_), _) => value.to_json(),
        (Value::Timestamp(t), _) => J::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        (Value::Array(items), "multipicklist") => joined(items.iter().filter(|v| !v.is_null()).map(Value::to_text).collect()),
        (Value::Json(text), "multipicklist") => match serde_json::from_str::<Vec<J>>(text) {
            Ok(items) => {
                joined(items.iter().filter(|v| !v.is_null()).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect())
            }
            Err(_) => J::String(text.clone()),
        },
        (other, _) => J::String(other.to_text()),
    }
}

/// `{"attributes": {"type": object}, field: value, ...}`, each value of its field's type (`kinds`).
pub fn record(object: &str, names: &[String], values: &[Value], kinds: &[&str], extra: Option<(&str, J)>) -> J {
    let mut map = Map::new();
    map.insert("attributes".into(), serde_json::json!({ "type": object }));
    for ((name, value), kind) in names.iter().zip(values).zip(kinds) {
        map.insert(name.clone(), field(value, kind));
    }
    if let Some((name, value)) = extra {
        map.insert(name.into(), value);
    }
    J::Object(map)
}

/// Error codes that a later attempt may get past; every other code is a data problem.
fn transient(code: &str) -> bool {
    matches!(code, "UNABLE_TO_LOCK_ROW" | "REQUEST_RUNNING_TOO_LONG" | "SERVER_UNAVAILABLE" | "QUERY_TIMEOUT" | "REQUEST_LIMIT_EXCEEDED")
}

/// Codes that mean a record is already gone (a delete's goal).
pub fn gone(code: &str) -> bool {
    matches!(code, "ENTITY_IS_DELETED" | "INVALID_CROSS_REFERENCE_KEY" | "NOT_FOUND")
}

/// One item of a collection answer: `{"id", "success", "errors": [{"statusCode", "message", "fields"}]}`.
pub fn outcome(item: &J) -> RowOutcome {
    if item["success"].as_bool() == Some(true) {
        return RowOutcome::Written { destination_id: item["id"].as_str().map(str::to_string) };
    }
    let errors = item["errors"].as_array().cloned().unwrap_or_default();
    let code = errors.first().and_then(|e| e["statusCode"].as_str()).unwrap_or("UNKNOWN").to_string();
    let text: Vec<String> = errors
        .iter()
        .map(|e| {
            let fields: Vec<&str> = e["fields"].as_array().into_iter().flatten().filter_map(J::as_str).collect();
            let on = if fields.is_empty() { String::new() } else { format!(" [{}]", fields.join(", ")) };
            format!("{}: {}{on}", e["statusCode"].as_str().unwrap_or("UNKNOWN"), e["message"].as_str().unwrap_or_default())
        })
        .collect();
    let reason = if text.is_empty() { "Salesforce reported a failure without a reason".into() } else { text.join("; ") };
    if transient(&code) {
        RowOutcome::Retryable(reason)
    } else {
        RowOutcome::Rejected(reason)
    }
}

/// A value in a Bulk API CSV: `#N/A` sets NULL; booleans, dates and timestamps as in JSON.
pub fn csv_cell(value: &Value, kind: &str) -> String {
    match field(value, kind) {
        J::Null => "#N/A".into(),
        J::String(s) => s,
        j => j.to_string(),
    }
}

/// The CSV of a Bulk upsert job: a header of field names, then one line per row, each value of
/// its field's type (`kinds`). A `None` cell is written empty: the Bulk API leaves that field
/// of the record as it is.
pub fn bulk_csv(names: &[String], kinds: &[&str], rows: &[Vec<Option<&Value>>]) -> Result<String, String> {
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    w.write_record(names).map_err(|e| e.to_string())?;
    for row in rows {
        w.write_record(row.iter().zip(kinds).map(|(v, kind)| v.map(|v| csv_cell(v, kind)).unwrap_or_default()))
            .map_err(|e| e.to_string())?;
    }
    String::from_utf8(w.into_inner().map_err(|e| e.to_string())?).map_err(|e| e.to_string())
}

/// A Bulk job's result CSV (`successfulResults` or `failedResults`) as external id -> (first
/// column, second column): `(sf__Id, sf__Created)` or `(sf__Id, sf__Error)`.
pub fn bulk_results(csv_text: &str, external_id: &str) -> Result<HashMap<String, (String, String)>, String> {
    let mut r = csv::ReaderBuilder::new().from_reader(csv_text.as_bytes());
    let headers = r.headers().map_err(|e| e.to_string())?.clone();
    let at = headers.iter().position(|h| h == external_id).ok_or_else(|| format!("the results have no `{external_id}` column"))?;
    let mut out = HashMap::new();
    for record in r.records() {
        let record = record.map_err(|e| e.to_string())?;
        let get = |i: usize| record.get(i).unwrap_or_default().to_string();
        out.insert(get(at), (get(0), get(1)));
    }
    Ok(out)
}

/// A Bulk `sf__Error` (`CODE:message:fields --`) as an outcome.
pub fn bulk_error(text: &str) -> RowOutcome {
    let code = text.split(':').next().unwrap_or_default();
    let reason = text.trim_end_matches("--").trim().to_string();
    if transient(code) {
        RowOutcome::Retryable(reason)
    } else {
        RowOutcome::Rejected(reason)
    }
}

/// A SOQL string literal.
pub fn soql_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Field types whose values are numbers: bare in SOQL, compared by value.
fn numeric(kind: &str) -> bool {
    matches!(kind, "double" | "int" | "long" | "currency" | "percent")
}

/// A value as a SOQL literal for a field of type `kind`: numbers and booleans bare (Salesforce
/// refuses a quoted number: "should not be enclosed in quotes"), text quoted. `None` for a value
/// the field cannot hold (no record has it).
pub fn soql_literal(text: &str, kind: &str) -> Option<String> {
    let bare = text.trim();
    match kind {
        k if numeric(k) => bare.parse::<f64>().ok().filter(|n| n.is_finite()).map(|_| bare.to_string()),
        "boolean" => matches!(bare, "true" | "false").then(|| bare.to_string()),
        _ => Some(soql_quote(text)),
    }
}

/// How Salesforce compares values of a field of type `kind`: numbers by value (`1001` is the
/// `1001.0` a query returns), text case-insensitively unless the field is `case_sensitive`.
pub fn compare_key(text: &str, kind: &str, case_sensitive: bool) -> String {
    if numeric(kind) {
        if let Ok(n) = text.trim().parse::<f64>() {
            if n.is_finite() && n.fract() == 0.0 && n.abs() < 1e15 {
                return format!("{}", n as i64);
            }
            return format!("{n}");
        }
    }
    if case_sensitive {
        text.to_string()
    } else {
        text.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_and_outcomes() {
        let r = record(
            "Contact",
            &["LastName".into(), "Score__c".into()],
            &[Value::Text("Ng".into()), Value::Null],
            &["string", "double"],
            Some(("Ext__c", json!("A1"))),
        );
        assert_eq!(r, json!({"attributes": {"type": "Contact"}, "LastName": "Ng", "Score__c": null, "Ext__c": "A1"}));
        assert_eq!(
            outcome(&json!({"id": "003x", "success": true, "errors": [], "created": true})),
            RowOutcome::Written { destination_id: Some("003x".into()) }
        );
        let missing = json!({"id": null, "success": false, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]", "fields": ["LastName"]}]});
        assert!(
            matches!(outcome(&missing), RowOutcome::Rejected(m) if m == "REQUIRED_FIELD_MISSING: Required fields are missing: [LastName] [LastName]")
        );
        let locked =
            json!({"success": false, "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access"}]});
        assert!(matches!(outcome(&locked), RowOutcome::Retryable(_)));
    }

    #[test]
    fn bulk_csv_round_trip() {
        let (a, null, yes) = (Value::Text("A,1".into()), Value::Null, Value::Bool(true));
        let rows = vec![vec![Some(&a), Some(&null), Some(&yes)], vec![Some(&a), None, Some(&yes)]];
        let csv = bulk_csv(&["Ext__c".into(), "Score__c".into(), "VIP__c".into()], &["string", "double", "boolean"], &rows).unwrap();
        assert_eq!(csv, "Ext__c,Score__c,VIP__c\n\"A,1\",#N/A,true\n\"A,1\",,true\n", "NULL is #N/A, left alone is empty");
        let ok = bulk_results("\"sf__Id\",\"sf__Created\",\"Ext__c\"\n\"003A\",\"true\",\"A,1\"\n", "Ext__c").unwrap();
        assert_eq!(ok["A,1"], ("003A".to_string(), "true".to_string()));
        assert!(matches!(
            bulk_error("REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --"),
            RowOutcome::Rejected(_)
        ));
        assert_eq!(soql_quote("O'Brien"), "'O\\'Brien'");
    }

    #[test]
    fn literals_and_comparisons_follow_the_field_type() {
        assert_eq!(soql_literal("1001", "double").as_deref(), Some("1001"));
        assert_eq!(soql_literal("abc", "double"), None);
        assert_eq!(soql_literal("ABC-1", "string").as_deref(), Some("'ABC-1'"));
        assert_eq!(compare_key("1001.0", "double", false), compare_key("1001", "double", false));
        assert_eq!(compare_key("ABC-1", "string", false), compare_key("abc-1", "string", false));
        assert_ne!(compare_key("ABC-1", "string", true), compare_key("abc-1", "string", true));
    }

    #[test]
    fn timestamps_to_the_millisecond_and_lists_for_multi_select_picklists() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-03-01T12:00:00.123456Z").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(field(&Value::Timestamp(t), "datetime"), json!("2026-03-01T12:00:00.123Z"));
        let list = Value::Array(vec![Value::Text("A".into()), Value::Text("B".into())]);
        assert_eq!(field(&list, "multipicklist"), json!("A;B"));
        assert_eq!(field(&Value::Array(vec![]), "multipicklist"), J::Null);
        assert_eq!(csv_cell(&Value::Array(vec![]), "multipicklist"), "#N/A");
    }
}
