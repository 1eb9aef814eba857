//! Queue monitoring (seed 002's QueueMonitoring): every push interval the
//! stats are read from the store (the same on every node), kept for
//! `/metrics`, and pushed as a `QueueStats` message to `dashboard`
//! subscribers of each scope when they changed.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::Queue;
use crate::protocol::{Room, Scope, ServerFrame, TenantId};
use crate::server::metrics::push::REFRESH_TICKS;
use crate::server::state::AppState;
use crate::server::storage::jobs::{JobStatus, QueueStats};

/// The stats every tenant's last read, for `/metrics` (which cannot wait
/// on the store while it is scraped).
#[derive(Default)]
pub struct Latest(Mutex<Option<QueueStats>>);

impl Latest {
    pub fn get(&self) -> Option<QueueStats> {
        self.0.lock().expect("queue stats lock").clone()
    }

    fn set(&self, stats: QueueStats) {
        *self.0.lock().expect("queue stats lock") = Some(stats);
    }
}

/// The `QueueStats` message of a scope.
pub fn frame(scope: &Scope<TenantId>, stats: &QueueStats) -> ServerFrame {
    ServerFrame::QueueStats(json!({
        "tenant_id": scope.to_wire(),
        "stats": stats,
    }))
}

/// Reads and pushes the stats until shutdown.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let queue: Arc<Queue> = state.queue.clone();
    let room = Room::checked("dashboard");
    let mut tick = tokio::time::interval(state.metrics.settings.push_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent: HashMap<Scope<TenantId>, (QueueStats, u32)> = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match queue.stats(&Scope::All).await {
            Ok(stats) => state.queue_stats.set(stats),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the queue stats");
                continue;
            }
        }
        let scopes = state.hub.scopes_in(room.as_str());
        sent.retain(|scope, _| scopes.contains(scope));
        for scope in scopes {
            let stats = match scope {
                Scope::All => state.queue_stats.get(),
                Scope::Only(_) => queue.stats(&scope).await.ok(),
            };
            let Some(stats) = stats else { continue };
            if let Some((last, ticks)) = sent.get_mut(&scope) {
                *ticks += 1;
                if *ticks < REFRESH_TICKS && same_counts(last, &stats) {
                    continue;
                }
            }
            state
                .hub
                .deliver_to_scope(&scope, &room, &frame(&scope, &stats));
            sent.insert(scope, (stats, 0));
        }
    }
}

/// Whether only the clock moved (the oldest wait grows by itself).
fn same_counts(a: &QueueStats, b: &QueueStats) -> bool {
    a.depth == b.depth
        && a.dead_by_kind == b.dead_by_kind
        && a.processed_per_second == b.processed_per_second
        && a.error_rate == b.error_rate
}

/// The queue on `/metrics`: the shared stats (the same from every node:
/// aggregate with `max`, not `sum`) and this node's runs (a counter per
/// node: `sum` them).
pub struct QueueCollector {
    pub queue: Arc<Queue>,
    pub latest: Arc<Latest>,
}

impl fmt::Debug for QueueCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueCollector")
    }
}

impl Collector for QueueCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        use crate::server::telemetry::collector::gauge;
        let mut runs = e.encode_descriptor(
            "pytake_queue_runs",
            "Job runs this node finished, by kind and outcome (done, retried, dead, held by an open circuit).",
            None,
            MetricType::Counter,
        )?;
        for ((kind, outcome), n) in self.queue.counters.snapshot() {
            runs.encode_family(&[("kind", kind.as_str()), ("outcome", outcome)])?
                .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
        }
        let mut circuits = e.encode_descriptor(
            "pytake_queue_circuit_open",
            "1 while this node holds a destination's jobs back (circuit open or half-open), by host.",
            None,
            MetricType::Gauge,
        )?;
        for (host, state) in self.queue.breakers.states() {
            let open = i64::from(state != super::breaker::CircuitState::Closed);
            circuits
                .encode_family(&[("host", host.as_str())])?
                .encode_gauge(&open)?;
        }
        let Some(stats) = self.latest.get() else {
            return Ok(());
        };
        let mut depth = e.encode_descriptor(
            "pytake_queue_jobs",
            "Jobs in the queue by status (every node's; the same on each node).",
            None,
            MetricType::Gauge,
        )?;
        for status in JobStatus::ALL {
            let n = stats.depth.get(&status).copied().unwrap_or(0) as i64;
            depth
                .encode_family(&[("status", status.as_str())])?
                .encode_gauge(&n)?;
        }
        let mut dead = e.encode_descriptor(
            "pytake_queue_dead_jobs",
            "Dead jobs (dead letters) by kind.",
            None,
            MetricType::Gauge,
        )?;
        for (kind, n) in &stats.dead_by_kind {
            dead.encode_family(&[("kind", kind.as_str())])?
                .encode_gauge(&(*n as i64))?;
        }
        let mut oldest = e.encode_descriptor(
            "pytake_queue_oldest_pending",
            "How long the longest-waiting due job has waited.",
            Some(&prometheus_client::registry::Unit::Seconds),
            MetricType::Gauge,
        )?;
        oldest.encode_gauge(&stats.oldest_pending_seconds)?;
        let mut rate = e.encode_descriptor(
            "pytake_queue_processed_per_second",
            "Jobs finished done per second over the last 5 minutes, every node's.",
            None,
            MetricType::Gauge,
        )?;
        rate.encode_gauge(&stats.processed_per_second)?;
        gauge(
            &mut e,
            "pytake_queue_error_ratio",
            "Failed runs among finished runs over the last 5 minutes (0 to 1).",
            None,
            stats.error_rate,
        )
    }
}
