//! The emulated org's data: sObject schemas, records, and the record operations with
//! Salesforce's per-record results and error codes.

use std::collections::BTreeMap;

use serde_json::{json, Value as J};

#[derive(Clone, Debug)]
pub struct Field {
    pub name: &'static str,
    /// string, email, double, boolean, date, datetime, id, multipicklist
    pub kind: &'static str,
    pub external_id: bool,
    pub createable: bool,
    pub nillable: bool,
    pub length: usize,
    /// Text compares case-insensitively unless this is set (describe's `caseSensitive`).
    pub case_sensitive: bool,
    /// A restricted picklist's values.
    pub picklist: &'static [&'static str],
}

const fn f(name: &'static str, kind: &'static str) -> Field {
    Field { name, kind, external_id: false, createable: true, nillable: true, length: 255, case_sensitive: false, picklist: &[] }
}

/// Whether a stored value and another are the same to Salesforce: text case-insensitively
/// (unless the field is case-sensitive), numbers by value (`123` is `123.0`).
pub fn same(field: Option<&Field>, stored: &J, other: &J) -> bool {
    match (stored, other) {
        (J::Null, _) | (_, J::Null) => false,
        (J::Number(a), J::Number(b)) => a.as_f64() == b.as_f64(),
        (J::String(a), J::String(b)) if !field.is_some_and(|f| f.case_sensitive) => {
            // As `to_lowercase` on both, without allocating: a large org is searched often.
            a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase))
        }
        (a, b) => a == b,
    }
}

/// A value in the form two values [`same`] calls equal share: the key of the emulator's
/// indexes. `None` for NULL, which equals nothing.
pub fn normalised(field: Option<&Field>, value: &J) -> Option<String> {
    Some(match value {
        J::Null => return None,
        J::Number(n) => format!("n:{}", n.as_f64()?),
        J::String(s) if !field.is_some_and(|f| f.case_sensitive) => format!("s:{}", s.to_lowercase()),
        J::String(s) => format!("s:{s}"),
        other => format!("j:{other}"),
    })
}

/// A value as the org stores it: doubles as doubles (they come back `123.0`).
pub fn stored(field: Option<&Field>, value: &J) -> J {
    match (field.map(|f| f.kind), value) {
        (Some("double"), J::Number(n)) => n.as_f64().map(|x| json!(x)).unwrap_or_else(|| value.clone()),
        _ => value.clone(),
    }
}

/// What Salesforce's JSON parser refuses before it looks at any record of a collection: a field
/// the object does not have, a value of the wrong JSON type, a datetime more precise than
/// milliseconds. One such record fails the whole request (400).
pub fn undeserializable(schema: &[Field], object: &str, record: &serde_json::Map<String, J>) -> Option<(&'static str, String)> {
    for (name, value) in record {
        if name == "attributes" || name == "Id" {
            continue;
        }
        let Some(field) = schema.iter().find(|f| f.name == name) else {
            return Some(("INVALID_FIELD", format!("No such column '{name}' on sobject of type {object}")));
        };
        let parse = |what: &str| {
            Some((
                "JSON_PARSER_ERROR",
                format!("Cannot deserialize instance of {what} from VALUE_STRING value {value} or request may be missing a required field"),
            ))
        };
        match (field.kind, value) {
            (_, J::Null) => {}
            ("double", J::Number(_)) | ("boolean", J::Bool(_)) => {}
            ("double", _) => return parse("double"),
            ("boolean", _) => return parse("boolean"),
            ("datetime", J::String(s)) => {
                let fraction = s.split_once('.').map(|(_, f)| f.trim_end_matches(|c: char| !c.is_ascii_digit()).len()).unwrap_or(0);
                if chrono::DateTime::parse_from_rfc3339(s).is_err() || fraction > 3 {
                    return parse("datetime");
                }
            }
            _ => {}
        }
    }
    None
}

pub fn contact() -> Vec<Field> {
    vec![
        Field { createable: false, nillable: false, ..f("Id", "id") },
        Field { nillable: false, length: 80, ..f("LastName", "string") },
        Field { length: 40, ..f("FirstName", "string") },
        f("Email", "email"),
        Field { external_id: true, ..f("Customer_Id__c", "string") },
        Field { external_id: true, ..f("Legacy_Number__c", "double") },
        Field { picklist: &["Product", "Pricing", "Support"], ..f("Interests__c", "multipicklist") },
        f("Last_Seen__c", "datetime"),
        f("Score__c", "double"),
        f("Signup_Date__c", "date"),
        Field { nillable: false, ..f("VIP__c", "boolean") },
        Field { createable: false, ..f("CreatedDate", "datetime") },
    ]
}

#[derive(Clone, Debug)]
pub struct Record {
    pub id: String,
    pub fields: BTreeMap<String, J>,
    pub deleted: bool,
}

pub fn error(code: &str, message: &str, fields: &[&str]) -> J {
    json!({ "statusCode": code, "message": message, "fields": fields })
}

pub fn failure(errors: Vec<J>) -> J {
    json!({ "id": J::Null, "success": false, "errors": errors })
}

/// Checks one record's fields for a create (`creating`) or an update; the errors Salesforce gives.
pub fn validate(schema: &[Field], object: &str, record: &serde_json::Map<String, J>, creating: bool) -> Vec<J> {
    let mut errors = Vec::new();
    for (name, value) in record {
        if name == "attributes" || (name == "Id" && !creating) {
            continue;
        }
        let Some(field) = schema.iter().find(|f| f.name == name) else {
            errors.push(error("INVALID_FIELD", &format!("No such column '{name}' on sobject of type {object}"), &[]));
            continue;
        };
        if !field.createable {
            errors.push(error(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                &format!("Unable to create/update fields: {name}. Please check the security settings of this field and verify that it is read/write for your profile or permission set."),
                &[field.name],
            ));
            continue;
        }
        let text = value.as_str().unwrap_or_default();
        let bad = match (field.kind, value) {
            (_, J::Null) => None,
            // Bulk API rows get here with the CSV's text (collections are refused whole first).
            ("double", J::Number(_)) | ("boolean", J::Bool(_)) => None,
            ("double" | "boolean", _) => Some(("INVALID_TYPE_ON_FIELD_IN_RECORD", format!("{name}: value not of required type: {value}"))),
            ("multipicklist", J::String(s)) => s
                .split(';')
                .find(|v| !field.picklist.contains(v))
                .map(|v| ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", format!("{name}: bad value for restricted picklist field: {v}"))),
            ("email", J::String(s)) if !s.contains('@') => Some(("INVALID_EMAIL_ADDRESS", format!("{name}: invalid email address: {s}"))),
            ("date", J::String(s)) if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_err() => {
                Some(("INVALID_TYPE_ON_FIELD_IN_RECORD", format!("{name}: value not of required type: {s}")))
            }
            (_, J::String(s)) if s.chars().count() > field.length => Some((
                "STRING_TOO_LONG",
                format!("{name}: data value too large: {} (max length={})", &text[..text.len().min(20)], field.length),
            )),
            _ => None,
        };
        if let Some((code, message)) = bad {
            errors.push(error(code, &message, &[field.name]));
        }
    }
    if creating {
        let missing: Vec<&str> = schema
            .iter()
            .filter(|f| f.createable && !f.nillable && f.kind != "boolean" && record.get(f.name).is_none_or(J::is_null))
            .map(|f| f.name)
            .collect();
        if !missing.is_empty() {
            errors.push(error("REQUIRED_FIELD_MISSING", &format!("Required fields are missing: [{}]", missing.join(", ")), &missing));
        }
    }
    errors
}

/// Values as the CSV of a Bulk job gives them, typed by the schema (`#N/A` is NULL; an empty
/// value never gets here: it leaves the field alone).
pub fn typed(schema: &[Field], name: &str, text: &str) -> J {
    if text == "#N/A" {
        return J::Null;
    }
    match schema.iter().find(|f| f.name == name).map(|f| f.kind) {
        Some("double") => text.parse::<f64>().map(|n| json!(n)).unwrap_or_else(|_| J::String(text.into())),
        Some("boolean") if text == "true" || text == "false" => J::Bool(text == "true"),
        _ if text.is_empty() => J::Null,
        _ => J::String(text.into()),
    }
}

/// A literal in a SOQL `IN` list: quoted text, or a bare number, boolean or date.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Quoted(String),
    Bare(String),
}

/// `SELECT Id, X FROM Obj WHERE X IN ('a', 'b')` (or `IN (1, 2)`): the only query shape the
/// client sends.
pub fn parse_in_query(q: &str) -> Option<(Vec<String>, String, String, Vec<Literal>)> {
    let rest = q.trim().strip_prefix("SELECT ")?;
    let (fields, rest) = rest.split_once(" FROM ")?;
    let (object, rest) = rest.split_once(" WHERE ")?;
    let (field, list) = rest.split_once(" IN (")?;
    let list = list.strip_suffix(')')?;
    let mut values = Vec::new();
    let mut chars = list.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let mut v = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => v.extend(chars.next()),
                        '\'' => break,
                        c => v.push(c),
                    }
                }
                values.push(Literal::Quoted(v));
            }
            ',' | ' ' => {}
            c => {
                let mut v = String::from(c);
                while let Some(&c) = chars.peek() {
                    if c == ',' || c == ' ' {
                        break;
                    }
                    v.push(c);
                    chars.next();
                }
                values.push(Literal::Bare(v));
            }
        }
    }
    Some((fields.split(',').map(|s| s.trim().to_string()).collect(), object.trim().into(), field.trim().into(), values))
}
