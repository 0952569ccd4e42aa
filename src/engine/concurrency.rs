//! How many batches one run keeps on the wire: adaptive request concurrency, in the spirit of
//! vector's ARC. The destination declares a ceiling (`max_in_flight`); within it the limit starts
//! at one and follows the service:
//!
//! - **Grow** while answers are clean, latency holds and the run uses every slot: doubling per
//!   round trip at first (slow start, so a run reaches a service's pace in a few round trips),
//!   then one slot per round trip once the service has pushed back.
//! - **Back off** multiplicatively: halve on push-back (429, 503, no answer in time), shrink by a
//!   tenth when latency rises past its recent mean by more than its usual spread.
//!
//! Push-back is acted on at once, but once per round trip: the 429s of requests sent together
//! count once. Everything else is judged at the end of each round trip (a window as long as the
//! recent mean latency). Latency is the requests' own time on the wire
//! (`destinations::flow::Meter`): time waiting for a rate limit is never taken for a slow service.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::destinations::flow::Meter;

/// The weight of the latest request in the running mean of latency and of its deviation.
const EWMA_ALPHA: f64 = 0.1;
/// Latency rises when a window's mean exceeds the running mean by this many mean deviations
/// (of single requests: a window of one or two requests is judged without false alarms)...
const DEVIATION_SCALE: f64 = 2.5;
/// ...and by at least this share of it (a steady service has almost no deviation).
const MIN_RISE: f64 = 0.2;
/// The limit kept after latency rose.
const DECREASE_RATIO: f64 = 0.9;

/// One write's worth of evidence about the service.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Time on the wire per request.
    pub latency: Duration,
    pub pushed_back: bool,
}

impl Sample {
    /// From a write that took `elapsed` and the meter of its requests; a writer that made no
    /// metered request (a command, a custom destination) is judged by its call, less its pacing.
    pub fn of(elapsed: Duration, meter: &Meter, failed_transiently: bool) -> Sample {
        let latency = match meter.requests {
            0 => elapsed.saturating_sub(meter.paced),
            n => meter.busy / n,
        };
        Sample { latency, pushed_back: meter.pushed_back > 0 || (meter.requests == 0 && failed_transiently) }
    }
}

struct State {
    limit: usize,
    in_flight: usize,
    slow_start: bool,
    /// Running mean and mean deviation of a request's latency, in seconds; `None` before the
    /// first answer.
    mean: Option<(f64, f64)>,
    window: Window,
    /// When the limit was last halved for push-back.
    backed_off: Option<Instant>,
}

struct Window {
    started: Instant,
    total: Duration,
    samples: u32,
    /// Whether every slot was taken at some point: only then does more concurrency help.
    full: bool,
    /// The running mean and deviation when the window began: what it is judged against.
    baseline: Option<(f64, f64)>,
}

impl Window {
    fn new(baseline: Option<(f64, f64)>) -> Window {
        Window { started: Instant::now(), total: Duration::ZERO, samples: 0, full: false, baseline }
    }
}

/// The limit of one run's batches in flight. [`Adaptive::acquire`] waits for a slot.
pub struct Adaptive {
    /// Rate-limit windows shared with other processes, for the writes' paces.
    pub(super) shared: Option<std::sync::Arc<dyn crate::destinations::flow::SharedWindows>>,
    ceiling: usize,
    state: Mutex<State>,
    freed: Notify,
    destination: String,
    /// Requests made so far, and the most batches on the wire at once.
    requests: std::sync::atomic::AtomicU64,
    most: std::sync::atomic::AtomicUsize,
}

/// A slot on the wire; freed when dropped.
pub struct Slot<'a>(&'a Adaptive);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        {
            let mut s = self.0.lock();
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        self.0.report(|m| m.in_flight(&self.0.destination, -1));
        self.0.freed.notify_one();
    }
}

impl Adaptive {
    /// A limit between 1 and `ceiling`, starting at 1, for writes pacing to `shared` windows
    /// (if the store shares them); its figures go to `/metrics` under `destination`.
    pub fn new(
        ceiling: usize,
        destination: &str,
        shared: Option<std::sync::Arc<dyn crate::destinations::flow::SharedWindows>>,
    ) -> Adaptive {
        let state = State { limit: 1, in_flight: 0, slow_start: true, mean: None, window: Window::new(None), backed_off: None };
        let adaptive = Adaptive {
            shared,
            ceiling: ceiling.max(1),
            state: Mutex::new(state),
            freed: Notify::new(),
            destination: destination.into(),
            requests: Default::default(),
            most: Default::default(),
        };
        adaptive.report(|m| m.concurrency_limit(destination, 1));
        adaptive
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn report(&self, f: impl FnOnce(&crate::metrics::Metrics)) {
        f(crate::metrics::global())
    }

    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    pub fn ceiling(&self) -> usize {
        self.ceiling
    }

    /// Requests made so far (a writer that made no metered request counts one per write).
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The most writes that were on the wire at once.
    pub fn most_in_flight(&self) -> usize {
        self.most.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits for a slot under the current limit.
    pub async fn acquire(&self) -> Slot<'_> {
        loop {
            let freed = self.freed.notified();
            let taken = {
                let mut s = self.lock();
                if s.in_flight < s.limit {
                    s.in_flight += 1;
                    self.most.fetch_max(s.in_flight, std::sync::atomic::Ordering::Relaxed);
                    if s.in_flight == s.limit {
                        s.window.full = true;
                    }
                    true
                } else {
                    false
                }
            };
            if taken {
                self.report(|m| m.in_flight(&self.destination, 1));
                return Slot(self);
            }
            freed.await;
        }
    }

    /// Learns from one write that took `elapsed`, with the meter of its requests.
    pub fn observe_write(&self, elapsed: Duration, meter: &Meter, failed_transiently: bool) {
        self.report(|m| m.rate_limit_wait(&self.destination, meter.paced));
        self.requests.fetch_add(u64::from(meter.requests.max(1)), std::sync::atomic::Ordering::Relaxed);
        self.observe(Sample::of(elapsed, meter, failed_transiently));
    }

    /// Learns from one write; at the end of each round trip, moves the limit.
    pub fn observe(&self, sample: Sample) {
        let changed = {
            let mut s = self.lock();
            let round_trip = s.mean.map_or(sample.latency, |(mean, _)| Duration::from_secs_f64(mean));
            let before = s.limit;
            if sample.pushed_back {
                // Push-back answers are often fast refusals: they say nothing of latency.
                if s.backed_off.is_some_and(|t| t.elapsed() < round_trip) {
                    return;
                }
                s.limit = (s.limit / 2).max(1);
                s.slow_start = false;
                s.backed_off = Some(Instant::now());
                s.window = Window::new(s.mean);
            } else {
                s.window.total += sample.latency;
                s.window.samples += 1;
                s.mean = Some(fold(s.mean, sample.latency.as_secs_f64()));
                if s.window.started.elapsed() < round_trip {
                    return;
                }
                judge(&mut s, self.ceiling);
            }
            (s.limit != before).then_some(s.limit)
        };
        if let Some(limit) = changed {
            tracing::debug!(destination = %self.destination, limit, "requests in flight: new limit");
            self.report(|m| m.concurrency_limit(&self.destination, limit));
            // A higher limit frees slots.
            self.freed.notify_waiters();
        }
    }
}

/// The end of a window: shrink, hold, or grow.
fn judge(s: &mut State, ceiling: usize) {
    let w = std::mem::replace(&mut s.window, Window::new(s.mean));
    let latency = (w.total / w.samples.max(1)).as_secs_f64();
    let rose = w.baseline.is_some_and(|(mean, deviation)| latency > mean + (deviation * DEVIATION_SCALE).max(mean * MIN_RISE));
    if rose {
        s.limit = ((s.limit as f64 * DECREASE_RATIO) as usize).max(1);
        s.slow_start = false;
    } else if w.full {
        s.limit = if s.slow_start { s.limit * 2 } else { s.limit + 1 }.min(ceiling);
    }
}

/// One request's latency folded into the running mean and mean deviation. Until the spread is
/// known, a quarter of the first latency stands for it.
fn fold(running: Option<(f64, f64)>, latency: f64) -> (f64, f64) {
    match running {
        None => (latency, latency / 4.0),
        Some((mean, deviation)) => (mean + EWMA_ALPHA * (latency - mean), deviation + EWMA_ALPHA * ((latency - mean).abs() - deviation)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(ms: u64) -> Sample {
        Sample { latency: Duration::from_millis(ms), pushed_back: false }
    }

    /// Ends the current window with `sample`, every slot having been taken.
    fn window(a: &Adaptive, sample: Sample) {
        {
            let mut s = a.lock();
            s.window.full = true;
            s.window.started = Instant::now() - Duration::from_secs(10);
            s.backed_off = None;
        }
        a.observe(sample);
    }

    #[test]
    fn grows_by_doubling_then_by_one_after_push_back() {
        let a = Adaptive::new(64, "test", None);
        let limits: Vec<usize> = (0..5).map(|_| (window(&a, clean(100)), a.limit()).1).collect();
        assert_eq!(limits, [2, 4, 8, 16, 32]);
        window(&a, Sample { pushed_back: true, ..clean(100) });
        assert_eq!(a.limit(), 16, "halved on push-back");
        a.observe(Sample { pushed_back: true, ..clean(100) });
        assert_eq!(a.limit(), 16, "once per round trip: requests sent together are refused together");
        window(&a, clean(100));
        window(&a, clean(100));
        assert_eq!(a.limit(), 18, "then one a round trip");
    }

    #[test]
    fn never_above_the_ceiling_nor_below_one() {
        let a = Adaptive::new(5, "test", None);
        (0..10).for_each(|_| window(&a, clean(100)));
        assert_eq!(a.limit(), 5);
        (0..10).for_each(|_| window(&a, Sample { pushed_back: true, ..clean(100) }));
        assert_eq!(a.limit(), 1);
    }

    #[test]
    fn rising_latency_shrinks_the_limit_and_steady_latency_does_not() {
        let a = Adaptive::new(100, "test", None);
        (0..5).for_each(|_| window(&a, clean(300)));
        assert_eq!(a.limit(), 32);
        window(&a, clean(320));
        assert_eq!(a.limit(), 64, "within the spread: still growing");
        window(&a, clean(900));
        assert_eq!(a.limit(), 57, "latency tripled: a tenth less");
    }

    #[test]
    fn jitter_within_the_usual_spread_does_not_shrink_the_limit() {
        // A service answering in 300 ms +- 100 ms, one request a window: the single slow ones
        // are its spread, not a rise.
        let a = Adaptive::new(1_000, "test", None);
        let mut rng_state = 7u64;
        let mut limits = Vec::new();
        for _ in 0..12 {
            rng_state = rng_state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            window(&a, clean(200 + (rng_state >> 33) % 201));
            limits.push(a.limit());
        }
        assert!(limits.windows(2).all(|w| w[1] >= w[0]), "{limits:?}");
        assert_eq!(a.limit(), 1_000, "{limits:?}");
    }

    #[test]
    fn grows_only_when_every_slot_was_used() {
        let a = Adaptive::new(100, "test", None);
        a.lock().window.started = Instant::now() - Duration::from_secs(10);
        a.observe(clean(100));
        assert_eq!(a.limit(), 1, "one batch at a time never filled more than it had");
    }

    #[tokio::test]
    async fn slots_wait_for_the_limit() {
        let a = Adaptive::new(4, "test", None);
        let first = a.acquire().await;
        let second = tokio::time::timeout(Duration::from_millis(50), a.acquire()).await;
        assert!(second.is_err(), "the limit starts at one");
        drop(first);
        let _again = tokio::time::timeout(Duration::from_secs(5), a.acquire()).await.expect("a freed slot is taken");
    }
}
