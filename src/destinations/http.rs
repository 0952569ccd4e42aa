//! HTTP details every HTTP destination shares: reading Retry-After and describing transport
//! failures without echoing URLs (which may carry tokens).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderValue;

/// The HTTP client every destination uses: a per-request timeout and sluice's user agent.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Retry-After as delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
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

/// A limiter that never lets more than `max` requests through in any `window` (the way SaaS
/// quotas are counted): a burst of a tenth, then an even pace. A plain GCRA of `max` per
/// `window` would allow twice that in the first window.
pub fn window_limiter(max: u32, window: Duration) -> DefaultDirectRateLimiter {
    let max = max.max(1);
    let burst = (max / 10).max(1);
    let paced = (max - burst).max(1);
    let quota = Quota::with_period(window / paced).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN));
    RateLimiter::direct(quota.allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN)))
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
    }

    #[test]
    fn limiter_allows_a_tenth_as_a_burst() {
        let l = window_limiter(60, Duration::from_secs(60));
        assert_eq!((0..100).filter(|_| l.check().is_ok()).count(), 6);
    }
}
