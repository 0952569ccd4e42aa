//! Every request checked against Google's own description of the Sheets API, its discovery
//! document (`sheets.v4.discovery.json`, as published at
//! https://sheets.googleapis.com/$discovery/rest?version=v4, kept here unchanged): a query
//! parameter the method does not take, a value outside an enum, a body field the request message
//! does not have or of the wrong JSON type is a 400 with Google's wording, as at Google. A client
//! that sends what the API does not define fails here, not in production.

use std::sync::OnceLock;

use serde_json::Value as J;

use super::grid::ApiError;

fn doc() -> &'static J {
    static DOC: OnceLock<J> = OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(include_str!("sheets.v4.discovery.json")).expect("the discovery document is JSON"))
}

/// Every method of the document, from its nested resources.
fn methods() -> Vec<&'static J> {
    fn walk<'a>(resource: &'a J, out: &mut Vec<&'a J>) {
        out.extend(resource["methods"].as_object().into_iter().flat_map(|m| m.values()));
        for r in resource["resources"].as_object().into_iter().flat_map(|r| r.values()) {
            walk(r, out);
        }
    }
    let mut out = Vec::new();
    walk(doc(), &mut out);
    out
}

/// Whether `path` fits `template` (`v4/spreadsheets/{spreadsheetId}/values/{range}:append`):
/// literal parts as they are, each `{name}` one or more characters of one path segment.
fn fits(template: &str, path: &str) -> bool {
    match template.find('{') {
        None => template == path,
        Some(open) => {
            let Some(rest) = path.strip_prefix(&template[..open]) else { return false };
            let after = template[open..].find('}').map_or("", |close| &template[open + close + 1..]);
            let segment = rest.find('/').unwrap_or(rest.len());
            (1..=segment).filter(|&n| rest.is_char_boundary(n)).any(|n| fits(after, &rest[n..]))
        }
    }
}

/// `camelCase` as Google names fields in its messages (`valueInputOption` -> `value_input_option`).
fn snake(name: &str) -> String {
    name.chars().fold(String::new(), |mut s, c| {
        if c.is_ascii_uppercase() {
            s.push('_');
        }
        s.push(c.to_ascii_lowercase());
        s
    })
}

/// Checks one request (`path` decoded, without the leading `/`). A path no method describes
/// passes: the emulator answers it 404 itself.
pub fn check(method: &str, path: &str, query: &[(String, String)], body: &J) -> Result<(), ApiError> {
    let Some(m) = methods().into_iter().find(|m| m["httpMethod"] == method && fits(m["flatPath"].as_str().unwrap_or(""), path)) else {
        return Ok(());
    };
    for (name, value) in query {
        let param = m["parameters"].get(name).filter(|p| p["location"] == "query").or_else(|| doc()["parameters"].get(name));
        let Some(param) = param else {
            return Err(ApiError::bad(format!(
                "Invalid JSON payload received. Unknown name \"{name}\": Cannot bind query parameter. Field '{name}' could not be found in request message."
            )));
        };
        scalar(param, &J::String(value.clone()), &snake(name))?;
    }
    for (name, param) in m["parameters"].as_object().into_iter().flatten() {
        if param["required"] == true && param["location"] == "query" && !query.iter().any(|(k, _)| k == name) {
            return Err(ApiError::bad(format!("Missing required parameter \"{name}\"")));
        }
    }
    match m["request"]["$ref"].as_str() {
        Some(schema) if !body.is_null() => value(&doc()["schemas"][schema], body, ""),
        _ => Ok(()),
    }
}

/// A value against a schema (`at`: where it is, for the message).
fn value(schema: &J, v: &J, at: &str) -> Result<(), ApiError> {
    if let Some(r) = schema["$ref"].as_str() {
        return value(&doc()["schemas"][r], v, at);
    }
    match schema["type"].as_str() {
        Some("object") if schema.get("properties").is_some() || schema.get("id").is_some() => object(schema, v, at),
        Some("object") => match (v.as_object(), schema.get("additionalProperties")) {
            (Some(map), Some(each)) => map.iter().try_for_each(|(k, x)| value(each, x, &format!("{at}[{k}]"))),
            (Some(_), None) => Ok(()),
            (None, _) => Err(invalid(at, "TYPE_MESSAGE", v)),
        },
        Some("array") => match v.as_array() {
            Some(items) => items.iter().enumerate().try_for_each(|(i, x)| value(&schema["items"], x, &format!("{at}[{i}]"))),
            None => Err(invalid(at, "TYPE_LIST", v)),
        },
        Some("any") | None if schema.get("properties").is_none() => Ok(()),
        None => object(schema, v, at),
        _ => scalar(schema, v, at),
    }
}

fn object(schema: &J, v: &J, at: &str) -> Result<(), ApiError> {
    let Some(map) = v.as_object() else { return Err(invalid(at, "TYPE_MESSAGE", v)) };
    for (k, x) in map {
        let Some(field) = schema["properties"].get(k) else {
            let place = if at.is_empty() { String::new() } else { format!(" at '{at}'") };
            return Err(ApiError::bad(format!("Invalid JSON payload received. Unknown name \"{k}\"{place}: Cannot find field.")));
        };
        let inner = if at.is_empty() { snake(k) } else { format!("{at}.{}", snake(k)) };
        value(field, x, &inner)?;
    }
    Ok(())
}

/// A string, number or boolean field (or query parameter, whose values are all text).
fn scalar(schema: &J, v: &J, at: &str) -> Result<(), ApiError> {
    let text = match v {
        J::String(s) => s.clone(),
        J::Number(n) => n.to_string(),
        J::Bool(b) => b.to_string(),
        J::Null => return Ok(()),
        _ => return Err(invalid(at, "TYPE_STRING", v)),
    };
    match schema["type"].as_str() {
        Some("string") => {
            if let Some(allowed) = schema["enum"].as_array() {
                if !allowed.iter().any(|a| a.as_str() == Some(text.as_str())) {
                    return Err(invalid(at, "TYPE_ENUM", v));
                }
            } else if !v.is_string() && schema.get("format").is_none() {
                return Err(invalid(at, "TYPE_STRING", v));
            }
        }
        Some("integer") if text.parse::<i64>().is_err() => return Err(invalid(at, "TYPE_INT32", v)),
        Some("number") if text.parse::<f64>().is_err() => return Err(invalid(at, "TYPE_DOUBLE", v)),
        Some("boolean") if text != "true" && text != "false" => return Err(invalid(at, "TYPE_BOOL", v)),
        _ => {}
    }
    Ok(())
}

fn invalid(at: &str, kind: &str, v: &J) -> ApiError {
    ApiError::bad(format!("Invalid value at '{at}' ({kind}), {v}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_document_decides_what_a_request_may_hold() {
        let append = "v4/spreadsheets/ID/values/'Tab'!A1:B1:append";
        let q = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert!(check("POST", append, &q("valueInputOption", "RAW"), &json!({ "values": [[1, "a"]] })).is_ok());
        assert!(check("POST", append, &q("valueInputOption", "RAWISH"), &J::Null).unwrap_err().message.contains("TYPE_ENUM"));
        assert!(check("POST", append, &q("valueInput", "RAW"), &J::Null).unwrap_err().message.contains("Unknown name \"valueInput\""));
        let err = check("POST", append, &[], &json!({ "values": [[1]], "rows": 1 })).unwrap_err();
        assert!(err.message.contains("Unknown name \"rows\""), "{}", err.message);
        let add = json!({ "requests": [{ "addSheet": { "properties": { "title": "T", "gridProperties": { "rowCount": "x" } } } }] });
        let err = check("POST", "v4/spreadsheets/ID:batchUpdate", &[], &add).unwrap_err();
        assert!(err.message.contains("requests[0].add_sheet.properties.grid_properties.row_count"), "{}", err.message);
    }
}
