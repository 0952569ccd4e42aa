//! What an emulator can be told to do to a request instead of (or besides) answering it.

use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Answer with this status and the service's own error body for it.
    Status(u16),
    /// Close the connection without an answer, before doing anything.
    Drop,
    /// Do what was asked at once, but answer this much later.
    Slow(Duration),
    /// Do what was asked, then close the connection: the client cannot know it was done.
    DropAfter,
    /// Revoke every token, then answer 401 (a token that expired or was revoked server-side).
    Revoke,
}

/// Closes the connection the handler is serving: the unwind ends the connection's task without
/// an answer, and without the panic hook printing anything.
pub fn drop_connection() -> ! {
    std::panic::resume_unwind(Box::new("emulated dropped connection"))
}

/// The seed of a randomised test: the one `var` names (to replay a failure) or a fresh one.
/// Printed either way, so a failing run's output says how to replay it.
pub fn seed(var: &str) -> u64 {
    let seed = std::env::var(var).ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    println!("seed: {seed} (replay with {var}={seed})");
    seed
}

/// Faults at random, for a share of requests: an emulator asks `pick` once per request.
/// However the dice fall, the first fault comes within `1 / rate` requests, so a short run meets
/// one too (a test that asserts faults were injected cannot pass by luck or fail by it). After
/// that the dice alone decide: forcing a fault every `1 / rate` requests would make a step that
/// needs more requests than that in a row fail on every attempt, whatever the retries (it did:
/// Sheets, SLUICE_FAULT_SEED=4081793741504948576).
pub struct RandomFaults {
    rate: f64,
    rng: fastrand::Rng,
    pub injected: usize,
    clean_streak: usize,
}

impl RandomFaults {
    pub fn new(rate: f64, seed: u64) -> RandomFaults {
        RandomFaults { rate, rng: fastrand::Rng::with_seed(seed), injected: 0, clean_streak: 0 }
    }

    /// Whether this request meets a fault (counted in `injected`), for an emulator whose faults
    /// are its own: it then picks one of `n` kinds with [`RandomFaults::kind`].
    pub fn strikes(&mut self) -> bool {
        // The first fault is forced if the dice have not thrown one by 1/rate requests, so a
        // test always meets one. Only the first: forcing one every 1/rate requests would make
        // any step needing more requests than that in a row fail on every attempt.
        let overdue = self.injected == 0 && self.clean_streak as f64 >= 1.0 / self.rate;
        if self.rng.f64() >= self.rate && !overdue {
            self.clean_streak += 1;
            return false;
        }
        self.clean_streak = 0;
        self.injected += 1;
        true
    }

    /// One of `n` kinds of fault, drawn from the same seeded generator.
    pub fn kind(&mut self, n: u8) -> u8 {
        self.rng.u8(0..n)
    }

    /// 429, 500, 503, an answer slower than a client's timeout, a reset before or after the work.
    pub fn pick(&mut self) -> Option<Fault> {
        if !self.strikes() {
            return None;
        }
        Some(match self.rng.u8(0..6) {
            0 => Fault::Status(429),
            1 => Fault::Status(500),
            2 => Fault::Status(503),
            3 => Fault::Slow(Duration::from_secs(3)),
            4 => Fault::Drop,
            _ => Fault::DropAfter,
        })
    }
}

/// The time a service takes to answer, as real ones do: a fixed part and a random one
/// (`base` +- `jitter`, uniform, from a seeded generator). Emulators add it after doing the
/// work, so it models the service's processing, not the network: a request counts against a
/// rate limit when it arrives.
pub struct Latency {
    pub base: Duration,
    pub jitter: Duration,
    rng: fastrand::Rng,
}

impl Latency {
    pub fn new(base: Duration, jitter: Duration, seed: u64) -> Latency {
        Latency { base, jitter: jitter.min(base), rng: fastrand::Rng::with_seed(seed) }
    }

    /// The next answer's latency.
    pub fn next(&mut self) -> Duration {
        let spread = self.jitter.as_micros() as u64;
        let offset = self.rng.u64(0..=2 * spread);
        (self.base + Duration::from_micros(offset)).saturating_sub(self.jitter)
    }
}

/// Waits out the next latency of an emulator's `latency`, if it has one.
pub async fn answer_after(latency: Option<Duration>) {
    if let Some(d) = latency {
        tokio::time::sleep(d).await;
    }
}

/// Counts the requests an emulator is serving at once, and the most there ever were.
#[derive(Clone, Default)]
pub struct InFlight {
    now: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    most: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// One request being served; counted until dropped (answered, or its connection dropped).
pub struct Serving(InFlight);

impl InFlight {
    pub fn enter(&self) -> Serving {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        Serving(self.clone())
    }

    pub fn most(&self) -> usize {
        self.most.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}
