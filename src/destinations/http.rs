//! HTTP details every HTTP destination shares: the client (no redirects, no Referer), sending
//! and reading answers (a 3xx refused, bodies bounded), the one error type their clients
//! classify answers into ([`CallError`]), Retry-After, and describing transport failures without
//! echoing URLs (which may carry tokens).

use std::time::Duration;

use reqwest::header::{HeaderValue, LOCATION};

use super::DestinationError;

/// The most of a response body a destination reads. Answers are small (one batch's per-row
/// results); a server that sends more is not one we understand, and must not fill memory.
pub const MAX_BODY: usize = 16 << 20;

/// The HTTP client every destination uses: a per-request timeout, sluice's user agent, and no
/// redirects. Followed, a 301/302/303 turns a POST into a GET whose 200 carries no per-row
/// results (every row would be recorded as written, none delivered), and custom headers and the
/// URL's query token would travel to the other host. Without a redirect there is no Referer.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Why a request to an HTTP service did not do what was asked: what a destination's `client.rs`
/// classifies each answer into, and what its writer decides row outcomes from. Whether to retry
/// is in the [`DestinationError`]'s kind; how is the engine's.
#[derive(Debug)]
pub enum CallError {
    /// Refused for what it carried (a 400 about the data): the rows in the request are rejected,
    /// or, when the service did not say which one is bad, split by the engine to find it.
    /// Sending the same request again cannot help.
    Refused(String),
    /// Not carried out (configuration, authentication, a rate limit).
    Failed(DestinationError),
    /// No answer, a 5xx, or an answer cut off: the request may or may not have been carried out.
    /// A writer whose requests are not idempotent (an append) re-reads before sending again.
    Unanswered(DestinationError),
}

impl From<DestinationError> for CallError {
    fn from(e: DestinationError) -> Self {
        CallError::Failed(e)
    }
}

/// For a caller with no rows to pin a refusal on (a lookup, opening a writer): the run fails
/// with the service's reason.
impl From<CallError> for DestinationError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Failed(e) | CallError::Unanswered(e) => e,
            CallError::Refused(m) => DestinationError::fatal(m),
        }
    }
}

/// A 3xx answer, as the error it is: the configured address is not where the service is. Names
/// the host it points at (not the whole address: it may carry a token) and the setting to fix.
fn redirected(what: &str, response: &reqwest::Response, setting: &str) -> Option<DestinationError> {
    if !response.status().is_redirection() {
        return None;
    }
    let target = response
        .headers()
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| response.url().join(l).ok())
        .and_then(|u| u.host_str().map(str::to_string));
    let to = target.map(|h| format!(" to {h}")).unwrap_or_default();
    Some(DestinationError::fatal(format!(
        "{what}: HTTP {} redirects{to}: sluice never follows redirects (a POST would arrive as a GET, and credentials would go \
         along); set `{setting}` to the final address",
        response.status().as_u16()
    )))
}

/// A response as a destination's `classify` reads it: its status, the wait a server asked for
/// (capped), its headers and its body (bounded; [`CallError::Unanswered`] when cut off or too
/// long: whether that matters is the destination's call, since the status may already say enough).
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub retry_after: Option<Duration>,
    pub headers: reqwest::header::HeaderMap,
    pub body: Result<String, CallError>,
}

/// Sends `request` and reads its answer, the same way for every HTTP destination: a request
/// that got no answer is [`CallError::Unanswered`] and transient (only the class of failure is
/// told: reqwest's text can hold the URL), each status is counted for `/metrics` under
/// `destination`, a 3xx is refused (naming `setting` to fix), the body is read up to [`MAX_BODY`].
pub async fn send(request: reqwest::RequestBuilder, destination: &str, what: &str, setting: &str) -> Result<Answer, CallError> {
    let started = std::time::Instant::now();
    let response = request.send().await.map_err(|e| {
        // No answer in time: the service may be overloaded, as with a 503.
        super::flow::request(started.elapsed(), e.is_timeout());
        CallError::Unanswered(DestinationError::transient(format!("{what}: {}", transport_error(&e))))
    })?;
    let status = response.status();
    crate::metrics::global().http(destination, status.as_u16());
    if let Some(e) = redirected(what, &response, setting) {
        return Err(CallError::Failed(e));
    }
    let retry_after = response.headers().get(reqwest::header::RETRY_AFTER).and_then(parse_retry_after);
    let headers = response.headers().clone();
    let body = text(response, what).await.map_err(CallError::Unanswered);
    let pushed_back = matches!(status.as_u16(), 429 | 503);
    super::flow::request(started.elapsed(), pushed_back);
    Ok(Answer { status, retry_after, headers, body })
}

/// A response's body, at most [`MAX_BODY`] bytes. A body cut off or too long is transient: the
/// request may have been carried out, and the engine's retry decides what happens next.
async fn body(mut response: reqwest::Response, what: &str) -> Result<Vec<u8>, DestinationError> {
    let mut out = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > MAX_BODY {
                    return Err(DestinationError::transient(format!(
                        "{what}: the response body is larger than {} MiB: not an answer sluice understands",
                        MAX_BODY >> 20
                    )));
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out),
            Err(e) => return Err(DestinationError::transient(format!("{what}: {}", transport_error(&e)))),
        }
    }
}

/// [`body`] as text (invalid UTF-8 replaced: bodies are shown in messages, or parsed as JSON).
async fn text(response: reqwest::Response, what: &str) -> Result<String, DestinationError> {
    body(response, what).await.map(|b| String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// The longest wait a server's header may ask for (Retry-After, a rate-limit window): what a
/// remote service says must never overflow a time computation here.
pub const MAX_SERVER_WAIT: Duration = Duration::from_secs(3600);

/// Retry-After as delay-seconds or an HTTP date, at most [`MAX_SERVER_WAIT`].
pub fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_SERVER_WAIT));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO).min(MAX_SERVER_WAIT))
}

/// What went wrong with a request that got no response. reqwest's own text can include the
/// full URL, so only the class of failure is described.
pub fn transport_error(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the response was cut off"
    } else {
        "the connection failed before a response arrived"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after(&HeaderValue::from_static("7")), Some(Duration::from_secs(7)));
        let past = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(parse_retry_after(&past), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(&HeaderValue::from_static("soon")), None);
        assert_eq!(parse_retry_after(&HeaderValue::from_static("18446744073709551615")), Some(MAX_SERVER_WAIT), "no overflow");
    }
}
