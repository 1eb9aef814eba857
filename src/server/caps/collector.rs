//! The caps in `/metrics`: read at scrape time, like the hub's counters.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::{Cap, Caps};
use crate::server::telemetry::collector::gauge;

/// Writes the caps' families on every scrape.
pub struct CapsCollector(pub Arc<Caps>);

impl fmt::Debug for CapsCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapsCollector").finish_non_exhaustive()
    }
}

impl Collector for CapsCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let health = self.0.health();
        gauge(
            &mut e,
            "pytake_connections_admitted",
            "Long-lived connections (WebSocket and SSE) admitted by the caps and open now.",
            None,
            health.connections as i64,
        )?;
        gauge(
            &mut e,
            "pytake_connections_unauthenticated",
            "Admitted connections not yet authenticated, every source address together.",
            None,
            health.unauthenticated as i64,
        )?;
        let mut tenants = e.encode_descriptor(
            "pytake_connections_admitted_by_tenant",
            "Admitted connections authenticated with a tenant's token, by tenant.",
            None,
            MetricType::Gauge,
        )?;
        for (tenant, n) in &health.tenants {
            tenants
                .encode_family(&[("tenant", tenant.as_str())])?
                .encode_gauge(&(*n as i64))?;
        }
        let mut caps = e.encode_descriptor(
            "pytake_connection_cap",
            "The connection caps of this node, by `[gateway]` setting.",
            None,
            MetricType::Gauge,
        )?;
        for (cap, limit) in self.0.limits() {
            caps.encode_family(&[("cap", cap.setting())])?
                .encode_gauge(&(limit as i64))?;
        }
        let mut refused = e.encode_descriptor(
            "pytake_connections_refused",
            "Connections refused (503 at upgrade, or 1013 after Auth) since start, by the cap they hit.",
            None,
            MetricType::Counter,
        )?;
        for cap in Cap::ALL {
            let n = health.refused.get(cap.setting()).copied().unwrap_or(0);
            refused
                .encode_family(&[("cap", cap.setting())])?
                .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
        }
        Ok(())
    }
}
