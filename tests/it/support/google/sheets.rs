//! The Sheets v4 HTTP surface of the emulator: routing, bearer-token checks, sharing, per-user
//! quotas with Google's 429 body, and one function per method over `grid::Spreadsheet`.

use serde_json::{json, Value as J};

use super::grid::{ApiError, Spreadsheet};
use super::State;

/// A request as the emulator saw it, for assertions.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    /// Decoded path, e.g. `/v4/spreadsheets/ID/values/'Tab'!A1:append`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: J,
    /// The status answered; 0 when the connection was dropped.
    pub status: u16,
}

impl Logged {
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }
    pub fn query(&self, key: &str) -> Vec<&str> {
        self.query.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }
}

pub fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode_segment(&k.replace('+', " ")), decode_segment(&v.replace('+', " ")))
        })
        .collect()
}

pub fn error(code: u16, message: &str, status: &'static str) -> (u16, J) {
    (code, ApiError { code, message: message.into(), status }.body())
}

/// Google's answer to a request over the per-minute quota.
pub fn quota_exceeded(write: bool) -> (u16, J) {
    let (metric, limit) = if write {
        ("Write requests", "Write requests per minute per user")
    } else {
        ("Read requests", "Read requests per minute per user")
    };
    (
        429,
        json!({ "error": { "code": 429,
            "message": format!("Quota exceeded for quota metric '{metric}' and limit '{limit}' of service 'sheets.googleapis.com' for consumer 'project_number:100000000001'."),
            "status": "RESOURCE_EXHAUSTED",
            "details": [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED", "domain": "googleapis.com",
                "metadata": { "service": "sheets.googleapis.com", "consumer": "projects/100000000001",
                    "quota_metric": format!("sheets.googleapis.com/{}", if write { "write_requests" } else { "read_requests" }),
                    "quota_limit": if write { "WriteRequestsPerMinutePerUser" } else { "ReadRequestsPerMinutePerUser" } } }] } }),
    )
}

pub fn status_error(code: u16) -> (u16, J) {
    match code {
        429 => quota_exceeded(true),
        500 => error(500, "Internal error encountered.", "INTERNAL"),
        503 => error(503, "The service is currently unavailable.", "UNAVAILABLE"),
        401 => unauthenticated(),
        c => error(c, "Emulated failure.", "UNKNOWN"),
    }
}

pub fn unauthenticated() -> (u16, J) {
    error(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "UNAUTHENTICATED",
    )
}

fn value_input(query: &[(String, String)], body: &J) -> Result<bool, ApiError> {
    let option = query.iter().find(|(k, _)| k == "valueInputOption").map(|(_, v)| v.as_str()).or(body["valueInputOption"].as_str());
    match option {
        Some("RAW") => Ok(false),
        Some("USER_ENTERED") => Ok(true),
        Some(other) => Err(ApiError::bad(format!("Invalid value at 'value_input_option' ({other})"))),
        None => Err(ApiError::bad("'valueInputOption' is required but not specified")),
    }
}

fn rows(body: &J) -> Result<Vec<Vec<J>>, ApiError> {
    let values = body.get("values").cloned().unwrap_or(J::Array(Vec::new()));
    let rows: Vec<Vec<J>> = serde_json::from_value(values).map_err(|e| ApiError::bad(format!("Invalid JSON payload received. {e}")))?;
    if body["majorDimension"].as_str() == Some("COLUMNS") {
        let height = rows.iter().map(Vec::len).max().unwrap_or(0);
        return Ok((0..height).map(|r| rows.iter().map(|c| c.get(r).cloned().unwrap_or(J::Null)).collect()).collect());
    }
    Ok(rows)
}

/// Answers one authenticated Sheets request for `email`.
pub fn handle(state: &mut State, email: &str, method: &str, segments: &[String], query: &[(String, String)], body: &J) -> (u16, J) {
    let Some(first) = segments.first() else { return error(404, "Method not found.", "NOT_FOUND") };
    let (id, suffix) = first.split_once(':').unwrap_or((first.as_str(), ""));
    if !state.spreadsheets.contains_key(id) {
        return error(404, "Requested entity was not found.", "NOT_FOUND");
    }
    if !state.shared.get(id).is_some_and(|s| s.contains(email)) {
        return error(403, "The caller does not have permission", "PERMISSION_DENIED");
    }
    let write = method != "GET";
    if !state.quota.allow(email, write) {
        state.quota_refusals += 1;
        return quota_exceeded(write);
    }
    let sheet = state.spreadsheets.get_mut(id).expect("checked above");
    let result = match (method, suffix, &segments[1..]) {
        ("GET", "", []) => Ok(sheet.metadata()),
        ("POST", "batchUpdate", []) => batch_update(sheet, body),
        ("GET", "", [v]) if v == "values:batchGet" => {
            let columns = query.iter().any(|(k, v)| k == "majorDimension" && v == "COLUMNS");
            let formatted = !query.iter().any(|(k, v)| k == "valueRenderOption" && v != "FORMATTED_VALUE");
            let ranges: Vec<&str> = query.iter().filter(|(k, _)| k == "ranges").map(|(_, v)| v.as_str()).collect();
            ranges
                .iter()
                .map(|r| sheet.read(r, columns, formatted))
                .collect::<Result<Vec<J>, _>>()
                .map(|vr| json!({ "spreadsheetId": id, "valueRanges": vr }))
        }
        ("POST", "", [v]) if v == "values:batchUpdate" => values_batch_update(sheet, body),
        ("POST", "", [v]) if v == "values:batchClear" => {
            let mut copy = sheet.clone();
            let ranges: Vec<String> =
                body["ranges"].as_array().into_iter().flatten().filter_map(|r| r.as_str().map(str::to_string)).collect();
            ranges.iter().map(|r| copy.clear(r)).collect::<Result<Vec<J>, _>>().map(|done| {
                *sheet = copy;
                json!({ "spreadsheetId": id, "clearedRanges": done.iter().map(|d| d["clearedRange"].clone()).collect::<Vec<_>>() })
            })
        }
        ("GET", "", [v, range]) if v == "values" => {
            let columns = query.iter().any(|(k, v)| k == "majorDimension" && v == "COLUMNS");
            let formatted = !query.iter().any(|(k, v)| k == "valueRenderOption" && v != "FORMATTED_VALUE");
            sheet.read(range, columns, formatted)
        }
        ("PUT", "", [v, range]) if v == "values" => (|| {
            let user = value_input(query, body)?;
            if let Some(r) = body["range"].as_str().filter(|r| r != range) {
                return Err(ApiError::bad(format!("Requested range [{range}] does not match value's range [{r}]")));
            }
            sheet.write(range, &rows(body)?, user)
        })(),
        ("POST", "", [v, range]) if v == "values" && range.ends_with(":append") => (|| {
            let user = value_input(query, body)?;
            let insert = query.iter().any(|(k, v)| k == "insertDataOption" && v == "INSERT_ROWS");
            sheet.append(range.trim_end_matches(":append"), &rows(body)?, user, insert)
        })(),
        ("POST", "", [v, range]) if v == "values" && range.ends_with(":clear") => sheet.clear(range.trim_end_matches(":clear")),
        _ => return error(404, "Method not found.", "NOT_FOUND"),
    };
    match result {
        Ok(body) => (200, body),
        Err(e) => (e.code, e.body()),
    }
}

/// `spreadsheets:batchUpdate`: every request applies or none does.
fn batch_update(sheet: &mut Spreadsheet, body: &J) -> Result<J, ApiError> {
    let requests = body["requests"].as_array().ok_or_else(|| ApiError::bad("Invalid JSON payload received. Missing requests."))?;
    let mut copy = sheet.clone();
    let replies = requests.iter().enumerate().map(|(n, r)| copy.apply(n, r)).collect::<Result<Vec<J>, _>>()?;
    *sheet = copy;
    Ok(json!({ "spreadsheetId": sheet.id, "replies": replies }))
}

/// `values:batchUpdate`: every range applies or none does.
fn values_batch_update(sheet: &mut Spreadsheet, body: &J) -> Result<J, ApiError> {
    let user = value_input(&[], body)?;
    let data = body["data"].as_array().cloned().unwrap_or_default();
    let mut copy = sheet.clone();
    let mut responses = Vec::new();
    for vr in &data {
        let range = vr["range"].as_str().ok_or_else(|| ApiError::bad("Invalid data[]: range is required"))?;
        responses.push(copy.write(range, &rows(vr)?, user)?);
    }
    *sheet = copy;
    let sum = |k: &str| responses.iter().map(|r| r[k].as_u64().unwrap_or(0)).sum::<u64>();
    let sheets: std::collections::HashSet<String> =
        responses.iter().filter_map(|r| r["updatedRange"].as_str().and_then(|s| s.rsplit_once('!')).map(|(t, _)| t.to_string())).collect();
    Ok(json!({
        "spreadsheetId": sheet.id,
        "totalUpdatedRows": sum("updatedRows"),
        "totalUpdatedColumns": sum("updatedColumns"),
        "totalUpdatedCells": sum("updatedCells"),
        "totalUpdatedSheets": sheets.len(),
        "responses": responses,
    }))
}
