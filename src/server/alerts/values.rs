//! What a rule's condition measures now, per tenant: read from the live
//! figures (the same on every node), the nodes' gauges, the queue and the
//! campaigns. A tenant without data has no value (`None`), which never
//! breaches and clears a firing alert: no traffic is no failure.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::protocol::alerts::{parse_metric, AlertRule, Condition};
use crate::protocol::metrics::{Counter, Derived, Gauge, MetricName};
use crate::protocol::{Scope, TenantId};
use crate::server::metrics::aggregator::Aggregator;
use crate::server::metrics::campaign;
use crate::server::metrics::figures::{derived, Counts};
use crate::server::storage::jobs::JobStatus;
use crate::server::storage::{AlertStore, StoreError, Stores};

/// Most campaigns read per evaluation for `CampaignHealth`.
const CAMPAIGNS: u32 = 500;

/// Where values come from.
pub struct Sources {
    pub metrics: Arc<Aggregator>,
    pub stores: Stores,
    pub alerts: Arc<dyn AlertStore>,
    /// The tenant machine-wide rules are recorded under.
    pub system_tenant: String,
}

/// The value of `rule` for each tenant it covers at `now`. `tenants`
/// adds tenants the rule must be evaluated for even without figures (its
/// alerts still pending or firing), so they can clear.
pub async fn measure(
    sources: &Sources,
    rule: &AlertRule,
    tenants: &[String],
    now: DateTime<Utc>,
) -> Result<BTreeMap<String, Option<f64>>, StoreError> {
    if rule.is_system() {
        let value = value_for(sources, rule, None, now).await?;
        return Ok(BTreeMap::from([(sources.system_tenant.clone(), value)]));
    }
    let mut covered: Vec<String> = match &rule.tenant_id {
        Some(t) => vec![t.clone()],
        None => sources.metrics.tenants(),
    };
    if rule.tenant_id.is_none() {
        covered.extend(tenants.iter().cloned());
        covered.sort();
        covered.dedup();
    }
    let mut values = BTreeMap::new();
    for tenant in covered {
        let value = value_for(sources, rule, Some(&tenant), now).await?;
        values.insert(tenant, value);
    }
    Ok(values)
}

async fn value_for(
    sources: &Sources,
    rule: &AlertRule,
    tenant: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<f64>, StoreError> {
    // The window's whole minutes before this one, and this one so far: a
    // `1m` rule evaluated just after a minute turned still sees the last
    // minute (the live figures keep an hour of minutes at most).
    let counts = || {
        sources
            .metrics
            .recent(tenant, rule.window + Duration::from_secs(60))
    };
    let scope = || match tenant {
        Some(t) => Scope::Only(TenantId::checked(t)),
        None => Scope::All,
    };
    let metric = rule.metric.as_deref().unwrap_or_default();
    Ok(match rule.condition {
        Condition::MessageFailureRate => rate(
            &counts(),
            Derived::MessageFailureRate,
            rule.window.as_secs(),
        ),
        Condition::ErpErrorRate => rate(&counts(), Derived::ErpErrorRate, rule.window.as_secs()),
        Condition::ErpLatency => {
            let d = match metric {
                "p50" => Derived::ErpLatencyP50,
                "avg" => Derived::ErpLatencyAvg,
                _ => Derived::ErpLatencyP95,
            };
            rate(&counts(), d, rule.window.as_secs())
        }
        Condition::AiTokenUsage => Some(counts().get(Counter::AiTokens) as f64),
        Condition::SystemResourceUsage => {
            let gauges = sources.metrics.gauges();
            match metric {
                "memory" => gauges.system_memory_usage,
                _ => gauges.system_cpu_usage,
            }
        }
        Condition::QueueDepth | Condition::DeadLetters => {
            let stats = sources.stores.jobs.queue_stats(&scope(), now).await?;
            let depth = |s| stats.depth.get(&s).copied().unwrap_or(0);
            Some(if rule.condition == Condition::DeadLetters {
                depth(JobStatus::Dead)
            } else {
                depth(JobStatus::Pending) + depth(JobStatus::Retrying)
            } as f64)
        }
        Condition::WebsocketConnections => {
            Some(sources.metrics.kpis(&scope()).websocket_connections as f64)
        }
        Condition::CampaignHealth => {
            let rows = sources
                .stores
                .metrics
                .campaigns(&scope(), CAMPAIGNS)
                .await?;
            rows.iter()
                .filter(|row| row.status == "running")
                .map(|row| campaign::metrics(row, now).health_score)
                .min()
                .map(|score| score as f64)
        }
        Condition::Metric => match parse_metric(metric) {
            Some(MetricName::Counter(c)) => Some(counts().get(c) as f64),
            Some(MetricName::Derived(d)) => rate(&counts(), d, rule.window.as_secs()),
            Some(MetricName::Gauge(g)) => gauge(sources, g, &scope()),
            None => None,
        },
    })
}

/// A derived figure, or none when what it divides by is empty (a
/// failure rate of no messages is not 0 %, it is unknown).
fn rate(counts: &Counts, d: Derived, seconds: u64) -> Option<f64> {
    let basis: i64 = match d {
        Derived::MessageFailureRate => {
            counts.get(Counter::MessagesSent) + counts.get(Counter::MessagesFailed)
        }
        Derived::ErpErrorRate => counts.get(Counter::ErpCalls),
        Derived::ErpLatencyAvg | Derived::ErpLatencyP50 | Derived::ErpLatencyP95 => {
            counts.latency.iter().sum::<u64>() as i64
        }
        Derived::EventsPerSecond => 1,
        Derived::CallAnswerRate | Derived::CallConversionRate => [
            Counter::CallsAnswered,
            Counter::CallsBusy,
            Counter::CallsFailed,
            Counter::CallsConverted,
            Counter::CallsOptOut,
        ]
        .iter()
        .map(|c| counts.get(*c))
        .sum(),
    };
    (basis > 0).then(|| {
        derived(
            d,
            |c| counts.get(c),
            &counts.latency,
            counts.latency_sum_ms,
            seconds as i64,
        )
    })
}

fn gauge(sources: &Sources, g: Gauge, scope: &Scope<TenantId>) -> Option<f64> {
    let kpis = sources.metrics.kpis(scope);
    match g {
        Gauge::ActiveConversations => Some(kpis.active_conversations as f64),
        Gauge::WebsocketConnections => Some(kpis.websocket_connections as f64),
        Gauge::SystemCpuUsage => sources.metrics.gauges().system_cpu_usage,
        Gauge::SystemMemoryUsage => sources.metrics.gauges().system_memory_usage,
    }
}
