//! HTTP for the webhook, and the decision of what each response means.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

use super::config::WebhookConfig;
use super::encoding::{signature, SIGNATURE_HEADER};
use crate::destinations::flow::{Pace, RateLimit};
use crate::destinations::http::{self, CallError};
use crate::destinations::DestinationError;

pub struct Client {
    http: reqwest::Client,
    /// The destination's name in sluice.toml: how `/metrics` labels its requests.
    name: String,
    url: SecretString,
    /// Host only: what errors may show of the URL.
    shown: String,
    headers: HeaderMap,
    signing_secret: Option<SecretString>,
    pace: Option<Pace>,
}

impl Client {
    pub fn new(name: &str, config: &WebhookConfig) -> Result<Client, String> {
        let parsed = reqwest::Url::parse(config.url.expose_secret()).map_err(|e| format!("`url` is not a valid URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("`url` must be an http:// or https:// URL".into());
        }
        let shown = format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap_or(""));
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("header name `{name}` is not valid"))?;
            let mut value = HeaderValue::from_str(value.expose_secret())
                .map_err(|_| format!("the value of header `{name}` is not a valid header value"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let pace = RateLimit::setting(config.rate_limit.as_deref())?
            .map(|limit| Pace::new(&Pace::key("webhook", &shown, config.url.expose_secret()), limit));
        let http = crate::destinations::http::client(config.requests.timeout)?;
        Ok(Client {
            http,
            name: name.to_string(),
            url: config.url.clone(),
            shown,
            headers,
            signing_secret: config.signing_secret.clone(),
            pace,
        })
    }

    /// The `rate_limit` requests wait for, if set.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.pace.as_ref().map(Pace::limit)
    }

    /// Posts one batch; a 2xx answers with its body (which may hold per-row results). A
    /// [`CallError::Refused`] is a 4xx data error for the whole batch: some row in it is bad.
    pub async fn post(&self, body: Vec<u8>) -> Result<String, CallError> {
        if let Some(pace) = &self.pace {
            pace.ready().await;
        }
        let mut request = self.http.post(self.url.expose_secret()).headers(self.headers.clone()).header(CONTENT_TYPE, "application/json");
        if let Some(secret) = &self.signing_secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, &body));
        }
        let answer = http::send(request.body(body), &self.name, &format!("POST {}", self.shown), "url").await?;
        classify(&self.shown, answer.status, answer.retry_after, answer.body?)
    }
}

/// Whether to retry: 2xx accepted; 408/429/5xx transient; 401/403/404 fatal (configuration);
/// other 4xx a data problem with the batch.
fn classify(shown: &str, status: StatusCode, retry_after: Option<Duration>, body: String) -> Result<String, CallError> {
    let excerpt: String = body.chars().take(300).collect();
    if status.is_success() {
        return Ok(body);
    }
    let message = format!("POST {shown}: HTTP {status}: {excerpt}");
    Err(match status.as_u16() {
        408 | 429 => CallError::Failed(DestinationError { retry_after, ..DestinationError::transient(message) }),
        500..=599 => CallError::Unanswered(DestinationError { retry_after, ..DestinationError::transient(message) }),
        401 | 403 | 404 | 405 => {
            CallError::Failed(DestinationError::fatal(format!("{message} (check the destination's url and credentials)")))
        }
        _ => CallError::Refused(format!("HTTP {status}: {excerpt}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_retry_decisions() {
        let c = |s: u16| classify("http://x", StatusCode::from_u16(s).unwrap(), None, "oops".into());
        assert!(matches!(c(200), Ok(body) if body == "oops"));
        assert!(matches!(c(429), Err(CallError::Failed(e)) if e.is_transient()));
        assert!(matches!(c(503), Err(CallError::Unanswered(e)) if e.is_transient()));
        assert!(matches!(c(401), Err(CallError::Failed(e)) if !e.is_transient()));
        assert!(matches!(c(422), Err(CallError::Refused(m)) if m.contains("oops")));
    }
}
