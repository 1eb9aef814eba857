//! The text a scrape returns, parsed back: exact samples, bounded labels.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use tower::ServiceExt;

use super::collector::ServerCollector;
use super::http::{status_class, track};
use super::*;
use crate::server::bus::MemoryBus;
use crate::server::gateway::hub::Hub;
use crate::server::gateway::stats::{close_kind, CLIENT_CLOSED};
use crate::server::ingest::IntakeStats;

/// The value of the one sample whose name and labels are exactly `series`
/// (`name{a="b"}` as the encoder writes it, labels in its order).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().expect("a number"))
        .next()
}

fn server_telemetry() -> (Telemetry, Arc<Hub>) {
    let telemetry = Telemetry::new();
    let hub = Hub::new(0);
    telemetry.register_collector(Box::new(ServerCollector {
        hub: hub.clone(),
        intake: Arc::new(IntakeStats::new()),
        bus: Arc::new(MemoryBus::new(16)),
        started: (SystemTime::now(), Instant::now()),
    }));
    (telemetry, hub)
}

#[test]
fn the_collector_reads_the_hubs_atomics_at_scrape_time() {
    let (telemetry, hub) = server_telemetry();
    let stats = &hub.stats;
    stats.connections.store(3, Ordering::Relaxed);
    stats.authenticated.store(2, Ordering::Relaxed);
    stats.opened.store(7, Ordering::Relaxed);
    stats.delivered.store(10, Ordering::Relaxed);
    stats.replies.store(5, Ordering::Relaxed);
    stats.bytes_sent.store(1234, Ordering::Relaxed);
    stats.closed(close_kind(crate::protocol::close::SLOW_CONSUMER));
    stats.closed(CLIENT_CLOSED);
    stats.closed(CLIENT_CLOSED);
    let text = telemetry.encode().unwrap();
    for (series, value) in [
        ("pytake_ws_connections", 3.0),
        ("pytake_ws_connections_authenticated", 2.0),
        ("pytake_ws_connections_opened_total", 7.0),
        ("pytake_ws_frames_sent_total", 15.0),
        ("pytake_ws_events_delivered_total", 10.0),
        ("pytake_ws_sent_bytes_total", 1234.0),
        (
            r#"pytake_ws_connections_closed_total{code="4009",reason="slow_consumer"}"#,
            1.0,
        ),
        (
            r#"pytake_ws_connections_closed_total{code="none",reason="client_closed"}"#,
            2.0,
        ),
        (
            r#"pytake_ws_connections_closed_total{code="1001",reason="going_away"}"#,
            0.0,
        ),
        (r#"pytake_bus_up{kind="memory"}"#, 1.0),
        ("pytake_intake_events_accepted_total", 0.0),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    let build = format!(
        r#"pytake_build_info{{version="{}",revision="{}"}}"#,
        crate::build_info::VERSION,
        crate::build_info::REVISION
    );
    assert_eq!(sample(&text, &build), Some(1.0));
    assert!(sample(&text, "pytake_process_resident_memory_bytes").unwrap() > 0.0);
}

#[test]
fn every_family_has_help_and_type_and_counters_end_in_total_once() {
    let (telemetry, _hub) = server_telemetry();
    let text = telemetry.encode().unwrap();
    let types: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split_once(' ').unwrap())
        .collect();
    assert!(types.len() > 20, "{text}");
    for (name, kind) in &types {
        assert!(name.starts_with("pytake_"), "{name}");
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no help"
        );
        assert_eq!(
            kind.ends_with("counter"),
            name.ends_with("_total"),
            "{name}"
        );
        assert!(!name.ends_with("_total_total"), "{name}");
    }
    let mut names: Vec<_> = types.iter().map(|(n, _)| n).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), types.len(), "a family written twice");
}

#[test]
fn intake_outcomes_and_store_errors_count_under_their_own_label() {
    let telemetry = Telemetry::new();
    telemetry.intake.request(RequestOutcome::Stored);
    telemetry.intake.request(RequestOutcome::Stored);
    telemetry.intake.request(RequestOutcome::Rejected);
    telemetry.intake.store_error(intake::StoreOp::Sweep);
    telemetry.intake.batch_events.observe(3.0);
    let text = telemetry.encode().unwrap();
    for (series, value) in [
        (r#"pytake_intake_requests_total{outcome="stored"}"#, 2.0),
        (r#"pytake_intake_requests_total{outcome="duplicate"}"#, 0.0),
        (r#"pytake_intake_requests_total{outcome="rejected"}"#, 1.0),
        (r#"pytake_intake_requests_total{outcome="failed"}"#, 0.0),
        (r#"pytake_store_errors_total{operation="sweep"}"#, 1.0),
        (r#"pytake_store_errors_total{operation="append"}"#, 0.0),
        (r#"pytake_intake_batch_events_bucket{le="2"}"#, 0.0),
        (r#"pytake_intake_batch_events_bucket{le="4"}"#, 1.0),
        ("pytake_intake_batch_events_count", 1.0),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
}

/// What the aggregator will do: families of its own, per tenant, written
/// on each scrape from whatever it holds then.
#[test]
fn a_custom_collector_writes_its_families_on_every_scrape() {
    #[derive(Debug)]
    struct PerTenant(std::sync::Mutex<Vec<(&'static str, u64)>>);
    impl Collector for PerTenant {
        fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
            let mut family = encoder.encode_descriptor(
                "pytake_messages_sent",
                "Messages sent, by tenant.",
                None,
                MetricType::Counter,
            )?;
            for (tenant, n) in self.0.lock().unwrap().iter() {
                family
                    .encode_family(&[("tenant", *tenant)])?
                    .encode_counter::<NoLabelSet, _, u64>(n, None)?;
            }
            Ok(())
        }
    }
    let telemetry = Telemetry::new();
    let counts = Arc::new(PerTenant(std::sync::Mutex::new(vec![("acme", 4)])));
    telemetry.register_collector(Box::new(counts.clone()));
    let series = r#"pytake_messages_sent_total{tenant="acme"}"#;
    assert_eq!(sample(&telemetry.encode().unwrap(), series), Some(4.0));
    counts.0.lock().unwrap().push(("globex", 1));
    let text = telemetry.encode().unwrap();
    assert_eq!(
        sample(&text, r#"pytake_messages_sent_total{tenant="globex"}"#),
        Some(1.0)
    );
}

/// Requests are labelled by the route template, never the raw path: a
/// path with an id, or one no route matches, adds no series of its own.
#[tokio::test]
async fn requests_are_labelled_by_route_template_and_status_class() {
    let telemetry = Telemetry::new();
    let app = Router::new()
        .route("/items/{id}", get(|| async { "item" }))
        .layer(axum::middleware::from_fn_with_state(
            telemetry.http.clone(),
            track,
        ));
    for uri in ["/items/42", "/items/43", "/no/such/path-77"] {
        let request = Request::get(uri).body(Body::empty()).unwrap();
        app.clone().oneshot(request).await.unwrap();
    }
    let text = telemetry.encode().unwrap();
    let count = |labels: &str| {
        sample(
            &text,
            &format!("pytake_http_request_duration_seconds_count{{{labels}}}"),
        )
    };
    assert_eq!(
        count(r#"method="GET",route="/items/{id}",status="2xx""#),
        Some(2.0)
    );
    assert_eq!(
        count(r#"method="GET",route="unmatched",status="4xx""#),
        Some(1.0)
    );
    let labels: Vec<&str> = text
        .lines()
        .filter_map(|l| Some(l.split_once('{')?.1.split_once('}')?.0))
        .collect();
    for raw in ["/items/42", "/items/43", "/no/such/path-77"] {
        assert!(
            !labels.iter().any(|l| l.contains(raw)),
            "raw path `{raw}` in a label:\n{text}"
        );
    }
}

#[test]
fn status_classes() {
    assert_eq!(status_class(StatusCode::SWITCHING_PROTOCOLS), "1xx");
    assert_eq!(status_class(StatusCode::NO_CONTENT), "2xx");
    assert_eq!(status_class(StatusCode::TOO_MANY_REQUESTS), "4xx");
    assert_eq!(status_class(StatusCode::SERVICE_UNAVAILABLE), "5xx");
}
