//! `GET /metrics`: the server's state in the Prometheus text format
//! (version 0.0.4), encoded by the `prometheus-client` crate.
//!
//! Two kinds of metric live here. What already exists as an atomic
//! elsewhere (the hub's connection and frame counters, intake totals, the
//! bus state, the process's memory) is read at scrape time by a
//! [`Collector`] ([`collector::ServerCollector`]): the hot paths keep
//! bumping their own atomics and pay nothing more. What is new and needs a
//! distribution (request and append latencies, group-commit sizes) is a
//! `prometheus-client` metric created once, with its labels, and kept as a
//! handle by the code that records it ([`HttpMetrics`], [`IntakeMetrics`]):
//! recording never allocates and never looks a label set up.
//!
//! # Adding metrics from another part
//!
//! [`Telemetry`] sits in `AppState::telemetry`; register at start, while
//! the part is built, never per request:
//!
//! ```
//! use prometheus_client::metrics::counter::Counter;
//! use prometheus_client::metrics::family::Family;
//! # let telemetry = pytake::server::telemetry::Telemetry::new();
//! // A metric kept as a handle: the name without `_total`, which the
//! // encoder adds to counters (it panics on a doubled suffix in debug
//! // builds). Clone the handle into the part; clones share the value.
//! let jobs: Family<[(&'static str, &'static str); 1], Counter> = Family::default();
//! telemetry.register("pytake_queue_jobs_finished", "Jobs finished, by outcome", jobs.clone());
//! let done = jobs.get_or_create_owned(&[("outcome", "done")]); // once, kept
//! done.inc();
//! ```
//!
//! A part that already keeps its figures (the aggregator's per-tenant
//! business counters, say `pytake_messages_sent_total{tenant="acme"}`)
//! registers a [`Collector`] instead, with
//! [`Telemetry::register_collector`]: its `encode` runs on every scrape and
//! writes whatever families it has then, so tenants that appear later show
//! up without registering anything. [`collector::ServerCollector`] is the
//! example to follow; [`collector::counter`] and [`collector::gauge`] write
//! one unlabelled sample. Names follow Prometheus conventions: `pytake_`
//! first, base units (`_seconds`, `_bytes`), counters ending in `_total`
//! (added by the encoder), and labels with a bounded set of values (a
//! tenant is fine; an event id or a raw URL path is not). CI checks the
//! output with `promtool check metrics`.

pub mod collector;
pub mod http;
pub mod intake;

#[cfg(test)]
mod tests;

use std::sync::Mutex;
use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::{Metric, Registry, Unit};

pub use http::HttpMetrics;
pub use intake::{IntakeMetrics, RequestOutcome};

/// The `Content-Type` of what [`Telemetry::encode`] writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Every metric of the server, and the handles the hot paths record with.
pub struct Telemetry {
    /// Locked only to register (at start) and to encode (per scrape).
    registry: Mutex<Registry>,
    pub http: HttpMetrics,
    pub intake: IntakeMetrics,
    /// Wall-clock start, for `pytake_process_start_time_seconds`.
    pub started: SystemTime,
}

impl Default for Telemetry {
    fn default() -> Telemetry {
        Telemetry::new()
    }
}

impl Telemetry {
    /// A registry with the HTTP and intake metrics; the server adds its
    /// [`collector::ServerCollector`] once the hub and bus exist.
    pub fn new() -> Telemetry {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let intake = IntakeMetrics::register(&mut registry);
        Telemetry {
            registry: Mutex::new(registry),
            http,
            intake,
            started: SystemTime::now(),
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // Registration either happened whole or not at all: a panic
        // elsewhere while holding the lock leaves nothing half-written.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a metric the caller keeps a handle to. `help` gets its
    /// full stop from the encoder.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry().register(name, help, metric);
    }

    /// [`Self::register`] with a unit, which the encoder appends to the
    /// name (`pytake_x` with [`Unit::Seconds`] is `pytake_x_seconds`).
    pub fn register_with_unit(&self, name: &str, help: &str, unit: Unit, metric: impl Metric) {
        self.registry().register_with_unit(name, help, unit, metric);
    }

    /// Registers a collector that writes its families on every scrape.
    pub fn register_collector(&self, collector: Box<dyn Collector>) {
        self.registry().register_collector(collector);
    }

    /// Everything registered, in the Prometheus text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(16 * 1024);
        prometheus_text::encode(&mut text, &self.registry())?;
        Ok(text)
    }
}
