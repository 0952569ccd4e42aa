//! How a run's requests flow to a service, seen from the destination's side: the service's
//! published rate limit ([`Pace`], waited on before each request), and what each request cost
//! ([`Meter`], read by the engine's adaptive concurrency).
//!
//! The engine decides how many batches are on the wire at once (`engine::concurrency`); it
//! learns how the service is doing from the requests themselves: [`crate::destinations::http::send`]
//! records each request's time and whether the service pushed back (429, 503, a timeout) in the
//! meter of the write that made it, and [`Pace::ready`] records its waits there, so time spent
//! waiting for the rate limit is never taken for a slow service. A writer that speaks HTTP
//! through `http::send` and paces through [`Pace`] is measured without doing anything.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// A published rate limit: at most `requests` requests in any window of `per` (the way SaaS
/// quotas are counted: HubSpot's 100 per rolling 10 s, Sheets' 60 writes per minute, Slack's
/// one message per second).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
}

impl RateLimit {
    pub fn new(requests: u32, per: Duration) -> RateLimit {
        RateLimit { requests: requests.max(1), per: per.max(Duration::from_millis(1)) }
    }

    /// `"100/10s"`, `"1/s"`, `"60/min"`: requests, a slash, then a window (a number may be left
    /// out before its unit: `s` is `1s`).
    pub fn parse(text: &str) -> Result<RateLimit, String> {
        let bad =
            |why: String| format!("`{text}` is not a rate limit ({why}): write it as requests/window, e.g. \"100/10s\" or \"60/min\"");
        let (n, per) = text.split_once('/').ok_or_else(|| bad("no `/`".into()))?;
        let requests: u32 = n.trim().parse().map_err(|_| bad(format!("`{}` is not a number of requests", n.trim())))?;
        let per = per.trim();
        let per = if per.starts_with(|c: char| c.is_ascii_digit()) { per.to_string() } else { format!("1{per}") };
        let per = humantime::parse_duration(&per).map_err(|e| bad(e.to_string()))?;
        if requests == 0 || per.is_zero() {
            return Err(bad("both numbers must be above zero".into()));
        }
        Ok(RateLimit::new(requests, per))
    }

    /// The `rate_limit` setting of a destination, if given: its error names the setting.
    pub fn setting(text: Option<&str>) -> Result<Option<RateLimit>, String> {
        text.map(RateLimit::parse).transpose().map_err(|e| format!("`rate_limit`: {e}"))
    }

    /// The least time `n` requests that each take `latency` can take under this limit: the
    /// first `requests` at once, each later one a window after the one `requests` before it.
    pub fn floor(&self, n: u64, latency: Duration) -> Duration {
        if n == 0 {
            return Duration::ZERO;
        }
        let windows = (n - 1) / u64::from(self.requests);
        self.per * windows as u32 + latency
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.requests, humantime::format_duration(self.per))
    }
}

/// Added to every window: a request is counted by the service when it arrives, and two
/// requests sent a window apart may arrive a little less than a window apart.
fn margin(per: Duration) -> Duration {
    (per / 50).min(Duration::from_millis(500))
}

/// The send times of the requests (tokio's clock: tests run it paused) in one rate limit's current window.
type Sent = Arc<Mutex<VecDeque<Instant>>>;

/// Every limit this process paces to, by what the service counts requests by (a token, a
/// webhook): two syncs, or two destinations, writing to one HubSpot app share its window.
static WINDOWS: LazyLock<Mutex<HashMap<(String, RateLimit), Sent>>> = LazyLock::new(Default::default);

/// Windows shared by several processes (daemon replicas, a `sluice run` beside them), kept in
/// the state store they share: the engine hands them to each write ([`metered`]).
#[async_trait::async_trait]
pub trait SharedWindows: Send + Sync {
    /// Counts one request under `key` if a window of `per` holds fewer than `requests` now;
    /// otherwise says how long until one leaves it. `Err`: the store could not tell.
    async fn claim(&self, key: &str, requests: u32, per: Duration) -> Result<Option<Duration>, String>;
}

/// Waits before each request so that no window of the limit ever holds more than it allows:
/// a healthy run meets no 429. Within a write whose engine shares windows between processes,
/// the window is the shared one; otherwise this process's. Cheap to clone; clones share the
/// window.
#[derive(Clone)]
pub struct Pace {
    key: String,
    limit: RateLimit,
    sent: Sent,
}

impl Pace {
    /// The pace of `limit` for everything this process sends to `key`: what the service
    /// counts by (`hubspot:` and a hash of the token, `slack:` and a hash of the webhook).
    /// Never a secret itself.
    pub fn new(key: &str, limit: RateLimit) -> Pace {
        let mut windows = WINDOWS.lock().unwrap_or_else(|e| e.into_inner());
        let sent = windows.entry((key.to_string(), limit)).or_default().clone();
        Pace { key: key.to_string(), limit, sent }
    }

    /// The key of what a service counts requests by, for [`Pace::new`]: the service's kind, its
    /// address, and a hash of the credential that identifies the caller (never the credential).
    pub fn key(kind: &str, base: &str, caller: &str) -> String {
        use sha2::Digest;
        let hash = sha2::Sha256::digest(caller.as_bytes());
        format!("{kind}:{base}:{}", hex::encode(&hash[..8]))
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Whether this process alone used up the current window: then the service's own count
    /// (a `Remaining: 0` header) says nothing this pace does not know already. With windows
    /// shared between processes, every sluice process counts there, and the service's count is
    /// taken as theirs.
    pub fn is_full(&self) -> bool {
        if shared().is_some() {
            return true;
        }
        let window = self.limit.per + margin(self.limit.per);
        let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        sent.iter().filter(|t| now.duration_since(**t) < window).count() >= self.limit.requests as usize
    }

    /// Returns when one more request may go, and counts it as sent.
    pub async fn ready(&self) {
        let window = self.limit.per + margin(self.limit.per);
        if let Some(shared) = shared() {
            loop {
                match shared.claim(&self.key, self.limit.requests, window).await {
                    Ok(None) => return,
                    Ok(Some(wait)) => {
                        paced(wait);
                        tokio::time::sleep(wait).await;
                    }
                    Err(e) => {
                        // This process's window still holds (only the others' share is unseen).
                        tracing::warn!(error = %e, "the shared rate-limit window could not be read: pacing by this process alone");
                        break;
                    }
                }
            }
        }
        loop {
            let wait = {
                let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                while sent.front().is_some_and(|t| now.duration_since(*t) >= window) {
                    sent.pop_front();
                }
                if sent.len() < self.limit.requests as usize {
                    sent.push_back(now);
                    return;
                }
                // The oldest request leaves the window first.
                sent.front().map_or(Duration::ZERO, |t| (*t + window).saturating_duration_since(now))
            };
            paced(wait);
            tokio::time::sleep(wait).await;
        }
    }
}

/// What the requests of one write cost, as the engine's adaptive concurrency reads them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Meter {
    /// Requests that got an answer or failed on the way.
    pub requests: u32,
    /// Their time on the wire, summed.
    pub busy: Duration,
    /// Requests the service pushed back on: 429, 503, or no answer in time.
    pub pushed_back: u32,
    /// Time spent waiting for a rate limit, not on the wire.
    pub paced: Duration,
}

/// What a write runs within: its meter, and the windows it shares with other processes.
struct Context {
    meter: RefCell<Meter>,
    shared: Option<Arc<dyn SharedWindows>>,
}

tokio::task_local! {
    static CONTEXT: Context;
}

/// Runs `work` (one write) with a meter of its own, pacing to `shared` windows if given, and
/// returns the meter with its output.
pub async fn metered<F: Future>(shared: Option<Arc<dyn SharedWindows>>, work: F) -> (F::Output, Meter) {
    CONTEXT
        .scope(Context { meter: RefCell::new(Meter::default()), shared }, async {
            let out = work.await;
            (out, CONTEXT.with(|c| c.meter.take()))
        })
        .await
}

/// Runs `work` (opening a writer, asking where it writes: requests outside a write) pacing to
/// `shared` windows if given.
pub async fn within<F: Future>(shared: Option<Arc<dyn SharedWindows>>, work: F) -> F::Output {
    metered(shared, work).await.0
}

fn shared() -> Option<Arc<dyn SharedWindows>> {
    CONTEXT.try_with(|c| c.shared.clone()).ok().flatten()
}

/// Records one request in the current write's meter (none outside [`metered`]).
pub fn request(took: Duration, pushed_back: bool) {
    let _ = CONTEXT.try_with(|c| {
        let mut m = c.meter.borrow_mut();
        m.requests += 1;
        m.busy += took;
        m.pushed_back += u32::from(pushed_back);
    });
}

/// Records a wait for a rate limit in the current write's meter.
pub fn paced(wait: Duration) {
    let _ = CONTEXT.try_with(|c| c.meter.borrow_mut().paced += wait);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse_from_text() {
        assert_eq!(RateLimit::parse("100/10s"), Ok(RateLimit::new(100, Duration::from_secs(10))));
        assert_eq!(RateLimit::parse("1/s"), Ok(RateLimit::new(1, Duration::from_secs(1))));
        assert_eq!(RateLimit::parse(" 60 / min "), Ok(RateLimit::new(60, Duration::from_secs(60))));
        for bad in ["100", "x/10s", "0/s", "10/0s", "10/soon"] {
            let e = RateLimit::parse(bad).unwrap_err();
            assert!(e.contains("e.g. \"100/10s\""), "{bad}: {e}");
        }
        assert_eq!(RateLimit::new(100, Duration::from_secs(10)).to_string(), "100/10s");
    }

    #[test]
    fn the_floor_is_whole_windows_then_one_request() {
        let l = RateLimit::new(100, Duration::from_secs(10));
        let latency = Duration::from_millis(300);
        assert_eq!(l.floor(100, latency), latency);
        assert_eq!(l.floor(101, latency), Duration::from_millis(10_300));
        assert_eq!(l.floor(200, latency), Duration::from_millis(10_300));
        assert_eq!(l.floor(201, latency), Duration::from_millis(20_300));
    }

    #[tokio::test]
    async fn a_window_never_holds_more_than_the_limit() {
        let per = Duration::from_millis(100);
        let pace = Pace::new("test:window", RateLimit::new(5, per));
        let started = Instant::now();
        let (_, meter) = metered(None, async {
            for _ in 0..12 {
                pace.ready().await;
            }
        })
        .await;
        // 5 at once, 5 a window (and its margin) later, 2 after another.
        let window = per + margin(per);
        assert!(started.elapsed() >= window * 2, "{:?}", started.elapsed());
        assert!(meter.paced >= window * 2 - Duration::from_millis(5), "{:?}", meter.paced);
        // Another pace of the same key and limit shares the window.
        let other = Pace::new("test:window", RateLimit::new(5, per));
        assert_eq!(other.sent.lock().unwrap().len(), 2);
    }
}
