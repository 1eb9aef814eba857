//! The time series of `GET /api/v1/dashboard/metrics` and the dashboard
//! export: counters summed per bucket from the store's rollups (per
//! minute for 1h and 24h, per hour for 7d and 30d), sampled figures
//! averaged per bucket and combined across nodes, and the figures
//! derived from them, every bucket present.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

use super::figures::{derived, round2};
use crate::protocol::dashboard::{Series, SeriesPoint};
use crate::protocol::metrics::{
    latency_bucket, AcrossNodes, Counter, Derived, Gauge, MetricName, Period, LATENCY_BOUNDS_MS,
};
use crate::protocol::{Scope, TenantId};
use crate::server::storage::metrics::{MetricStore, SeriesQuery, ALL_TENANTS};
use crate::server::storage::StoreError;

fn rfc3339(secs: i64) -> String {
    Utc.timestamp_opt(secs, 0)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The counters a metric is computed from.
fn counters_of(metric: MetricName) -> Vec<Counter> {
    match metric {
        MetricName::Counter(c) => vec![c],
        MetricName::Gauge(_) => vec![],
        MetricName::Derived(d) => match d {
            Derived::MessageFailureRate => vec![Counter::MessagesSent, Counter::MessagesFailed],
            Derived::ErpErrorRate => vec![Counter::ErpCalls, Counter::ErpErrors],
            Derived::ErpLatencyAvg | Derived::ErpLatencyP50 | Derived::ErpLatencyP95 => {
                vec![Counter::ErpLatency]
            }
            Derived::EventsPerSecond => vec![Counter::Events],
            Derived::CallAnswerRate | Derived::CallConversionRate => vec![
                Counter::CallsAnswered,
                Counter::CallsBusy,
                Counter::CallsFailed,
                Counter::CallsConverted,
                Counter::CallsOptOut,
            ],
        },
    }
}

/// One bucket's counters.
#[derive(Default)]
struct Bucket {
    counts: HashMap<Counter, i64>,
    latency: Vec<u64>,
    latency_sum: f64,
}

impl Bucket {
    fn get(&self, c: Counter) -> i64 {
        self.counts.get(&c).copied().unwrap_or(0)
    }

    fn value(&self, metric: MetricName, bucket_seconds: i64) -> f64 {
        match metric {
            MetricName::Counter(c) => self.get(c) as f64,
            MetricName::Gauge(_) => 0.0,
            MetricName::Derived(d) => derived(
                d,
                |c| self.get(c),
                &self.latency,
                self.latency_sum,
                bucket_seconds,
            ),
        }
    }
}

/// The series of `metrics` over `period` ending at `now`, for a scope.
pub async fn series(
    store: &dyn MetricStore,
    tenant: &Scope<TenantId>,
    period: Period,
    metrics: &[MetricName],
    now: DateTime<Utc>,
) -> Result<Series, StoreError> {
    let starts = period.bucket_starts(now.timestamp());
    let size = period.bucket_seconds();
    let from = starts[0];
    let to = starts[starts.len() - 1] + size;
    let mut counters: Vec<Counter> = metrics.iter().flat_map(|m| counters_of(*m)).collect();
    counters.sort();
    counters.dedup();
    let mut buckets: BTreeMap<i64, Bucket> = starts
        .iter()
        .map(|s| {
            (
                *s,
                Bucket {
                    latency: vec![0; LATENCY_BOUNDS_MS.len() + 1],
                    ..Bucket::default()
                },
            )
        })
        .collect();
    if !counters.is_empty() {
        let rows = store
            .counter_series(&SeriesQuery {
                tenant: tenant.clone(),
                counters,
                key: None,
                from,
                to,
                bucket: size,
            })
            .await?;
        for row in rows {
            let Some(bucket) = buckets.get_mut(&row.time) else {
                continue;
            };
            *bucket.counts.entry(row.counter).or_default() += row.count;
            if row.counter == Counter::ErpLatency {
                if let Some(i) = latency_bucket(&row.key) {
                    bucket.latency[i] += row.count.max(0) as u64;
                }
                bucket.latency_sum += row.sum;
            }
        }
    }
    let gauges: Vec<Gauge> = metrics
        .iter()
        .filter_map(|m| match m {
            MetricName::Gauge(g) => Some(*g),
            _ => None,
        })
        .collect();
    // (bucket, gauge) -> the nodes' means.
    let mut sampled: HashMap<(i64, Gauge), Vec<f64>> = HashMap::new();
    if !gauges.is_empty() {
        let of = tenant.only().map_or(ALL_TENANTS, TenantId::as_str);
        for row in store.gauge_series(of, &gauges, from, to, size).await? {
            sampled
                .entry((row.time, row.gauge))
                .or_default()
                .push(row.value);
        }
    }
    let points = buckets
        .iter()
        .map(|(start, bucket)| SeriesPoint {
            timestamp: rfc3339(*start),
            values: metrics
                .iter()
                .map(|m| {
                    let value = match m {
                        MetricName::Gauge(g) => sampled
                            .get(&(*start, *g))
                            .map_or(0.0, |nodes| round2(across(*g, nodes))),
                        other => bucket.value(*other, size),
                    };
                    (m.name().to_string(), value)
                })
                .collect(),
        })
        .collect();
    Ok(Series {
        tenant_id: tenant.only().map(|t| t.as_str().to_string()),
        period,
        bucket_seconds: size,
        from: rfc3339(from),
        to: rfc3339(to),
        metrics: metrics.iter().map(|m| m.name().to_string()).collect(),
        points,
    })
}

fn across(gauge: Gauge, nodes: &[f64]) -> f64 {
    match gauge.across_nodes() {
        AcrossNodes::Sum => nodes.iter().sum(),
        AcrossNodes::Mean => nodes.iter().sum::<f64>() / nodes.len() as f64,
        AcrossNodes::Same => nodes.iter().copied().fold(0.0, f64::max),
    }
}
