//! How a finished run becomes its report: deliveries, latencies and
//! rates from the connections' outcomes, overall and per node.

use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) fn build_report(
    cfg: &LoadConfig,
    shared: &Shared,
    outcomes: &[subscriber::Outcome],
    schedule: publisher::Schedule,
    connect_all: Duration,
    source_addresses: usize,
    rss_before: u64,
    rss_after: Option<u64>,
) -> Report {
    let last_delivery = Duration::from_micros(shared.last_delivery_us.load(Ordering::Relaxed));
    // From the first publish to the last delivery.
    let window = last_delivery
        .saturating_sub(schedule.started_at)
        .as_secs_f64();
    // The deliveries of the connections `of` picks.
    let deliveries = |of: &dyn Fn(&subscriber::Outcome) -> bool| {
        let mut d = DeliveryReport::default();
        for o in outcomes.iter().filter(|o| o.subscribed && of(o)) {
            let acked = shared.acked[o.group].load(Ordering::Relaxed);
            d.expected += acked;
            d.received += o.received.min(acked);
            d.duplicated += o.duplicated;
        }
        d.lost = d.expected.saturating_sub(d.received);
        d.per_second = if window > 0.0 {
            d.received as f64 / window
        } else {
            0.0
        };
        d
    };
    let nodes: Vec<NodeReport> = cfg
        .targets()
        .iter()
        .zip(&shared.nodes)
        .enumerate()
        .map(|(i, (target, n))| NodeReport {
            url: target.to_string(),
            connections: NodeConnections {
                established: n.connected.load(Ordering::Relaxed),
                failed: n.failed.load(Ordering::Relaxed),
            },
            events: NodeEvents {
                published: n.published.load(Ordering::Relaxed),
                publish_failed: n.publish_failed.load(Ordering::Relaxed),
            },
            deliveries: deliveries(&|o| o.node == i),
        })
        .collect();
    let established = shared.connected.load(Ordering::Relaxed);
    let published = shared.published.load(Ordering::Relaxed);
    let per_connection = rss_after
        .filter(|_| established > 0)
        .map(|after| (after as f64 - rss_before as f64) / established as f64);
    let lag = schedule.max_lag;
    let interrupted = shared.interrupted.is_cancelled();
    let invalid_reason = if interrupted {
        Some(format!(
            "interrupted after {:.1}s of {}",
            schedule.published_for.as_secs_f64(),
            crate::config::duration::format(cfg.duration)
        ))
    } else {
        (lag > MAX_SCHEDULE_LAG).then(|| {
            format!(
                "the generator fell behind its own schedule by {:.0} ms (limit {} ms): it is short of CPU, so latency and throughput figures are not trustworthy",
                lag.as_secs_f64() * 1000.0,
                MAX_SCHEDULE_LAG.as_millis()
            )
        })
    };
    Report {
        schema: SCHEMA,
        valid: invalid_reason.is_none(),
        invalid_reason,
        interrupted,
        config: RunConfig {
            server: cfg.server.to_string(),
            model: match cfg.model {
                Model::Closed => "closed".into(),
                Model::Open { per_second } => format!("open ({per_second}/s)"),
            },
            connections: cfg.connections,
            ramp_s: cfg.ramp.as_secs_f64(),
            rate: cfg.rate,
            duration_s: cfg.duration.as_secs_f64(),
            rooms: cfg.rooms,
            tenants: cfg.tenants,
            payload_bytes: cfg.payload_bytes,
            publishers: cfg.publishers,
            nodes: nodes.len(),
        },
        connections: ConnectionReport {
            established,
            failed: shared.failed.load(Ordering::Relaxed),
            time_to_connect_all_s: connect_all.as_secs_f64(),
            source_addresses,
        },
        events: EventReport {
            published,
            publish_failed: shared.publish_failed.load(Ordering::Relaxed),
            accepted_per_s: if schedule.elapsed.is_zero() {
                0.0
            } else {
                published as f64 / schedule.elapsed.as_secs_f64()
            },
            published_for_s: schedule.published_for.as_secs_f64(),
            ack_latency_ms: LatencyReport::from_micros(&shared.acks.lock().expect("acks lock")),
        },
        deliveries: deliveries(&|_| true),
        latency_ms: LatencyReport::from_micros(&shared.latency()),
        errors: shared.errors.lock().expect("errors lock").clone(),
        server_memory: MemoryReport {
            rss_before_bytes: Some(rss_before),
            rss_after_bytes: rss_after,
            per_connection_bytes: per_connection,
        },
        generator: GeneratorReport {
            max_schedule_lag_ms: lag.as_secs_f64() * 1000.0,
            backpressure_ms: schedule.backpressure.as_secs_f64() * 1000.0,
        },
        thresholds: Vec::new(),
        nodes,
    }
}
