//! HTTP to the Sheets API: one method per call the writer makes, the quota limiters, the 401
//! refresh, and the decision of what each failure means (`classify`). Retrying is the engine's.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as J};

use super::auth::Auth;
use super::config::{SheetsConfig, ValueInput};
use crate::destinations::flow::{Pace, RateLimit};
use crate::destinations::http::{self, CallError};
use crate::destinations::DestinationError;

const MINUTE: Duration = Duration::from_secs(60);

#[derive(Debug, Default, Deserialize)]
pub struct Spreadsheet {
    #[serde(default)]
    pub sheets: Vec<Sheet>,
}

#[derive(Debug, Deserialize)]
pub struct Sheet {
    pub properties: SheetProperties,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SheetProperties {
    #[serde(default)]
    pub sheet_id: i64,
    pub title: String,
    #[serde(default)]
    pub grid_properties: GridProperties,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GridProperties {
    #[serde(default)]
    pub row_count: u64,
    #[serde(default)]
    pub column_count: u64,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueRange {
    pub range: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major_dimension: Option<String>,
    /// Absent when the range is empty.
    #[serde(default)]
    pub values: Vec<Vec<J>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchGetResponse {
    #[serde(default)]
    value_ranges: Vec<ValueRange>,
}

#[derive(Deserialize)]
struct AppendResponse {
    updates: AppendUpdates,
}

/// Where `values.append` put the values: 1-based rows, 0-based first column.
#[derive(Debug)]
pub struct Appended {
    pub first_row: u32,
    pub last_row: u32,
    pub first_column: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppendUpdates {
    #[serde(default)]
    updated_range: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    details: Vec<J>,
}

/// Which per-user quota a request counts against.
#[derive(Clone, Copy)]
enum Budget {
    Read,
    Write,
}

pub struct SheetsClient {
    http: reqwest::Client,
    /// The destination's name in sluice.toml: how `/metrics` labels its requests.
    name: String,
    /// `{base_url}v4/spreadsheets`
    root: Url,
    spreadsheet_id: String,
    pub auth: Auth,
    /// Google's per-user quotas, shared by every sync writing as this service account.
    reads: Pace,
    writes: Pace,
    pub value_input: ValueInput,
}

impl SheetsClient {
    pub fn new(name: &str, config: &SheetsConfig, auth: Auth) -> Result<SheetsClient, String> {
        let mut base = Url::parse(&config.base_url).map_err(|e| format!("`base_url` is not a valid URL: {e}"))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        if config.spreadsheet_id.trim().is_empty() || config.spreadsheet_id.contains('/') {
            return Err(format!(
                "`spreadsheet_id` = \"{}\" is not a spreadsheet id: use the long id in the sheet's URL, between /d/ and /edit",
                config.spreadsheet_id
            ));
        }
        let root = base.join("v4/spreadsheets").map_err(|e| format!("`base_url`: {e}"))?;
        if root.cannot_be_a_base() {
            return Err("`base_url` must be an http(s) URL".into());
        }
        let http = crate::destinations::http::client(config.requests.timeout)?;
        let pace = |what: &str, per_minute: u32| {
            Pace::new(&Pace::key(what, base.as_str(), auth.client_email()), RateLimit::new(per_minute, MINUTE))
        };
        let (reads, writes) =
            (pace("google_sheets:reads", config.read_requests_per_minute), pace("google_sheets:writes", config.write_requests_per_minute));
        Ok(SheetsClient {
            http,
            name: name.to_string(),
            root,
            spreadsheet_id: config.spreadsheet_id.clone(),
            auth,
            reads,
            writes,
            value_input: config.value_input,
        })
    }

    /// The write quota writes wait for.
    pub fn write_limit(&self) -> RateLimit {
        self.writes.limit()
    }

    /// `{root}/{id}{id_suffix}/{segments...}?{query}`, each segment percent-encoded.
    fn url(&self, id_suffix: &str, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.root.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.push(&format!("{}{id_suffix}", self.spreadsheet_id)).extend(segments);
        }
        for (k, v) in query {
            url.query_pairs_mut().append_pair(k, v);
        }
        url
    }

    /// `spreadsheets.get`: the tabs' ids, titles and grid sizes.
    pub async fn metadata(&self) -> Result<Spreadsheet, CallError> {
        let url = self.url("", &[], &[("fields", "sheets.properties(sheetId,title,gridProperties(rowCount,columnCount))")]);
        let body = self.send(Budget::Read, Method::GET, url, None).await?;
        parse(&body, "spreadsheets.get")
    }

    /// `values:batchGet`, unformatted (numbers as numbers), in the given major dimension.
    pub async fn batch_get(&self, ranges: &[String], major: &str) -> Result<Vec<ValueRange>, CallError> {
        let mut url = self.url("", &["values:batchGet"], &[("majorDimension", major), ("valueRenderOption", "UNFORMATTED_VALUE")]);
        for r in ranges {
            url.query_pairs_mut().append_pair("ranges", r);
        }
        let body = self.send(Budget::Read, Method::GET, url, None).await?;
        Ok(parse::<BatchGetResponse>(&body, "values.batchGet")?.value_ranges)
    }

    /// `values:batchUpdate` of whole ranges.
    pub async fn values_batch_update(&self, data: &[ValueRange]) -> Result<(), CallError> {
        let url = self.url("", &["values:batchUpdate"], &[]);
        let body = json!({ "valueInputOption": self.value_input.as_str(), "data": data });
        self.send(Budget::Write, Method::POST, url, Some(body)).await.map(drop)
    }

    /// `values.update` of one range (the header row).
    pub async fn values_update(&self, range: &str, values: Vec<Vec<J>>) -> Result<(), CallError> {
        let url = self.url("", &["values", range], &[("valueInputOption", self.value_input.as_str())]);
        let body = json!({ "range": range, "majorDimension": "ROWS", "values": values });
        self.send(Budget::Write, Method::PUT, url, Some(body)).await.map(drop)
    }

    /// `values:append` with INSERT_ROWS; returns where the values landed (`updatedRange`).
    pub async fn values_append(&self, range: &str, values: Vec<Vec<J>>) -> Result<Appended, CallError> {
        let url = self.url(
            "",
            &["values", &format!("{range}:append")],
            &[("valueInputOption", self.value_input.as_str()), ("insertDataOption", "INSERT_ROWS")],
        );
        let body = json!({ "range": range, "majorDimension": "ROWS", "values": values });
        let response: AppendResponse = parse(&self.send(Budget::Write, Method::POST, url, Some(body)).await?, "values.append")?;
        let landed = &response.updates.updated_range;
        match (super::encoding::range_rows(landed), super::encoding::range_first_column(landed)) {
            (Some((first_row, last_row)), Some(first_column)) => Ok(Appended { first_row, last_row, first_column }),
            _ => Err(CallError::Unanswered(DestinationError::transient(format!(
                "values.append answered with an unreadable range `{landed}`"
            )))),
        }
    }

    /// `spreadsheets:batchUpdate`: structural requests, applied atomically.
    pub async fn batch_update(&self, requests: Vec<J>) -> Result<J, CallError> {
        let url = self.url(":batchUpdate", &[], &[]);
        let body = self.send(Budget::Write, Method::POST, url, Some(json!({ "requests": requests }))).await?;
        parse(&body, "spreadsheets.batchUpdate")
    }

    /// One request: waits for the quota, adds the token, refreshes it once on a 401.
    async fn send(&self, budget: Budget, method: Method, url: Url, body: Option<J>) -> Result<Vec<u8>, CallError> {
        match budget {
            Budget::Read => self.reads.ready().await,
            Budget::Write => self.writes.ready().await,
        }
        let what = format!("{method} {}", url.path());
        let mut token = self.auth.token().await?;
        let mut refreshed = false;
        loop {
            let mut request = self.http.request(method.clone(), url.clone()).bearer_auth(token.expose_secret());
            if let Some(body) = &body {
                request = request.json(body);
            }
            let answer = http::send(request, &self.name, &what, "base_url").await?;
            if answer.status == StatusCode::UNAUTHORIZED && !refreshed {
                // The token was revoked or expired early: get a new one and try once more.
                token = self.auth.refresh().await?;
                refreshed = true;
                continue;
            }
            let (status, bytes) = (answer.status, answer.body?.into_bytes());
            if status.is_success() {
                return Ok(bytes);
            }
            return Err(classify(&what, status, answer.retry_after, &bytes, &self.spreadsheet_id, self.auth.client_email()));
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], call: &str) -> Result<T, CallError> {
    serde_json::from_slice(body)
        // Answered with 2xx, so probably carried out: the writer re-reads the tab before going on.
        .map_err(|e| CallError::Unanswered(DestinationError::transient(format!("{call} answered with an unexpected body: {e}"))))
}

/// What a failed response means. Whether to retry is decided here; how is the engine's.
pub fn classify(what: &str, status: StatusCode, retry_after: Option<Duration>, body: &[u8], id: &str, email: &str) -> CallError {
    let detail = serde_json::from_slice::<ErrorBody>(body).ok().map(|b| b.error);
    let message = detail.as_ref().map(|d| d.message.clone()).unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect());
    let reason = detail
        .as_ref()
        .and_then(|d| d.details.iter().find_map(|x| x.get("reason").and_then(J::as_str).map(str::to_string)))
        .unwrap_or_default();
    let status_text = detail.as_ref().map(|d| d.status.clone()).unwrap_or_default();
    let shown = format!("{what}: HTTP {}: {message}", status.as_u16());
    let fatal = |hint: String| CallError::Failed(DestinationError::fatal(format!("{shown} ({hint})")));
    let rate_limited =
        reason.to_ascii_lowercase().contains("ratelimit") || reason.contains("RATE_LIMIT") || status_text == "RESOURCE_EXHAUSTED";
    match status.as_u16() {
        500..=599 => CallError::Unanswered(DestinationError { retry_after, ..DestinationError::transient(shown) }),
        408 | 429 => CallError::Failed(DestinationError { retry_after, ..DestinationError::transient(shown) }),
        403 if rate_limited => CallError::Failed(DestinationError { retry_after, ..DestinationError::transient(shown) }),
        403 if message.contains("has not been used") || message.contains("is disabled") || reason == "SERVICE_DISABLED" => {
            fatal("enable the Google Sheets API for the service account's Cloud project".into())
        }
        403 => fatal(format!(
            "share the spreadsheet {id} with {email} as an Editor: open it in Google Sheets, click Share and add that address"
        )),
        401 => fatal("the API refused a fresh access token: check the service account still exists and its key is enabled".into()),
        404 => fatal(format!(
            "no spreadsheet has the id `{id}`: check `spreadsheet_id` (the long id in the sheet's URL, between /d/ and /edit)"
        )),
        400 if message.contains("10000000 cells") => fatal(
            "the spreadsheet is at Google's limit of 10,000,000 cells: delete unused tabs, rows or columns, or use another spreadsheet"
                .into(),
        ),
        400 => CallError::Refused(shown),
        _ => fatal("unexpected answer from the Sheets API".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(status: u16, body: &str) -> CallError {
        classify("POST /x", StatusCode::from_u16(status).unwrap(), None, body.as_bytes(), "ID1", "sa@p.iam.gserviceaccount.com")
    }

    #[test]
    fn failures_map_to_retry_decisions() {
        let transient = |e: CallError| matches!(e, CallError::Failed(d) | CallError::Unanswered(d) if d.is_transient());
        let quota = r#"{"error":{"code":429,"message":"Quota exceeded for quota metric 'Write requests'","status":"RESOURCE_EXHAUSTED",
            "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED"}]}}"#;
        assert!(transient(c(429, quota)));
        assert!(transient(c(503, "<html>")));
        assert!(transient(c(
            403,
            r#"{"error":{"code":403,"message":"Rate limit","status":"PERMISSION_DENIED","details":[{"reason":"userRateLimitExceeded"}]}}"#
        )));
        let unshared = c(403, r#"{"error":{"code":403,"message":"The caller does not have permission","status":"PERMISSION_DENIED"}}"#);
        assert!(
            matches!(&unshared, CallError::Failed(d) if !d.is_transient() && d.message.contains("share the spreadsheet ID1 with sa@p.iam"))
        );
        assert!(matches!(c(404, r#"{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND"}}"#),
            CallError::Failed(d) if d.message.contains("spreadsheet_id")));
        assert!(matches!(c(400, r#"{"error":{"code":400,"message":"Unable to parse range: X!A1","status":"INVALID_ARGUMENT"}}"#),
            CallError::Refused(m) if m.contains("Unable to parse range")));
    }
}
