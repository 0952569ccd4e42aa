//! Prometheus metrics, process-wide: what the daemon's `GET /metrics` serves. Runs are recorded
//! by the daemon; HTTP requests by each destination's client as answers arrive.

use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::engine::SyncReport;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabel {
    pub sync: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub sync: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RowLabels {
    pub sync: String,
    pub op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UsageLabels {
    pub destination: String,
    pub measure: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestinationLabel {
    pub destination: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub destination: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabel {
    pub stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub stream: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamSyncLabels {
    pub stream: String,
    pub sync: String,
}

type Seconds = Gauge<f64, AtomicU64>;

pub struct Metrics {
    registry: Registry,
    pub runs: Family<RunLabels, Counter>,
    pub rows: Family<RowLabels, Counter>,
    pub duration: Family<SyncLabel, Histogram, fn() -> Histogram>,
    pub last_success: Family<SyncLabel, Seconds>,
    pub next_run: Family<SyncLabel, Seconds>,
    pub skipped_ticks: Family<SyncLabel, Counter>,
    /// Runs stopped at their `max_run_time`.
    pub run_deadline_exceeded: Family<SyncLabel, Counter>,
    pub http_requests: Family<HttpLabels, Counter>,
    /// Batches on the wire now, by destination (every run writing to it).
    pub requests_in_flight: Family<DestinationLabel, Gauge>,
    /// The adaptive limit of batches in flight of the latest run writing to a destination.
    pub concurrency_limit: Family<DestinationLabel, Gauge>,
    /// Time requests waited for a destination's published rate limit.
    pub rate_limit_wait: Family<DestinationLabel, Seconds>,
    /// API usage a destination reports (Salesforce's `Sforce-Limit-Info`: used and limit).
    pub api_usage: Family<UsageLabels, Gauge>,
    /// Events stored, by stream.
    pub events_received: Family<StreamLabel, Counter>,
    /// Requests to a stream's webhook refused (signature, size, not JSON, ...), nothing stored.
    pub events_refused: Family<RefusedLabels, Counter>,
    /// Events a stream holds now.
    pub events_stored: Family<StreamLabel, Gauge>,
    /// How long ago the oldest event a sync over the stream has not read arrived (0: none).
    pub oldest_unread: Family<StreamSyncLabels, Seconds>,
}

fn duration_histogram() -> Histogram {
    // 0.1 s to about 27 minutes.
    Histogram::new(exponential_buckets(0.1, 2.0, 15))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("sluice");
    let m = Metrics {
        registry: Registry::default(),
        runs: Family::default(),
        rows: Family::default(),
        duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
        last_success: Family::default(),
        next_run: Family::default(),
        skipped_ticks: Family::default(),
        run_deadline_exceeded: Family::default(),
        http_requests: Family::default(),
        api_usage: Family::default(),
        requests_in_flight: Family::default(),
        concurrency_limit: Family::default(),
        rate_limit_wait: Family::default(),
        events_received: Family::default(),
        events_refused: Family::default(),
        events_stored: Family::default(),
        oldest_unread: Family::default(),
    };
    registry.register("runs", "Runs by sync and result", m.runs.clone());
    registry.register("rows", "Rows by sync and what happened to them (added, changed, removed, written, rejected)", m.rows.clone());
    registry.register("run_duration_seconds", "Run duration", m.duration.clone());
    registry.register("last_success_timestamp_seconds", "When the sync's last completed run ended (unix time)", m.last_success.clone());
    registry.register("next_run_timestamp_seconds", "When the sync is next scheduled (unix time)", m.next_run.clone());
    registry.register(
        "skipped_ticks",
        "Runs skipped because the sync was running already (here, in another daemon, or by hand)",
        m.skipped_ticks.clone(),
    );
    registry.register("run_deadline_exceeded", "Runs stopped because they went past their max_run_time", m.run_deadline_exceeded.clone());
    registry.register(
        "destination_http_requests",
        "HTTP requests to destinations by answer status (429: rate limited)",
        m.http_requests.clone(),
    );
    registry.register("destination_api_usage", "API calls used and allowed, as the destination reports them", m.api_usage.clone());
    registry.register("destination_requests_in_flight", "Batches on the wire to a destination now", m.requests_in_flight.clone());
    registry.register(
        "destination_concurrency_limit",
        "The adaptive limit of batches in flight of the latest run writing to a destination",
        m.concurrency_limit.clone(),
    );
    registry.register(
        "destination_rate_limit_wait_seconds",
        "Time requests waited for a destination's published rate limit before they were sent",
        m.rate_limit_wait.clone(),
    );
    registry.register("stream_events_received", "Events stored, by stream", m.events_received.clone());
    registry.register(
        "stream_events_refused",
        "Requests to a stream's webhook refused with nothing stored, by reason (signature, too_large, not_json, no_id, unknown_stream)",
        m.events_refused.clone(),
    );
    registry.register(
        "stream_events_stored",
        "Events a stream holds now (pruned past retain once every sync read them)",
        m.events_stored.clone(),
    );
    registry.register(
        "stream_oldest_unread_age_seconds",
        "How long ago the oldest event a sync over the stream has not read yet arrived (0: it read every one)",
        m.oldest_unread.clone(),
    );
    Metrics { registry, ..m }
});

pub fn global() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn record_run(&self, report: &SyncReport) {
        let sync = report.sync.clone();
        let outcome = report.outcome();
        self.runs.get_or_create(&RunLabels { sync: sync.clone(), result: outcome.as_str().into() }).inc();
        let c = &report.counts;
        for (op, n) in
            [("added", c.added), ("changed", c.changed), ("removed", c.removed), ("written", report.written), ("rejected", report.rejected)]
        {
            self.rows.get_or_create(&RowLabels { sync: sync.clone(), op: op.into() }).inc_by(n);
        }
        self.duration.get_or_create(&SyncLabel { sync: sync.clone() }).observe(report.duration_ms as f64 / 1000.0);
        if outcome.got_through() {
            let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            self.last_success.get_or_create(&SyncLabel { sync }).set(now);
        }
    }

    pub fn api_usage(&self, destination: &str, used: u64, limit: u64) {
        for (measure, n) in [("used", used), ("limit", limit)] {
            self.api_usage.get_or_create(&UsageLabels { destination: destination.into(), measure: measure.into() }).set(n as i64);
        }
    }

    /// A batch put on the wire (`1`) or answered (`-1`).
    pub fn in_flight(&self, destination: &str, change: i64) {
        self.requests_in_flight.get_or_create(&DestinationLabel { destination: destination.into() }).inc_by(change);
    }

    pub fn concurrency_limit(&self, destination: &str, limit: usize) {
        self.concurrency_limit.get_or_create(&DestinationLabel { destination: destination.into() }).set(limit as i64);
    }

    pub fn rate_limit_wait(&self, destination: &str, waited: std::time::Duration) {
        if !waited.is_zero() {
            self.rate_limit_wait.get_or_create(&DestinationLabel { destination: destination.into() }).inc_by(waited.as_secs_f64());
        }
    }

    /// One answer from a destination's API (`status` 0: no answer).
    pub fn http(&self, destination: &str, status: u16) {
        self.http_requests.get_or_create(&HttpLabels { destination: destination.into(), status: status.to_string() }).inc();
    }
}
