//! The queue's benchmarks, for BENCHMARKS.md rather than a gate: each
//! prints one JSON line of figures. Run them by name, in release, against
//! real server processes (`bench/queue.sh` runs them all and keeps the
//! output):
//!
//! `cargo test --release --test integration queue_bench -- --ignored --nocapture --test-threads 1`

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use pytake::protocol::ServerFrame;
use pytake::server::storage::jobs::NewJob;
use pytake::server::storage::{self, StoreOptions};
use serde_json::json;

use crate::support::services::Postgres;
use crate::support::{rooms, Options, TestServer};

/// No-op jobs enqueued before the workers start.
const JOBS: usize = 30_000;

fn noop(n: usize) -> NewJob {
    NewJob {
        queue: "default".into(),
        kind: "noop".into(),
        payload: json!({"n": n}),
        priority: 0,
        run_at: chrono::Utc::now(),
        max_attempts: 3,
        correlation_id: None,
        tenant_id: None,
    }
}

async fn fill(url: &str) {
    let stores = storage::open(url, &StoreOptions::default())
        .await
        .expect("open");
    for chunk in (0..JOBS).collect::<Vec<_>>().chunks(5_000) {
        let jobs = chunk.iter().map(|n| noop(*n)).collect();
        stores
            .jobs
            .enqueue(jobs, chrono::Utc::now())
            .await
            .expect("enqueue");
    }
    stores.events.close().await;
}

async fn done(server: &TestServer) -> u64 {
    let (_, stats) = server
        .get(Some(&server.admin()), "/api/v1/queue/stats")
        .await;
    stats["depth"]["done"].as_u64().unwrap_or(0)
}

/// Waits until every job is done; the seconds it took from `start`.
async fn drain(server: &TestServer, start: Instant) -> f64 {
    let deadline = start + Duration::from_secs(600);
    while done(server).await < JOBS as u64 {
        assert!(Instant::now() < deadline, "not drained in 10 min");
        // Each poll counts every job by status: rarely, so the server's
        // cores work on the queue, not on the benchmark's questions.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    start.elapsed().as_secs_f64()
}

/// Jobs per second with the no-op handler on one SQLite node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it by name with --ignored --nocapture"]
async fn queue_bench_noop_jobs_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/pytake.db", dir.path().display());
    fill(&url).await;
    let extra: Vec<String> = std::env::var("PYTAKE_BENCH_QUEUE_ARGS")
        .map(|a| a.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let mut args = vec!["--store".to_string(), url];
    args.extend(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = TestServer::start_with(Options::args(&args)).await;
    let start = Instant::now();
    let secs = drain(&server, start).await;
    println!(
        "{}",
        json!({"bench": "noop_jobs", "backend": "sqlite", "nodes": 1, "jobs": JOBS,
               "seconds": secs, "jobs_per_second": JOBS as f64 / secs, "args": args})
    );
}

/// Jobs per second with the no-op handler on two nodes sharing PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it by name with --ignored --nocapture"]
async fn queue_bench_noop_jobs_postgres_two_nodes() {
    let url = match std::env::var("PYTAKE_BENCH_STORE") {
        Ok(url) => url,
        Err(_) => Postgres::database_or_skip("queue_bench_pg")
            .await
            .expect("PostgreSQL"),
    };
    fill(&url).await;
    let extra: Vec<String> = std::env::var("PYTAKE_BENCH_QUEUE_ARGS")
        .map(|a| a.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let mut args = vec!["--store".to_string(), url];
    args.extend(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (a, b) = tokio::join!(
        TestServer::start_with(Options::args(&args)),
        TestServer::start_with(Options::args(&args))
    );
    let start = Instant::now();
    let secs = drain(&a, start).await;
    drop(b);
    println!(
        "{}",
        json!({"bench": "noop_jobs", "backend": "postgres", "nodes": 2, "jobs": JOBS,
               "seconds": secs, "jobs_per_second": JOBS as f64 / secs, "args": args})
    );
}

const SECRET: &str = "bench-app-secret";

fn signed(n: u64) -> (String, String) {
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "100000000000001"},
            "contacts": [{"profile": {"name": "Bench"}, "wa_id": "5511988887777"}],
            "messages": [{"from": "5511988887777", "id": format!("wamid.bench{n:010}"),
                "timestamp": chrono::Utc::now().timestamp().to_string(), "type": "text",
                "text": {"body": format!("bench {n}")}}],
        }}]}],
    })
    .to_string();
    let signature = pytake::server::webhooks::whatsapp::signature(SECRET, body.as_bytes());
    (body, signature)
}

/// Webhook acknowledgement latency at a fixed rate (500/s for 20 s by
/// default, `PYTAKE_BENCH_RATE`, `PYTAKE_BENCH_SECONDS`; `PYTAKE_BENCH_EXTRA`
/// adds config lines, `;` between them), and the time
/// from sending each webhook to its `MessageReceived` on a WebSocket
/// subscriber, on one SQLite node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it by name with --ignored --nocapture"]
async fn queue_bench_webhook_ack_and_end_to_end() {
    let rate: u64 = std::env::var("PYTAKE_BENCH_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(500);
    let seconds: u64 = std::env::var("PYTAKE_BENCH_SECONDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!("{}[webhooks.whatsapp]\napp_secret = \"{SECRET}\"\ntenants = {{ \"100000000000001\" = \"acme\" }}\n", std::env::var("PYTAKE_BENCH_EXTRA").unwrap_or_default().replace(";", "\n")),
    )
    .unwrap();
    let server =
        TestServer::start_with(Options::args(&["--config", config.to_str().unwrap()])).await;
    let (mut ws, _) = server
        .subscribed(&server.operator("acme"), rooms(&["conversations"]))
        .await;
    let total = rate * seconds;
    let sent_at = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        Instant,
    >::new()));
    let receiver = {
        let sent_at = sent_at.clone();
        tokio::spawn(async move {
            let mut e2e = Histogram::<u64>::new(3).unwrap();
            let mut seen = 0;
            while seen < total {
                let frame = match tokio::time::timeout(Duration::from_secs(30), ws.recv()).await {
                    Ok(frame) => frame,
                    Err(_) => break,
                };
                if let ServerFrame::Event(event) = frame {
                    if event.event_type != "MessageReceived" {
                        continue;
                    }
                    let id = event.data["message_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    if let Some(at) = sent_at.lock().unwrap().get(&id) {
                        e2e.record(at.elapsed().as_micros() as u64).unwrap();
                    }
                    seen += 1;
                }
            }
            e2e
        })
    };
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/webhooks/whatsapp", server.url);
    let mut ack = Histogram::<u64>::new(3).unwrap();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for n in 0..total {
        tick.tick().await;
        let (body, signature) = signed(n);
        let request = client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body);
        sent_at
            .lock()
            .unwrap()
            .insert(format!("wamid.bench{n:010}"), Instant::now());
        let tx = tx.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let status = request
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            let _ = tx.send((status, started.elapsed()));
        });
    }
    drop(tx);
    let mut failed = 0;
    while let Some((status, took)) = rx.recv().await {
        if status != 200 {
            failed += 1;
        }
        ack.record(took.as_micros() as u64).unwrap();
    }
    let e2e = receiver.await.unwrap();
    let server_side = server_side_ack(&server.url).await;
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{}",
        json!({"bench": "webhooks", "backend": "sqlite", "rate": rate, "seconds": seconds,
               "sent": total, "refused": failed,
               "ack_ms": {"p50": ms(&ack, 0.5), "p99": ms(&ack, 0.99), "max": ack.max() as f64 / 1000.0},
               "end_to_end_ms": {"count": e2e.len(), "p50": ms(&e2e, 0.5), "p99": ms(&e2e, 0.99), "max": e2e.max() as f64 / 1000.0},
               "server_ack": server_side})
    );
}

/// The server's own count of webhook answers by time taken, from its
/// `pytake_http_request_duration_seconds` histogram (1, 2, 4, 8 ... ms
/// buckets): the acknowledgement without the load generator's share of
/// the two cores. `under_ms` maps each bound to the fraction of answers
/// within it; `p99_ms` is Prometheus's `histogram_quantile(0.99)`, linear
/// within the bucket.
async fn server_side_ack(url: &str) -> serde_json::Value {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body");
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| {
            l.starts_with("pytake_http_request_duration_seconds_bucket{")
                && l.contains(r#"route="/api/v1/webhooks/{source}""#)
                && l.contains(r#"status="2xx""#)
        })
        .filter_map(|l| {
            let le = l.split(r#"le=""#).nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le * 1000.0, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map_or(0.0, |b| b.1);
    let mut under = serde_json::Map::new();
    for (le, count) in buckets.iter().filter(|b| b.0 <= 16.0) {
        under.insert(format!("{le}"), json!(count / total));
    }
    let rank = 0.99 * total;
    let mut p99 = f64::NAN;
    let mut below = (0.0, 0.0);
    for (le, count) in &buckets {
        if *count >= rank {
            p99 = if le.is_infinite() {
                below.0
            } else {
                below.0 + (le - below.0) * (rank - below.1) / (count - below.1)
            };
            break;
        }
        below = (*le, *count);
    }
    json!({"answers": total, "under_ms": under, "p99_ms": (p99 * 100.0).round() / 100.0})
}
