//! The sampled figures: this machine's CPU and memory (`sysinfo`), this
//! node's WebSocket connections, and the active conversations. Each node
//! stores its samples every [`SAMPLE_EVERY`] under its own name and reads
//! back every node's, so the figures it shows are the cluster's: the
//! connections of all nodes, the mean of their CPU and memory.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};
use tokio_util::sync::CancellationToken;

use super::aggregator::{Aggregator, ClusterGauges};
use super::figures::round2;
use crate::protocol::metrics::{AcrossNodes, Gauge};
use crate::server::state::AppState;
use crate::server::storage::metrics::{GaugeRow, ALL_TENANTS};

/// How often samples are stored and every node's read back. A node that
/// stops sampling drops out of the figures after [`NODE_GONE`].
pub const SAMPLE_EVERY: Duration = Duration::from_secs(15);

/// How often rollups past their keeping time are removed.
const EXPIRE_EVERY: Duration = Duration::from_secs(600);

/// Samples older than this are not a node's current state.
pub const NODE_GONE: Duration = Duration::from_secs(60);

/// How often CPU and memory are measured (the CPU figure is the usage
/// between two measurements).
const MEASURE_EVERY: Duration = Duration::from_secs(2);

/// This machine's CPU and memory in percent.
pub struct Machine {
    system: System,
}

impl Default for Machine {
    fn default() -> Machine {
        let system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing().with_cpu_usage())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        );
        Machine { system }
    }
}

impl Machine {
    /// Measures again: (CPU percent since the last call, memory percent).
    pub fn measure(&mut self) -> (f64, f64) {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        let cpu = f64::from(self.system.global_cpu_usage());
        let total = self.system.total_memory();
        let memory = if total == 0 {
            0.0
        } else {
            self.system.used_memory() as f64 * 100.0 / total as f64
        };
        (round2(cpu), round2(memory))
    }
}

/// Measures, samples and reads back until shutdown.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let aggregator = state.metrics.clone();
    let mut machine = Machine::default();
    let mut measure = tokio::time::interval(MEASURE_EVERY);
    let mut sample = tokio::time::interval(SAMPLE_EVERY);
    let mut expire = tokio::time::interval(EXPIRE_EVERY);
    let mut last = (0.0, 0.0);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = measure.tick() => {
                last = machine.measure();
                // Until the first read-back, this node's own figures.
                let mut gauges = aggregator.gauges.lock().expect("gauges lock");
                if gauges.system_cpu_usage.is_none() {
                    *gauges = local(last);
                }
            }
            _ = expire.tick() => {
                // Every node sweeps; deleting twice is harmless. Here, not
                // in the aggregator, so a slow delete never holds up
                // counting.
                let now = state.clock.now().timestamp();
                if let Err(e) = state.stores.metrics.expire_metrics(now).await {
                    tracing::warn!(error = %e, "old metric rollups could not be removed; retrying later");
                }
            }
            _ = sample.tick() => {
                if !aggregator.caught_up() {
                    continue;
                }
                match store_and_read(&state, &aggregator, last).await {
                    Ok(gauges) => {
                        failing = false;
                        *aggregator.gauges.lock().expect("gauges lock") = gauges;
                    }
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "metric samples could not be stored or read; showing this node's own");
                        *aggregator.gauges.lock().expect("gauges lock") = local(last);
                    }
                    Err(_) => {}
                }
            }
        }
    }
}

/// This node's figures alone (its connections are counted live).
fn local((cpu, memory): (f64, f64)) -> ClusterGauges {
    ClusterGauges {
        websocket_connections: HashMap::new(),
        system_cpu_usage: Some(cpu),
        system_memory_usage: Some(memory),
    }
}

/// This node's samples for the minute under way.
fn samples(state: &AppState, aggregator: &Aggregator, (cpu, memory): (f64, f64)) -> Vec<GaugeRow> {
    let minute = state.clock.now().timestamp().div_euclid(60) * 60;
    let row = |tenant: &str, gauge: Gauge, node: &str, value: f64| GaugeRow {
        tenant_id: tenant.to_string(),
        gauge,
        time: minute,
        node: node.to_string(),
        value,
    };
    let node = state.node_id.as_str();
    let mut rows = vec![
        row(ALL_TENANTS, Gauge::SystemCpuUsage, node, cpu),
        row(ALL_TENANTS, Gauge::SystemMemoryUsage, node, memory),
        row(
            ALL_TENANTS,
            Gauge::WebsocketConnections,
            node,
            state.hub.stats.connections.load(Ordering::Relaxed) as f64,
        ),
    ];
    for (tenant, n) in state.hub.stats.tenants() {
        rows.push(row(&tenant, Gauge::WebsocketConnections, node, n as f64));
    }
    // Every node counts the same conversations: stored without a node.
    let mut all = 0;
    for (tenant, active) in aggregator.active_conversations() {
        all += active;
        rows.push(row(&tenant, Gauge::ActiveConversations, "", active as f64));
    }
    rows.push(row(ALL_TENANTS, Gauge::ActiveConversations, "", all as f64));
    rows
}

async fn store_and_read(
    state: &AppState,
    aggregator: &Aggregator,
    measured: (f64, f64),
) -> Result<ClusterGauges, crate::server::storage::StoreError> {
    let metrics = &state.stores.metrics;
    metrics
        .record_gauges(&samples(state, aggregator, measured))
        .await?;
    let since = state.clock.now().timestamp() - NODE_GONE.as_secs() as i64;
    let rows = metrics.latest_gauges(since.div_euclid(60) * 60).await?;
    Ok(combine(&rows, &state.node_id))
}

/// Each node's newest sample of each figure, combined across nodes as the
/// figure says ([`Gauge::across_nodes`]); connections are the other
/// nodes' (`this` node's are counted live).
pub fn combine(rows: &[GaugeRow], this: &str) -> ClusterGauges {
    let mut newest: HashMap<(&str, Gauge, &str), (i64, f64)> = HashMap::new();
    for r in rows {
        if r.gauge == Gauge::WebsocketConnections && r.node == this {
            continue;
        }
        let entry = newest
            .entry((r.tenant_id.as_str(), r.gauge, r.node.as_str()))
            .or_insert((r.time, r.value));
        if r.time > entry.0 {
            *entry = (r.time, r.value);
        }
    }
    let mut per: HashMap<(&str, Gauge), Vec<f64>> = HashMap::new();
    for ((tenant, gauge, _), (_, value)) in newest {
        per.entry((tenant, gauge)).or_default().push(value);
    }
    let mut gauges = ClusterGauges::default();
    for ((tenant, gauge), values) in per {
        let value = match gauge.across_nodes() {
            AcrossNodes::Sum => values.iter().sum(),
            AcrossNodes::Mean => values.iter().sum::<f64>() / values.len() as f64,
            AcrossNodes::Same => values[0],
        };
        match (gauge, tenant == ALL_TENANTS) {
            (Gauge::WebsocketConnections, _) => {
                gauges
                    .websocket_connections
                    .insert(tenant.to_string(), value);
            }
            (Gauge::SystemCpuUsage, true) => gauges.system_cpu_usage = Some(round2(value)),
            (Gauge::SystemMemoryUsage, true) => gauges.system_memory_usage = Some(round2(value)),
            _ => {}
        }
    }
    // A tenant whose last connection closed has no sample any more.
    gauges
        .websocket_connections
        .entry(ALL_TENANTS.into())
        .or_insert(0.0);
    gauges
}

/// The node's name in its samples: host, process and a random part, so
/// two nodes on one host (or a restarted one) never share a name.
pub fn node_id() -> String {
    let host = System::host_name().unwrap_or_else(|| "node".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tenant: &str, gauge: Gauge, time: i64, node: &str, value: f64) -> GaugeRow {
        GaugeRow {
            tenant_id: tenant.into(),
            gauge,
            time,
            node: node.into(),
            value,
        }
    }

    #[test]
    fn nodes_combine_by_sum_mean_or_as_one() {
        let rows = vec![
            row("*", Gauge::WebsocketConnections, 60, "a", 10.0),
            row("*", Gauge::WebsocketConnections, 0, "a", 99.0),
            row("*", Gauge::WebsocketConnections, 60, "b", 5.0),
            row("acme", Gauge::WebsocketConnections, 60, "b", 2.0),
            row("*", Gauge::SystemCpuUsage, 60, "a", 10.0),
            row("*", Gauge::SystemCpuUsage, 60, "b", 31.0),
            row("*", Gauge::ActiveConversations, 60, "", 7.0),
        ];
        let g = combine(&rows, "c");
        assert_eq!(g.websocket_connections["*"], 15.0);
        assert_eq!(g.websocket_connections["acme"], 2.0);
        assert_eq!(g.system_cpu_usage, Some(20.5));
        assert_eq!(g.system_memory_usage, None);
        assert_eq!(combine(&[], "c").websocket_connections["*"], 0.0);
        // This node's own connections are left out: they are counted live.
        assert_eq!(combine(&rows, "a").websocket_connections["*"], 5.0);
    }
}
