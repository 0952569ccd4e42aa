//! HTTP to HubSpot's CRM v3 API: the bearer token, the 10-second rate limit (a limiter plus the
//! `X-HubSpot-RateLimit-*` headers), and what each failed response means (`classify`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value as J;

use super::config::HubSpotConfig;
use crate::destinations::flow::{Pace, RateLimit};
use crate::destinations::http::CallError;
use crate::destinations::http::{self, MAX_SERVER_WAIT};
use crate::destinations::DestinationError;

pub struct HubSpotClient {
    http: reqwest::Client,
    /// The destination's name in sluice.toml: how `/metrics` labels its requests.
    name: String,
    base: Url,
    token: SecretString,
    /// Shared by every sync writing with this token: HubSpot counts requests per app.
    pace: Pace,
    /// Set when HubSpot says the window is used up: no request before then.
    pause_until: Mutex<Option<Instant>>,
    /// The token's account (portal), once asked: `None` when HubSpot would not say.
    portal: tokio::sync::OnceCell<Option<u64>>,
}

impl HubSpotClient {
    pub fn new(name: &str, config: &HubSpotConfig) -> Result<HubSpotClient, String> {
        let mut base = Url::parse(&config.base_url).map_err(|e| format!("`base_url` is not a valid URL: {e}"))?;
        if base.cannot_be_a_base() {
            return Err("`base_url` must be an http(s) URL".into());
        }
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let http = crate::destinations::http::client(config.requests.timeout)?;
        let base_text = base.to_string();
        Ok(HubSpotClient {
            name: name.to_string(),
            http,
            base,
            token: config.token.clone(),
            pace: Pace::new(
                &Pace::key("hubspot", &base_text, config.token.expose_secret()),
                RateLimit::new(config.rate_limit_per_10s, Duration::from_secs(10)),
            ),
            pause_until: Mutex::new(None),
            portal: tokio::sync::OnceCell::new(),
        })
    }

    /// The rate limit requests wait for.
    pub fn rate_limit(&self) -> RateLimit {
        self.pace.limit()
    }

    /// The id of the account (portal) the token belongs to, from the account information API
    /// (`GET /account-info/v3/details`). A refusal (an app without the scope HubSpot documents
    /// for it, or a bad token, which fails the run when the writer opens) leaves it unknown:
    /// `None`; a transient failure is an error, retried by the engine.
    pub async fn portal(&self) -> Result<Option<u64>, DestinationError> {
        self.portal
            .get_or_try_init(|| async {
                match self.request(Method::GET, "account-info/v3/details", None).await {
                    Ok((_, body)) => Ok(body["portalId"].as_u64()),
                    Err(CallError::Failed(e) | CallError::Unanswered(e)) if e.is_transient() => Err(e),
                    Err(_) => Ok(None),
                }
            })
            .await
            .copied()
    }

    /// One request to `crm/v3/{path}`. Returns the status and body of any 2xx (207 included).
    pub async fn call(&self, method: Method, path: &str, body: Option<&J>) -> Result<(u16, J), CallError> {
        self.request(method, &format!("crm/v3/{path}"), body).await
    }

    /// One request to `{base_url}{path}`, paced to the rate limit.
    async fn request(&self, method: Method, path: &str, body: Option<&J>) -> Result<(u16, J), CallError> {
        let pause = self.pause_until.lock().map(|p| *p).unwrap_or(None);
        if let Some(until) = pause {
            tokio::time::sleep_until(until.into()).await;
        }
        self.pace.ready().await;
        let url = self.base.join(path).map_err(|e| DestinationError::fatal(format!("bad request path: {e}")))?;
        let what = format!("{method} /{path}");
        let mut request = self.http.request(method, url).bearer_auth(self.token.expose_secret());
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = http::send(request, &self.name, &what, "base_url").await?;
        let status = answer.status;
        let window = rate_window(&answer.headers);
        // HubSpot's count says the window is used up. When this process used it all, the pace
        // knows when it frees already; otherwise someone else (another app on the token, a
        // replica) shares it, and only waiting out the interval is safe.
        if let (Some((remaining, interval)), Ok(mut pause)) = (window, self.pause_until.lock()) {
            *pause = (remaining == 0 && !self.pace.is_full()).then(|| Instant::now().checked_add(interval)).flatten();
        }
        // A 429 without Retry-After waits for the window to roll over.
        let window_wait = window.map(|(_, i)| i).filter(|_| status == StatusCode::TOO_MANY_REQUESTS);
        let retry_after = answer.retry_after.or(window_wait);
        let text = answer.body?;
        if status.is_success() {
            let body = if text.trim().is_empty() { J::Null } else { serde_json::from_str(&text).unwrap_or(J::Null) };
            return Ok((status.as_u16(), body));
        }
        // A batch of records none of which HubSpot knows (deleted, merged away) is a 404: an
        // answer about those records, as a 207 would give per record, not a wrong address.
        let parsed: J = serde_json::from_str(&text).unwrap_or(J::Null);
        if status == StatusCode::NOT_FOUND && path.contains("/batch/") && parsed["category"] == "OBJECT_NOT_FOUND" {
            return Ok((404, parsed));
        }
        Err(classify(&what, status, retry_after, &text))
    }
}

/// `(remaining, interval)` from the `X-HubSpot-RateLimit-*` headers, when present.
fn rate_window(headers: &HeaderMap) -> Option<(u64, Duration)> {
    let number = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let remaining = number("x-hubspot-ratelimit-remaining")?;
    let interval = number("x-hubspot-ratelimit-interval-milliseconds").unwrap_or(10_000);
    Some((remaining, Duration::from_millis(interval).min(MAX_SERVER_WAIT)))
}

/// The least wait after a 423 Locked (HubSpot: "wait at least 2 seconds").
const LOCKED_WAIT: Duration = Duration::from_secs(2);

/// What a failed response means. Whether to retry is decided here; how is the engine's.
pub fn classify(what: &str, status: StatusCode, retry_after: Option<Duration>, body: &str) -> CallError {
    let parsed: J = serde_json::from_str(body).unwrap_or(J::Null);
    let message = parsed["message"].as_str().map(str::to_string).unwrap_or_else(|| body.chars().take(300).collect());
    let category = parsed["category"].as_str().or(parsed["errorType"].as_str()).unwrap_or("");
    let shown =
        format!("{what}: HTTP {}{}: {message}", status.as_u16(), if category.is_empty() { String::new() } else { format!(" {category}") });
    let fatal = |hint: &str| CallError::Failed(DestinationError::fatal(format!("{shown} ({hint})")));
    match status.as_u16() {
        408 | 429 => CallError::Failed(DestinationError { retry_after, ..DestinationError::transient(shown) }),
        500..=599 => CallError::Unanswered(DestinationError { retry_after, ..DestinationError::transient(shown) }),
        // 423 Locked, under high-volume upserts: HubSpot asks for at least 2 s before a retry.
        423 => CallError::Failed(DestinationError {
            retry_after: Some(retry_after.unwrap_or_default().max(LOCKED_WAIT)),
            ..DestinationError::transient(shown)
        }),
        // 477 Migration in progress: the account is moving between data centres; Retry-After says when.
        477 => CallError::Failed(DestinationError { retry_after, ..DestinationError::transient(shown) }),
        401 => fatal("check `token`: a private app access token, from Settings > Integrations > Private apps"),
        403 => fatal("the private app lacks a scope this object needs: add its crm.objects.*.read/write scopes"),
        404 => fatal("check `object` in the sync's [target]: no such object type"),
        400 | 409 | 422 => CallError::Refused(shown),
        _ => fatal("unexpected answer from HubSpot"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_retry_decisions() {
        let c = |s: u16, body: &str| classify("POST /x", StatusCode::from_u16(s).unwrap(), None, body);
        let rate =
            r#"{"status":"error","message":"You have reached your secondly limit.","errorType":"RATE_LIMIT","policyName":"SECONDLY"}"#;
        assert!(matches!(c(429, rate), CallError::Failed(e) if e.is_transient() && e.message.contains("RATE_LIMIT")));
        assert!(matches!(c(502, "bad gateway"), CallError::Unanswered(e) if e.is_transient()));
        assert!(matches!(c(423, "{}"), CallError::Failed(e) if e.is_transient() && e.retry_after == Some(Duration::from_secs(2))));
        let migrating = classify("POST /x", StatusCode::from_u16(477).unwrap(), Some(Duration::from_secs(1)), "{}");
        assert!(matches!(migrating, CallError::Failed(e) if e.is_transient() && e.retry_after == Some(Duration::from_secs(1))));
        let auth = r#"{"status":"error","message":"Authentication credentials not found.","category":"INVALID_AUTHENTICATION"}"#;
        assert!(matches!(c(401, auth), CallError::Failed(e) if !e.is_transient() && e.message.contains("Private apps")));
        assert!(matches!(c(400, r#"{"message":"Property values were not valid","category":"VALIDATION_ERROR"}"#),
            CallError::Refused(m) if m.contains("VALIDATION_ERROR")));
    }

    #[test]
    fn rate_headers_pause_when_the_window_is_used_up() {
        let mut h = HeaderMap::new();
        h.insert("x-hubspot-ratelimit-remaining", "0".parse().unwrap());
        h.insert("x-hubspot-ratelimit-interval-milliseconds", "10000".parse().unwrap());
        assert_eq!(rate_window(&h), Some((0, Duration::from_secs(10))));
        assert_eq!(rate_window(&HeaderMap::new()), None);
        h.insert("x-hubspot-ratelimit-interval-milliseconds", u64::MAX.to_string().parse().unwrap());
        assert_eq!(rate_window(&h), Some((0, MAX_SERVER_WAIT)), "a window no clock can reach is capped, not a panic");
    }
}
