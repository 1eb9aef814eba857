//! At-least-once across a crash: a `pytake serve` process is killed with
//! SIGKILL while its workers hold jobs; after a restart every job
//! completes (none lost, none dead), the interrupted ones once their
//! lease expired. The jobs deliver to a real local HTTP peer that takes a
//! while to answer, so some are mid-run when the process dies.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::{Json, Router};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::services::Postgres;
use crate::support::{Options, TestServer};

/// Jobs per test.
const JOBS: usize = 40;

/// A peer that answers after `delay`, counting deliveries per job `n`.
async fn slow_peer(delay: Duration) -> (String, Arc<Mutex<HashMap<u64, u32>>>) {
    let seen: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let counts = seen.clone();
    let app = Router::new().route(
        "/deliver",
        post(move |Json(body): Json<Value>| {
            let counts = counts.clone();
            async move {
                tokio::time::sleep(delay).await;
                let n = body["n"].as_u64().expect("n");
                *counts.lock().unwrap().entry(n).or_insert(0) += 1;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/deliver", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// A config file with a short lease, so the test waits seconds, not the
/// default 30 s, for the interrupted jobs.
pub(crate) fn queue_config(dir: &Path) -> String {
    let path = dir.join("queue.toml");
    std::fs::write(
        &path,
        "[queue]\nlease = \"3s\"\nhttp_timeout = \"2s\"\nconcurrency = 4\npoll_interval = \"200ms\"\n",
    )
    .unwrap();
    path.display().to_string()
}

async fn depth(server: &TestServer, status: &str) -> u64 {
    let (code, stats) = server
        .get(Some(&server.admin()), "/api/v1/queue/stats")
        .await;
    assert_eq!(code, 200, "{stats}");
    stats["depth"][status].as_u64().unwrap()
}

/// Waits until `done` jobs are done (30 s at most).
pub(crate) async fn wait_done(server: &TestServer, done: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while depth(server, "done").await < done {
        assert!(
            Instant::now() < deadline,
            "jobs never all done; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Enqueues the jobs (one per `n`) to `url`.
pub(crate) async fn enqueue_all(server: &TestServer, url: &str) {
    let admin = server.admin();
    for n in 0..JOBS {
        let body = json!({"kind": "http", "payload": {"url": url, "body": {"n": n}}});
        let (status, reply) = server
            .call(Method::POST, Some(&admin), "/api/v1/queue/jobs", Some(body))
            .await;
        assert_eq!(status, 201, "{reply}");
    }
}

pub(crate) async fn crash_and_recover(extra: &[&str]) {
    let (url, seen) = slow_peer(Duration::from_millis(300)).await;
    let config_dir = tempfile::tempdir().unwrap();
    let config = queue_config(config_dir.path());
    let mut args = vec!["--config", config.as_str()];
    args.extend_from_slice(extra);
    let mut server = TestServer::start_with(Options::args(&args)).await;
    enqueue_all(&server, &url).await;
    // Kill while jobs run: some delivered, some mid-delivery, some waiting.
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().len() < 4 {
        assert!(Instant::now() < deadline, "no delivery started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill().await;
    let before_restart = seen.lock().unwrap().len();
    assert!(before_restart < JOBS, "killed before the queue drained");

    server.restart_stopped().await;
    wait_done(&server, JOBS as u64).await;
    assert_eq!(depth(&server, "dead").await, 0);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        JOBS,
        "every job delivered at least once: {seen:?}"
    );
    // At-least-once: a run cut off by the crash may deliver again.
    let repeats: u32 = seen.values().map(|n| n - 1).sum();
    assert!(
        repeats <= 8,
        "only runs the crash cut off repeat: {repeats} repeats"
    );
}

#[tokio::test]
async fn a_killed_server_finishes_every_job_after_restart_on_sqlite() {
    crash_and_recover(&[]).await;
}

#[tokio::test]
async fn a_killed_server_finishes_every_job_after_restart_on_postgres() {
    let Some(url) = Postgres::database_or_skip("queue_crash::on_postgres").await else {
        return;
    };
    crash_and_recover(&["--store", &url]).await;
}

/// Two nodes on one PostgreSQL share the jobs; one is killed while it
/// holds some; the other takes those over once their leases expire and
/// every job is done once.
#[tokio::test]
async fn a_second_node_takes_over_a_killed_nodes_jobs() {
    let Some(url) = Postgres::database_or_skip("queue_crash::two_nodes").await else {
        return;
    };
    let (peer, seen) = slow_peer(Duration::from_millis(300)).await;
    let config_dir = tempfile::tempdir().unwrap();
    let config = queue_config(config_dir.path());
    let args = ["--config", config.as_str(), "--store", url.as_str()];
    let mut doomed = TestServer::start_with(Options::args(&args)).await;
    let survivor = TestServer::start_with(Options::args(&args)).await;
    enqueue_all(&doomed, &peer).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().len() < 4 {
        assert!(Instant::now() < deadline, "no delivery started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    doomed.kill().await;
    wait_done(&survivor, JOBS as u64).await;
    assert_eq!(depth(&survivor, "dead").await, 0);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), JOBS, "every job delivered: {seen:?}");
    let repeats: u32 = seen.values().map(|n| n - 1).sum();
    assert!(repeats <= 8, "only runs the kill cut off repeat: {repeats}");
}
