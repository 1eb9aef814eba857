//! The summary of a load test run. Its JSON form (`--output json`) is a
//! stable schema, `pytake.loadtest/v1`, documented in the README.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::threshold::Verdict;

/// Version of the JSON summary; bumped only on incompatible changes.
pub const SCHEMA: &str = "pytake.loadtest/v1";

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    /// False when the generator itself fell behind its schedule: the numbers
    /// would flatter the server and must not be trusted.
    pub valid: bool,
    pub invalid_reason: Option<String>,
    /// The run was stopped early (a signal): the figures cover the time
    /// until then, and `valid` is false.
    pub interrupted: bool,
    pub config: RunConfig,
    pub connections: ConnectionReport,
    pub events: EventReport,
    pub deliveries: DeliveryReport,
    pub latency_ms: LatencyReport,
    /// Errors by kind (`connect_refused`, `closed_4009`, `publish_http_503`, ...).
    pub errors: BTreeMap<String, u64>,
    pub server_memory: MemoryReport,
    pub generator: GeneratorReport,
    pub thresholds: Vec<Verdict>,
    /// Each target (`--server`, then every `--node`, in that order): what
    /// its connections and publishers did. With one target, its figures
    /// are the run's.
    pub nodes: Vec<NodeReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    pub server: String,
    pub model: String,
    pub connections: usize,
    pub ramp_s: f64,
    pub rate: f64,
    pub duration_s: f64,
    pub rooms: usize,
    pub tenants: usize,
    pub payload_bytes: usize,
    pub publishers: usize,
    /// Targets the connections and publishers were spread over: the
    /// server and every `--node`.
    pub nodes: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ConnectionReport {
    pub established: u64,
    pub failed: u64,
    /// From the first connection attempt to the last subscription confirmed.
    pub time_to_connect_all_s: f64,
    /// Loopback source addresses the connections were spread over.
    pub source_addresses: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct EventReport {
    /// Events the server acknowledged.
    pub published: u64,
    /// Events whose POST failed (not expected to be delivered).
    pub publish_failed: u64,
    /// Events accepted per second during the publish phase.
    pub accepted_per_s: f64,
    /// How long events were published: about `config.duration_s`, less
    /// when interrupted.
    pub published_for_s: f64,
    /// From each batch's intended send time to the server's acknowledgement
    /// (stored and published): the intake's share of delivery latency.
    pub ack_latency_ms: LatencyReport,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DeliveryReport {
    /// Acknowledged events times the subscribers of their room.
    pub expected: u64,
    /// Distinct deliveries received.
    pub received: u64,
    pub lost: u64,
    pub duplicated: u64,
    /// Distinct deliveries per second, from the first publish to the last delivery.
    pub per_second: f64,
}

/// Latency from an event's intended send time to its receipt, in ms.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyReport {
    pub samples: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
    pub mean: f64,
}

impl LatencyReport {
    /// From a histogram recorded in microseconds.
    pub fn from_micros(h: &Histogram<u64>) -> LatencyReport {
        if h.is_empty() {
            return LatencyReport::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        LatencyReport {
            samples: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }

    /// One of the reported percentiles (50, 90, 99, 99.9).
    pub fn percentile(&self, p: f64) -> f64 {
        if p <= 50.0 {
            self.p50
        } else if p <= 90.0 {
            self.p90
        } else if p <= 99.0 {
            self.p99
        } else {
            self.p99_9
        }
    }
}

/// One target's share of the run. Connection `i` was opened on target
/// `i % nodes` and publisher `j` posted to target `j % nodes`; a node's
/// deliveries are those its subscribers were owed and received, wherever
/// the events were posted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeReport {
    pub url: String,
    pub connections: NodeConnections,
    pub events: NodeEvents,
    pub deliveries: DeliveryReport,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeConnections {
    pub established: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeEvents {
    /// Events this node acknowledged.
    pub published: u64,
    /// Events whose POST to this node failed.
    pub publish_failed: u64,
}

/// The servers' resident memory, summed over the nodes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryReport {
    pub rss_before_bytes: Option<u64>,
    pub rss_after_bytes: Option<u64>,
    /// (after - before) / established connections.
    pub per_connection_bytes: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GeneratorReport {
    /// The latest the publisher started a batch after its intended time
    /// while it had room to send: the generator's own lateness.
    pub max_schedule_lag_ms: f64,
    /// Time the publisher waited because the server had not answered
    /// earlier batches yet (counted in latency, not held against validity).
    pub backpressure_ms: f64,
}
