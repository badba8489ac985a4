//! Prometheus metrics. Counters and histograms are per process; queue depth is read from the
//! database at scrape time, so every process reports the same shared queue.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// `type`, `result` of a webhook delivery.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// Event type (`cart.updated`, …, or `unknown` when unreadable).
    pub r#type: String,
    /// accepted | duplicate | unauthorized | invalid | too_large | unknown_shop | error
    pub result: String,
}

/// `channel`, `outcome` of a send attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SendLabels {
    /// email | sms
    pub channel: String,
    /// sent | skipped | failed | retry | unconfirmed
    pub outcome: String,
}

/// `channel`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    /// email | sms
    pub channel: String,
}

/// `state` of queue jobs.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// pending | running | done | failed | killed
    pub state: String,
}

fn lateness_histogram() -> Histogram {
    Histogram::new([0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0])
}

fn latency_histogram() -> Histogram {
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
}

/// All metrics of this process.
pub struct Metrics {
    registry: Registry,
    /// Webhook deliveries by type and result.
    pub events: Family<EventLabels, Counter>,
    /// Send attempts by channel and outcome.
    pub sends: Family<SendLabels, Counter>,
    /// Seconds between a message's due time and its delivery.
    pub lateness: Histogram,
    /// Seconds a provider (SMTP relay, outbox, SMS API) took.
    pub provider_latency: Family<ChannelLabels, Histogram>,
    /// Queue jobs by state (set at scrape).
    pub jobs: Family<StateLabels, Gauge>,
    /// 1 while the primary SMTP relay is skipped (circuit open), set at scrape.
    pub smtp_circuit_open: Gauge,
    /// Events per group commit.
    pub ingest_batch: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cartback");
        let events = Family::<EventLabels, Counter>::default();
        let sends = Family::<SendLabels, Counter>::default();
        let lateness = lateness_histogram();
        let provider_latency =
            Family::<ChannelLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let jobs = Family::<StateLabels, Gauge>::default();
        registry.register("events_received", "Webhook deliveries by type and result", events.clone());
        registry.register("sends", "Send attempts by channel and outcome", sends.clone());
        registry.register("send_lateness_seconds", "Delivery time minus due time", lateness.clone());
        registry.register(
            "provider_latency_seconds",
            "Time a provider took to accept a message",
            provider_latency.clone(),
        );
        registry.register("jobs", "Queue jobs by state", jobs.clone());
        let smtp_circuit_open = Gauge::default();
        registry.register(
            "smtp_circuit_open",
            "1 while the primary SMTP relay is skipped after repeated failures",
            smtp_circuit_open.clone(),
        );
        let ingest_batch = Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]);
        registry.register(
            "ingest_batch_events",
            "Events committed together in one transaction (group commit)",
            ingest_batch.clone(),
        );
        Self { registry, events, sends, lateness, provider_latency, jobs, smtp_circuit_open, ingest_batch }
    }
}

impl Metrics {
    /// Count a webhook delivery.
    pub fn event(&self, kind: &str, result: &str) {
        self.events.get_or_create(&EventLabels { r#type: kind.to_owned(), result: result.to_owned() }).inc();
    }
    /// Count a send attempt.
    pub fn send(&self, channel: &str, outcome: &str) {
        self.sends.get_or_create(&SendLabels { channel: channel.to_owned(), outcome: outcome.to_owned() }).inc();
    }
    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
