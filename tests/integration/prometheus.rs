//! `GET /metrics` against a real server: exact samples after known
//! traffic, route templates instead of raw paths, and `promtool check
//! metrics` on the output (required under `CI=true`).

use std::collections::BTreeSet;
use std::process::Stdio;

use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::support::metrics::{scrape, scrape_until};
use crate::support::services::strict;
use crate::support::{custom, message_sent, repo_root, TestServer, DEADLINE};

/// Pipes `text` through `promtool check metrics`, which fails on format
/// errors and on lint problems (exit 3). Skipped without promtool, unless
/// `CI` is set.
async fn promtool_check(text: &str) {
    let child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if !strict() => {
            let line = format!("skipped: promtool check of /metrics: promtool is not available ({e}); install prometheus, or set CI=true to make this a failure\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
            return;
        }
        Err(e) => panic!("promtool is not available ({e}); CI is set, so this fails instead of skipping (install prometheus)"),
    };
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(text.as_bytes()).await.expect("write");
    drop(stdin);
    let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("promtool timed out")
        .expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {:?}\n{said}",
        out.status
    );
}

#[tokio::test]
async fn metrics_count_exactly_what_happened() {
    let server = TestServer::start().await;
    let op = server.operator("acme");
    // Four stored requests (five events), a duplicate, a rejection.
    server.publish(&op, message_sent("acme", "m1")).await;
    server
        .publish(
            &op,
            json!([message_sent("acme", "m2"), custom("acme", "erp", 1)]),
        )
        .await;
    let keyed = custom("acme", "erp", 2).to_string();
    let (status, _) = server.post(Some(&op), keyed.clone(), Some("k1")).await;
    assert_eq!(status, 201);
    let (status, _) = server.post(Some(&op), keyed, Some("k1")).await;
    assert_eq!(status, 200, "the repeat");
    let (status, _) = server.post(Some(&op), "not json", None).await;
    assert_eq!(status, 400);

    // A subscriber of acme's dashboard room gets the fifth event.
    let mut ws = server.ws(&format!("/ws/dashboard?token={op}")).await;
    ws.welcome().await;
    server.wait_for_subscribers(1).await;
    server.publish(&op, message_sent("acme", "m3")).await;
    assert_eq!(ws.event().await.id, 5);

    let scrape = scrape_until(&server, "pytake_bus_messages_received_total", 5.0).await;
    for (series, value) in [
        ("pytake_intake_events_accepted_total", 5.0),
        (r#"pytake_intake_requests_total{outcome="stored"}"#, 4.0),
        (r#"pytake_intake_requests_total{outcome="duplicate"}"#, 1.0),
        (r#"pytake_intake_requests_total{outcome="rejected"}"#, 1.0),
        (r#"pytake_intake_requests_total{outcome="failed"}"#, 0.0),
        ("pytake_intake_batch_events_sum", 6.0),
        ("pytake_bus_messages_published_total", 5.0),
        (r#"pytake_bus_up{kind="memory"}"#, 1.0),
        ("pytake_ws_connections", 1.0),
        ("pytake_ws_connections_authenticated", 1.0),
        ("pytake_ws_connections_opened_total", 1.0),
        ("pytake_ws_events_delivered_total", 1.0),
        ("pytake_ws_rooms", 1.0),
        (
            r#"pytake_http_request_duration_seconds_count{method="POST",route="/api/v1/events",status="2xx"}"#,
            5.0,
        ),
        (
            r#"pytake_http_request_duration_seconds_count{method="POST",route="/api/v1/events",status="4xx"}"#,
            1.0,
        ),
        (
            r#"pytake_http_request_duration_seconds_count{method="GET",route="/ws/{room}",status="1xx"}"#,
            1.0,
        ),
    ] {
        assert_eq!(scrape.get(series), value, "{series}");
    }
    // Welcome and the event at least; the bytes include their framing.
    assert!(scrape.get("pytake_ws_frames_sent_total") >= 2.0);
    assert!(scrape.get("pytake_ws_sent_bytes_total") > 100.0);
    assert!(scrape.get("pytake_process_resident_memory_bytes") > 0.0);
    for label in scrape.labels() {
        assert!(
            !label.contains("/ws/dashboard") && !label.contains("token="),
            "a raw path in a label: {label}"
        );
    }
    promtool_check(&scrape.text).await;
    assert_eq!(
        readme_families(),
        scrape.families(),
        "README's Prometheus table against a scrape"
    );

    // The client goes away without a Close: counted as lost, gauges back
    // to zero.
    drop(ws);
    let scrape = scrape_until(&server, "pytake_ws_connections", 0.0).await;
    let ended = |reason: &str| {
        scrape.get(&format!(
            r#"pytake_ws_connections_closed_total{{code="none",reason="{reason}"}}"#
        ))
    };
    assert_eq!(ended("connection_lost") + ended("client_closed"), 1.0);
    assert_eq!(scrape.get("pytake_ws_connections_authenticated"), 0.0);
    assert_eq!(scrape.get("pytake_ws_rooms"), 0.0);
    promtool_check(&scrape.text).await;
}

/// Operators scrape like they probe `/health`: no token.
#[tokio::test]
async fn metrics_need_no_token_and_refuse_other_methods() {
    let server = TestServer::start().await;
    let scrape = scrape(&server).await;
    assert_eq!(
        scrape.get(&format!(
            r#"pytake_build_info{{version="{}",revision="{}"}}"#,
            pytake::build_info::VERSION,
            pytake::build_info::REVISION
        )),
        1.0
    );
    let response = reqwest::Client::new()
        .post(format!("{}/metrics", server.url))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 405);
}

/// The metric names in the first column of the README's Prometheus table.
fn readme_families() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let section = readme
        .split("\n## Prometheus\n")
        .nth(1)
        .expect("a Prometheus section")
        .split("\n## ")
        .next()
        .unwrap();
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `pytake_"))
        .map(|l| format!("pytake_{}", l.split('`').next().unwrap()))
        .collect()
}
