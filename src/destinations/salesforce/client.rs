//! HTTP to the Salesforce REST API of the org's instance: the session (logged in on first use,
//! refreshed once on INVALID_SESSION_ID), the API usage header, and what each failure means.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::Value as J;
use tokio::sync::Mutex;

use super::auth::{Auth, Session};
use crate::destinations::http;
use crate::destinations::http::CallError;
use crate::destinations::DestinationError;

pub enum Body {
    Json(J),
    Csv(String),
}

pub struct SfClient {
    http: reqwest::Client,
    /// The destination's name in sluice.toml: how `/metrics` labels its requests.
    name: String,
    auth: Auth,
    session: Mutex<Option<Arc<Session>>>,
    api_version: String,
    /// The last `Sforce-Limit-Info: api-usage=used/limit`.
    pub usage: std::sync::Mutex<Option<(u64, u64)>>,
}

impl SfClient {
    pub fn new(name: &str, auth: Auth, api_version: &str, timeout: Duration) -> Result<SfClient, String> {
        if !api_version.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())) {
            return Err(format!("`api_version` = \"{api_version}\" is not a version like \"62.0\""));
        }
        let http = crate::destinations::http::client(timeout)?;
        Ok(SfClient {
            http,
            name: name.to_string(),
            auth,
            session: Mutex::new(None),
            api_version: api_version.into(),
            usage: std::sync::Mutex::new(None),
        })
    }

    async fn session(&self, renew: bool) -> Result<Arc<Session>, DestinationError> {
        let mut slot = self.session.lock().await;
        if let (Some(s), false) = (slot.as_ref(), renew) {
            return Ok(s.clone());
        }
        let session = Arc::new(self.auth.login(&self.http).await?);
        *slot = Some(session.clone());
        Ok(session)
    }

    /// Logs in (or reuses the session): `check` uses it to prove the credentials work.
    pub async fn ensure_session(&self) -> Result<(), DestinationError> {
        self.session(false).await.map(drop)
    }

    /// One request to `/services/data/v{version}/{path}`; the status and body of any 2xx.
    pub async fn call(&self, method: Method, path: &str, query: &[(&str, &str)], body: Option<&Body>) -> Result<(u16, String), CallError> {
        let mut session = self.session(false).await?;
        let mut renewed = false;
        let what = format!("{method} /services/data/v{}/{path}", self.api_version);
        loop {
            let mut url = session
                .instance_url
                .join(&format!("services/data/v{}/{path}", self.api_version))
                .map_err(|e| DestinationError::fatal(format!("{what}: {e}")))?;
            if !query.is_empty() {
                url.query_pairs_mut().extend_pairs(query);
            }
            let mut request = self.http.request(method.clone(), url).bearer_auth(session.token.expose_secret());
            request = match body {
                Some(Body::Json(j)) => request.json(j),
                Some(Body::Csv(text)) => request.header(CONTENT_TYPE, "text/csv").body(text.clone()),
                None => request,
            };
            let answer = http::send(request, &self.name, &what, "login_url").await?;
            let status = answer.status;
            self.record_usage(&answer.headers);
            let text = answer.body?;
            if status == StatusCode::UNAUTHORIZED && !renewed {
                // INVALID_SESSION_ID: the session expired or was revoked; log in again once.
                session = self.session(true).await?;
                renewed = true;
                continue;
            }
            if status.is_success() {
                return Ok((status.as_u16(), text));
            }
            return Err(classify(&what, status, &text));
        }
    }

    fn record_usage(&self, headers: &reqwest::header::HeaderMap) {
        let Some(info) = headers.get("sforce-limit-info").and_then(|v| v.to_str().ok()) else { return };
        let usage = info.split(',').find_map(|p| p.trim().strip_prefix("api-usage=")).and_then(|u| {
            let (used, limit) = u.split_once('/')?;
            Some((used.trim().parse().ok()?, limit.trim().parse().ok()?))
        });
        if let (Some((used, limit)), Ok(mut slot)) = (usage, self.usage.lock()) {
            tracing::debug!(used, limit, "Salesforce API usage");
            crate::metrics::global().api_usage(&self.name, used, limit);
            *slot = Some((used, limit));
        }
    }
}

/// Salesforce's errors: `[{"message": ..., "errorCode": ...}]`.
pub fn error_text(body: &str) -> (String, String) {
    let parsed: J = serde_json::from_str(body).unwrap_or(J::Null);
    let first = if parsed.is_array() { &parsed[0] } else { &parsed };
    let code = first["errorCode"].as_str().unwrap_or_default().to_string();
    let message = first["message"].as_str().map(str::to_string).unwrap_or_else(|| body.chars().take(300).collect());
    (code, message)
}

/// What a failed response means. Whether to retry is decided here; how is the engine's.
pub fn classify(what: &str, status: StatusCode, body: &str) -> CallError {
    let (code, message) = error_text(body);
    let shown = format!("{what}: HTTP {} {code}: {message}", status.as_u16());
    let fatal = |hint: &str| CallError::Failed(DestinationError::fatal(format!("{shown} ({hint})")));
    match (status.as_u16(), code.as_str()) {
        // The org's rolling 24-hour API limit: back off; it frees up as the window rolls.
        (403, "REQUEST_LIMIT_EXCEEDED") | (408 | 429, _) => CallError::Failed(DestinationError::transient(shown)),
        (500..=599, _) => CallError::Unanswered(DestinationError::transient(shown)),
        (401, _) => fatal("Salesforce refused a fresh session: check the user is active and the connected app's policies"),
        (403, _) => fatal("the integration user lacks permission for this object or field: check its profile and permission sets"),
        (404, _) => fatal("check `object` in the sync's [target] and `api_version`"),
        (400, _) => CallError::Refused(shown),
        _ => fatal("unexpected answer from Salesforce"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_retry_decisions() {
        let c = |s: u16, body: &str| classify("PATCH /x", StatusCode::from_u16(s).unwrap(), body);
        let limit = r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        assert!(matches!(c(403, limit), CallError::Failed(e) if e.is_transient() && e.message.contains("REQUEST_LIMIT_EXCEEDED")));
        let denied = r#"[{"message":"insufficient access rights on object id","errorCode":"INSUFFICIENT_ACCESS"}]"#;
        assert!(matches!(c(403, denied), CallError::Failed(e) if !e.is_transient()));
        assert!(matches!(c(503, "Service Unavailable"), CallError::Unanswered(e) if e.is_transient()));
        assert!(
            matches!(c(400, r#"[{"message":"bad","errorCode":"JSON_PARSER_ERROR"}]"#), CallError::Refused(m) if m.contains("JSON_PARSER_ERROR"))
        );
    }
}
