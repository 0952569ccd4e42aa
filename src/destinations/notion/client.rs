//! HTTP to Notion's public API: the bearer token, the pinned `Notion-Version` header, the pace
//! (an average of three requests per second per integration), and what each error answer means
//! (`classify`). Error bodies are `{"object":"error","status":..,"code":..,"message":..}`
//! (developers.notion.com/reference/status-codes).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value as J;

use super::config::NotionConfig;
use crate::destinations::flow::{Pace, RateLimit};
use crate::destinations::http::{self, CallError};
use crate::destinations::DestinationError;

pub struct NotionClient {
    http: reqwest::Client,
    /// The destination's name in sluice.toml: how `/metrics` labels its requests.
    name: String,
    base: Url,
    token: SecretString,
    version: String,
    /// Shared by every sync writing with this token: Notion counts requests per integration.
    pace: Pace,
    /// Set by a 429's Retry-After: no request of this client before then.
    pause_until: Mutex<Option<Instant>>,
}

/// What a request was about, for what a 404 means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum About {
    Database,
    Page,
}

impl NotionClient {
    pub fn new(name: &str, config: &NotionConfig) -> Result<NotionClient, String> {
        let mut base = Url::parse(&config.base_url).map_err(|e| format!("`base_url` is not a valid URL: {e}"))?;
        if base.cannot_be_a_base() {
            return Err("`base_url` must be an http(s) URL".into());
        }
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let version = config.notion_version.trim().to_string();
        if reqwest::header::HeaderValue::from_str(&version).is_err() || version.is_empty() {
            return Err(format!("`notion_version` = \"{version}\" is not a version: write it as a date, e.g. \"2022-06-28\""));
        }
        let limit = RateLimit::setting(Some(config.rate_limit.as_str()))?.unwrap_or(RateLimit::new(3, Duration::from_secs(1)));
        let http = http::client(config.requests.timeout)?;
        let base_text = base.to_string();
        Ok(NotionClient {
            name: name.to_string(),
            http,
            base,
            token: config.token.clone(),
            version,
            pace: Pace::new(&Pace::key("notion", &base_text, config.token.expose_secret()), limit),
            pause_until: Mutex::new(None),
        })
    }

    /// The rate limit requests wait for.
    pub fn rate_limit(&self) -> RateLimit {
        self.pace.limit()
    }

    /// One request to `{base_url}v1/{path}`, paced. Returns the body of a 2xx; for a request
    /// `about` a page, a 404 `object_not_found` is `Ok((404, body))`: the page is gone (deleted
    /// for good, or its database no longer shared), an answer about that row.
    pub async fn call(&self, method: Method, path: &str, body: Option<&J>, about: About) -> Result<(u16, J), CallError> {
        let pause = self.pause_until.lock().map(|p| *p).unwrap_or(None);
        if let Some(until) = pause {
            tokio::time::sleep_until(until.into()).await;
        }
        self.pace.ready().await;
        let url = self.base.join(&format!("v1/{path}")).map_err(|e| DestinationError::fatal(format!("bad request path: {e}")))?;
        let what = format!("{method} /v1/{}", path.split('?').next().unwrap_or(path));
        let mut request = self.http.request(method, url).bearer_auth(self.token.expose_secret()).header("Notion-Version", &self.version);
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = http::send(request, &self.name, &what, "base_url").await?;
        let status = answer.status;
        if status == StatusCode::TOO_MANY_REQUESTS {
            if let (Some(wait), Ok(mut pause)) = (answer.retry_after, self.pause_until.lock()) {
                *pause = Instant::now().checked_add(wait);
            }
        }
        let text = answer.body?;
        if status.is_success() {
            return Ok((status.as_u16(), serde_json::from_str(&text).unwrap_or(J::Null)));
        }
        let parsed: J = serde_json::from_str(&text).unwrap_or(J::Null);
        if status == StatusCode::NOT_FOUND && about == About::Page && parsed["code"] == "object_not_found" {
            return Ok((404, parsed));
        }
        Err(classify(&what, status, answer.retry_after, &text, &self.version))
    }
}

/// The message of a `validation_error` Notion gives when a page in the trash is edited
/// (dvanoni/notero#704: "Can't edit block that is archived. You must unarchive the block before
/// editing.").
pub fn is_archived_refusal(message: &str) -> bool {
    message.contains("is archived") || message.contains("is in trash")
}

/// What a failed answer means. Whether to retry is decided here; how is the engine's.
/// (developers.notion.com/reference/status-codes)
pub fn classify(what: &str, status: StatusCode, retry_after: Option<Duration>, body: &str, version: &str) -> CallError {
    let parsed: J = serde_json::from_str(body).unwrap_or(J::Null);
    let message = parsed["message"].as_str().map(str::to_string).unwrap_or_else(|| body.chars().take(300).collect());
    let code = parsed["code"].as_str().unwrap_or("");
    let shown = format!("{what}: HTTP {}{}: {message}", status.as_u16(), if code.is_empty() { String::new() } else { format!(" {code}") });
    let fatal = |hint: &str| CallError::Failed(DestinationError::fatal(format!("{shown} ({hint})")));
    let transient = || DestinationError { retry_after, ..DestinationError::transient(shown.clone()) };
    match (status.as_u16(), code) {
        (429, _) => CallError::Failed(transient()),
        // A conflict: the data changed while the request was carried out; sending it again is
        // what Notion asks ("conflict_error ... try again").
        (409, _) => CallError::Failed(transient()),
        (500..=599, _) => CallError::Unanswered(transient()),
        (401, _) => fatal(
            "check `token`: an internal integration secret, from notion.so/profile/integrations; it was revoked, or is another \
             workspace's",
        ),
        (403, _) => fatal(
            "the integration lacks a capability this needs: give it Read, Update and Insert content in its Capabilities \
             (notion.so/profile/integrations)",
        ),
        (404, _) => fatal(
            "the database does not exist or is not shared with the integration: share the database with the integration: open it \
             in Notion, ••• menu > Connections > add the integration; then check `database_id` in the sync's [target]",
        ),
        (400, "missing_version") => fatal(&format!(
            "Notion does not take `notion_version` = \"{version}\": set it to a version Notion documents, e.g. \"2022-06-28\""
        )),
        (400, "validation_error") => CallError::Refused(message_only(&message)),
        (400, "invalid_json" | "invalid_request_url" | "invalid_request") => fatal("sluice sent a request Notion does not understand"),
        _ => fatal("unexpected answer from Notion"),
    }
}

/// Notion's validation message, as a row's rejection shows it.
fn message_only(message: &str) -> String {
    format!("Notion refused it: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(status: u16, code: &str, message: &str) -> String {
        serde_json::json!({"object":"error","status":status,"code":code,"message":message,"request_id":"x"}).to_string()
    }

    #[test]
    fn answers_map_to_retry_decisions() {
        let c = |s: u16, code: &str, m: &str| {
            classify("POST /v1/pages", StatusCode::from_u16(s).unwrap(), None, &body(s, code, m), "2022-06-28")
        };
        assert!(matches!(c(429, "rate_limited", "slow down"), CallError::Failed(e) if e.is_transient()));
        assert!(matches!(c(409, "conflict_error", "Conflict occurred while saving."), CallError::Failed(e) if e.is_transient()));
        assert!(matches!(c(502, "bad_gateway", "x"), CallError::Unanswered(e) if e.is_transient()));
        assert!(matches!(c(529, "service_overload", "x"), CallError::Unanswered(e) if e.is_transient()));
        assert!(
            matches!(c(401, "unauthorized", "API token is invalid."), CallError::Failed(e) if !e.is_transient() && e.message.contains("notion.so/profile/integrations"))
        );
        assert!(
            matches!(c(403, "restricted_resource", "x"), CallError::Failed(e) if !e.is_transient() && e.message.contains("Capabilities"))
        );
        assert!(
            matches!(c(404, "object_not_found", "Could not find database"), CallError::Failed(e) if !e.is_transient() && e.message.contains("Connections"))
        );
        assert!(
            matches!(c(400, "missing_version", "x"), CallError::Failed(e) if !e.is_transient() && e.message.contains("notion_version"))
        );
        assert!(
            matches!(c(400, "validation_error", "body failed validation: x"), CallError::Refused(m) if m.contains("body failed validation: x"))
        );
    }
}
