//! HTTP for Slack's incoming webhooks, and what each answer means. Slack answers in plain
//! text: `ok`, or an error code such as `invalid_blocks` or `channel_not_found`.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

use super::config::SlackConfig;
use crate::destinations::flow::{Pace, RateLimit};
use crate::destinations::http::{self, CallError};
use crate::destinations::DestinationError;

pub struct Client {
    http: reqwest::Client,
    /// The destination's name in sluice.toml: how `/metrics` labels its requests.
    name: String,
    url: SecretString,
    /// Host only: what errors may show of the URL (the rest of it is the credential).
    shown: String,
    /// Shared by every sync writing to this webhook: Slack counts messages per webhook.
    pace: Pace,
}

impl Client {
    pub fn new(name: &str, config: &SlackConfig) -> Result<Client, String> {
        let parsed =
            reqwest::Url::parse(config.webhook_url.expose_secret()).map_err(|e| format!("`webhook_url` is not a valid URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("`webhook_url` must be an https:// URL (https://hooks.slack.com/services/...)".into());
        }
        let shown = format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap_or(""));
        let limit = RateLimit::new(1, config.min_interval.max(Duration::from_millis(1)));
        let pace = Pace::new(&Pace::key("slack", &shown, config.webhook_url.expose_secret()), limit);
        let http = crate::destinations::http::client(config.requests.timeout)?;
        Ok(Client { http, name: name.to_string(), url: config.webhook_url.clone(), shown, pace })
    }

    /// The rate messages wait for: one per `min_interval`.
    pub fn rate_limit(&self) -> RateLimit {
        self.pace.limit()
    }

    /// Posts one message, paced to the webhook's rate. [`CallError::Refused`]: Slack refused
    /// this message (400 and the like), a problem with what this row rendered to.
    pub async fn post(&self, body: Vec<u8>) -> Result<(), CallError> {
        self.pace.ready().await;
        let request = self.http.post(self.url.expose_secret()).header(CONTENT_TYPE, "application/json").body(body);
        let answer = http::send(request, &self.name, &format!("POST {}", self.shown), "webhook_url").await?;
        // Slack's answer is a short code: a body cut off still leaves the status to go by.
        classify(&self.shown, answer.status, answer.retry_after, &answer.body.unwrap_or_default())
    }
}

/// Whether to retry: 429 and 5xx wait and retry; 401/403/404/410 mean the webhook or its channel
/// is gone or forbidden (configuration: the run fails); other 4xx refuse this message.
fn classify(shown: &str, status: StatusCode, retry_after: Option<Duration>, body: &str) -> Result<(), CallError> {
    let code: String = body.trim().chars().take(200).collect();
    if status.is_success() {
        return Ok(());
    }
    let message = format!("POST {shown}: HTTP {status}: {code}");
    Err(match status.as_u16() {
        429 => CallError::Failed(DestinationError { retry_after, ..DestinationError::transient(message) }),
        500..=599 => CallError::Unanswered(DestinationError { retry_after, ..DestinationError::transient(message) }),
        401 | 403 | 404 | 410 => CallError::Failed(DestinationError::fatal(format!("{message} ({})", hint(&code)))),
        _ => CallError::Refused(format!("Slack refused the message: HTTP {}: {code}", status.as_u16())),
    })
}

fn hint(code: &str) -> &'static str {
    match code {
        "channel_is_archived" => "the webhook's channel is archived: unarchive it or create a new webhook",
        "channel_not_found" => "the webhook's channel was deleted: create a new webhook and update `webhook_url`",
        "action_prohibited" => "a Slack admin restricted this webhook's channel",
        _ => "check `webhook_url`: the webhook may have been removed or its token revoked",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_answers_map_to_retry_decisions() {
        let c = |s: u16, body: &str| classify("https://hooks.slack.com", StatusCode::from_u16(s).unwrap(), None, body);
        assert!(matches!(c(200, "ok"), Ok(())));
        assert!(matches!(c(429, "rate_limited"), Err(CallError::Failed(e)) if e.is_transient()));
        assert!(matches!(c(500, "rollup_error"), Err(CallError::Unanswered(e)) if e.is_transient()));
        let archived = DestinationError::from(c(410, "channel_is_archived").unwrap_err());
        assert!(!archived.is_transient() && archived.message.contains("unarchive"), "{}", archived.message);
        assert!(matches!(c(400, "invalid_blocks"), Err(CallError::Refused(m)) if m.contains("invalid_blocks")));
    }
}
