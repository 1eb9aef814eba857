//! Intake's metrics: requests by outcome, the single writer's group
//! commits (size and time), store failures and bus publishes. The totals
//! of events stored come from ingest's own stats (see
//! [`super::collector`]).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// One label, known in advance: a fixed name and a static value.
type Label = [(&'static str, &'static str); 1];

/// What became of one intake request (`POST /api/v1/events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// At least one event was new and is stored.
    Stored,
    /// Every event was a repeat matched by idempotency key.
    Duplicate,
    /// Refused for the caller's fault (4xx): bad body, forbidden, key reused.
    Rejected,
    /// Not stored for the server's fault (5xx): store down, overloaded,
    /// shutting down.
    Failed,
}

impl RequestOutcome {
    const ALL: [RequestOutcome; 4] = [
        RequestOutcome::Stored,
        RequestOutcome::Duplicate,
        RequestOutcome::Rejected,
        RequestOutcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestOutcome::Stored => "stored",
            RequestOutcome::Duplicate => "duplicate",
            RequestOutcome::Rejected => "rejected",
            RequestOutcome::Failed => "failed",
        }
    }
}

/// A store operation that can fail outside a request, counted apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// A group commit of events.
    Append,
    /// The hourly sweep of expired idempotency keys.
    Sweep,
}

/// Intake's metric handles; clones share the values.
#[derive(Debug, Clone)]
pub struct IntakeMetrics {
    /// Indexed like [`RequestOutcome::ALL`].
    requests: [Counter; 4],
    /// Events in each group commit (new and repeated).
    pub batch_events: Histogram,
    /// How long each group commit took in the store.
    pub append_seconds: Histogram,
    store_errors: [Counter; 2],
    /// Events this node published on the bus after storing them.
    pub bus_published: Counter,
    /// Publishes that failed (subscribers caught up from the store).
    pub bus_publish_errors: Counter,
}

impl IntakeMetrics {
    /// Creates and registers every family, with every label set created
    /// now: a scrape shows zeros from the start, and recording is a plain
    /// atomic add.
    pub(super) fn register(registry: &mut Registry) -> IntakeMetrics {
        let requests = Family::<Label, Counter>::default();
        registry.register(
            "pytake_intake_requests",
            "Intake requests (POST /api/v1/events) by outcome: stored, duplicate (every event a repeat by idempotency key), rejected (4xx), failed (5xx)",
            requests.clone(),
        );
        let store_errors = Family::<Label, Counter>::default();
        registry.register(
            "pytake_store_errors",
            "Store operations of the intake writer that failed, by operation",
            store_errors.clone(),
        );
        // 1 to 8192 events: a lone request up to the largest group
        // (MAX_GROUP_EVENTS).
        let batch_events = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "pytake_intake_batch_events",
            "Events stored per group commit of the intake writer (one transaction for every request that arrived meanwhile)",
            batch_events.clone(),
        );
        // 0.25 ms to 4 s: an fsync on a fast disk up to a store in trouble.
        let append_seconds = Histogram::new(exponential_buckets(0.000_25, 2.0, 15));
        registry.register_with_unit(
            "pytake_intake_append_duration",
            "Time the store took to append one group commit",
            Unit::Seconds,
            append_seconds.clone(),
        );
        let bus_published = Counter::default();
        registry.register(
            "pytake_bus_messages_published",
            "Events this node published on the bus after storing them",
            bus_published.clone(),
        );
        let bus_publish_errors = Counter::default();
        registry.register(
            "pytake_bus_publish_errors",
            "Bus publishes that failed after the store committed (subscribers catch up from the store)",
            bus_publish_errors.clone(),
        );
        IntakeMetrics {
            requests: RequestOutcome::ALL
                .map(|outcome| requests.get_or_create_owned(&[("outcome", outcome.as_str())])),
            batch_events,
            append_seconds,
            store_errors: ["append", "sweep"]
                .map(|op| store_errors.get_or_create_owned(&[("operation", op)])),
            bus_published,
            bus_publish_errors,
        }
    }

    /// Counts one intake request.
    pub fn request(&self, outcome: RequestOutcome) {
        self.requests[outcome as usize].inc();
    }

    /// Counts one failed store operation.
    pub fn store_error(&self, op: StoreOp) {
        self.store_errors[op as usize].inc();
    }
}
