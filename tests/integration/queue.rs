//! The job queue against an in-process server: backoff and dead letters,
//! the circuit breaker against a real local HTTP server, and the REST
//! API. Time moves by `pause`/`advance`/`resume` jumps of the server's
//! clock; every wait is a condition with a deadline.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::TestServer;

/// Moves the server's clock (tokio's) on by `d` at once.
async fn jump(d: Duration) {
    tokio::time::pause();
    tokio::time::advance(d).await;
    tokio::time::resume();
}

async fn enqueue(server: &TestServer, token: &str, body: Value) -> Value {
    let (status, job) = server
        .call(Method::POST, Some(token), "/api/v1/queue/jobs", Some(body))
        .await;
    assert_eq!(status, 201, "{job}");
    job
}

/// Polls a job until `done` says so (10 s at most).
pub(crate) async fn wait_job(
    server: &TestServer,
    id: i64,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let admin = server.admin();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, job) = server
            .get(Some(&admin), &format!("/api/v1/queue/jobs/{id}"))
            .await;
        assert_eq!(status, 200, "{job}");
        if done(&job) {
            return job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {id} never {what}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn time(job: &Value, field: &str) -> DateTime<Utc> {
    job[field].as_str().expect(field).parse().expect("RFC 3339")
}

/// A local port nothing listens on: connections are refused at once.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Failures retry after 2 s, then 4 s (plus at most 20 % jitter), and
/// the third failure makes the job dead with its error and attempts.
#[tokio::test]
async fn failures_back_off_then_go_to_dead_letters() {
    let server = TestServer::in_process(|_| {}).await;
    let admin = server.admin();
    let url = format!("http://127.0.0.1:{}/hook", closed_port());
    let job = enqueue(
        &server,
        &admin,
        json!({"kind": "http", "payload": {"url": url, "body": {"a": 1}}}),
    )
    .await;
    let id = job["id"].as_i64().unwrap();
    for (attempt, delay) in [(1, 2.0), (2, 4.0)] {
        let failed = wait_job(&server, id, "retrying", |j| {
            j["status"] == "retrying" && j["attempts"] == attempt
        })
        .await;
        let wait = (time(&failed, "run_at") - time(&failed, "updated_at")).as_seconds_f64();
        assert!(
            wait > delay - 0.5 && wait <= delay * 1.2,
            "attempt {attempt} waits {wait}s, not {delay}s plus jitter: {failed}"
        );
        let error = failed["last_error"].as_str().unwrap();
        assert!(error.contains("cannot reach 127.0.0.1"), "{error}");
        assert!(
            error.contains(&format!("(attempt {attempt} of 3)")),
            "{error}"
        );
        jump(Duration::from_secs_f64(delay * 1.2 + 0.1)).await;
    }
    let dead = wait_job(&server, id, "dead", |j| j["status"] == "dead").await;
    assert_eq!(dead["attempts"], 3);
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap()
            .contains("(attempt 3 of 3)"),
        "{dead}"
    );
    let (_, stats) = server.get(Some(&admin), "/api/v1/queue/stats").await;
    assert_eq!(stats["depth"]["dead"], 1, "{stats}");
    assert_eq!(stats["dead_by_kind"]["http"], 1, "{stats}");
}

/// A local peer that fails until told to recover, counting requests.
struct Peer {
    url: String,
    hits: Arc<AtomicUsize>,
    healthy: Arc<AtomicBool>,
}

async fn peer() -> Peer {
    let hits = Arc::new(AtomicUsize::new(0));
    let healthy = Arc::new(AtomicBool::new(false));
    let (h, ok) = (hits.clone(), healthy.clone());
    let app = Router::new().route(
        "/hook",
        post(move || {
            let (h, ok) = (h.clone(), ok.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                if ok.load(Ordering::SeqCst) {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Peer { url, hits, healthy }
}

/// Five failures in a row open the host's circuit: the next job is held
/// back without a request and without spending an attempt; after the
/// 30 s cool-down one trial goes through and, the peer back, succeeds.
#[tokio::test]
async fn an_open_circuit_holds_jobs_back_until_the_cooldown() {
    let server = TestServer::in_process(|_| {}).await;
    let admin = server.admin();
    let peer = peer().await;
    for _ in 0..5 {
        let job = enqueue(
            &server,
            &admin,
            json!({"kind": "http", "max_attempts": 1, "payload": {"url": peer.url}}),
        )
        .await;
        wait_job(&server, job["id"].as_i64().unwrap(), "dead", |j| {
            j["status"] == "dead"
        })
        .await;
    }
    assert_eq!(peer.hits.load(Ordering::SeqCst), 5);
    let (_, stats) = server.get(Some(&admin), "/api/v1/queue/stats").await;
    let host = peer
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/hook")
        .to_string();
    assert_eq!(
        stats["circuits"],
        json!([{"host": host, "state": "open"}]),
        "{stats}"
    );

    let held = enqueue(
        &server,
        &admin,
        json!({"kind": "http", "payload": {"url": peer.url}}),
    )
    .await;
    let id = held["id"].as_i64().unwrap();
    let waiting = wait_job(&server, id, "held back", |j| {
        j["status"] == "pending" && time(j, "run_at") > time(j, "updated_at")
    })
    .await;
    assert_eq!(
        waiting["attempts"], 0,
        "a held job keeps its attempts: {waiting}"
    );
    let hold = (time(&waiting, "run_at") - time(&waiting, "updated_at")).as_seconds_f64();
    assert!(
        hold > 25.0 && hold <= 30.0,
        "held for the cool-down: {hold}s"
    );
    assert_eq!(peer.hits.load(Ordering::SeqCst), 5, "no request while open");

    peer.healthy.store(true, Ordering::SeqCst);
    jump(Duration::from_secs(31)).await;
    let done = wait_job(&server, id, "done", |j| j["status"] == "done").await;
    assert_eq!(done["attempts"], 1);
    assert_eq!(peer.hits.load(Ordering::SeqCst), 6, "one trial");
    let (_, stats) = server.get(Some(&admin), "/api/v1/queue/stats").await;
    assert_eq!(stats["circuits"][0]["state"], "closed", "{stats}");
}

/// Enqueue, list, show, retry (409 unless dead), retry all dead, purge;
/// roles and tenants; bad input named.
#[tokio::test]
async fn the_rest_api_lists_retries_and_purges_within_the_callers_tenant() {
    let server = TestServer::in_process(|_| {}).await;
    let admin = server.admin();
    let acme = server.operator("acme");
    let noop = enqueue(
        &server,
        &acme,
        json!({"kind": "noop", "correlation_id": "req-9"}),
    )
    .await;
    assert_eq!(noop["tenant_id"], "acme");
    let noop_id = noop["id"].as_i64().unwrap();
    wait_job(&server, noop_id, "done", |j| j["status"] == "done").await;
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let failing = enqueue(
        &server,
        &acme,
        json!({"kind": "http", "max_attempts": 1, "payload": {"url": url, "headers": {"Authorization": "Bearer s3cret"}}}),
    )
    .await;
    assert_eq!(
        failing["payload"]["headers"]["Authorization"], "****",
        "secrets masked"
    );
    let dead_id = failing["id"].as_i64().unwrap();
    wait_job(&server, dead_id, "dead", |j| j["status"] == "dead").await;

    let (status, listed) = server
        .get(Some(&acme), "/api/v1/queue/jobs?status=dead")
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1, "{listed}");
    let (_, all) = server.get(Some(&acme), "/api/v1/queue/jobs").await;
    let ids: Vec<i64> = all["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [dead_id, noop_id], "newest first");

    let globex = server.operator("globex");
    assert_eq!(
        server
            .get(Some(&globex), &format!("/api/v1/queue/jobs/{dead_id}"))
            .await
            .0,
        404
    );
    let (_, none) = server.get(Some(&globex), "/api/v1/queue/jobs").await;
    assert_eq!(none["jobs"], json!([]));
    let viewer = server.viewer("acme");
    assert_eq!(
        server.get(Some(&viewer), "/api/v1/queue/stats").await.0,
        403
    );
    assert_eq!(server.get(None, "/api/v1/queue/stats").await.0, 401);

    let retry = |id: i64| format!("/api/v1/queue/jobs/{id}/retry");
    let (status, conflict) = server
        .call(Method::POST, Some(&acme), &retry(noop_id), None)
        .await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["error"]["code"], "conflict");
    assert!(conflict["error"]["message"]
        .as_str()
        .unwrap()
        .contains("is done, not dead"));
    let (status, retried) = server
        .call(Method::POST, Some(&acme), &retry(dead_id), None)
        .await;
    assert_eq!(
        (status, retried["status"].as_str()),
        (200, Some("pending")),
        "{retried}"
    );
    wait_job(&server, dead_id, "dead again", |j| j["status"] == "dead").await;
    let (status, all_dead) = server
        .call(
            Method::POST,
            Some(&admin),
            "/api/v1/queue/dead/retry",
            Some(json!({"kind": "http"})),
        )
        .await;
    assert_eq!(
        (status, all_dead["retried"].as_u64()),
        (200, Some(1)),
        "{all_dead}"
    );
    wait_job(&server, dead_id, "dead a third time", |j| {
        j["status"] == "dead"
    })
    .await;

    let (status, bad) = server
        .call(
            Method::DELETE,
            Some(&admin),
            "/api/v1/queue/jobs?status=pending",
            None,
        )
        .await;
    assert_eq!(status, 400, "{bad}");
    let (status, young) = server
        .call(
            Method::DELETE,
            Some(&admin),
            "/api/v1/queue/jobs?status=done&older_than=7d",
            None,
        )
        .await;
    assert_eq!((status, young["purged"].as_u64()), (200, Some(0)));
    let (status, purged) = server
        .call(
            Method::DELETE,
            Some(&acme),
            "/api/v1/queue/jobs?status=done&older_than=0s",
            None,
        )
        .await;
    assert_eq!(
        (status, purged["purged"].as_u64()),
        (200, Some(1)),
        "{purged}"
    );
    assert_eq!(
        server
            .get(Some(&admin), &format!("/api/v1/queue/jobs/{noop_id}"))
            .await
            .0,
        404
    );

    for (body, field) in [
        (json!({"kind": "reindex"}), "kind"),
        (json!({"kind": "webhook.whatsapp"}), "kind"),
        (
            json!({"kind": "http", "payload": {"url": "ftp://x"}}),
            "payload",
        ),
        (json!({"kind": "noop", "max_attempts": 0}), "max_attempts"),
        (json!({"kind": "noop", "queue": "other"}), "queue"),
        (json!({"kind": "noop", "priority": "high"}), "priority"),
        (
            json!({"kind": "noop", "correlation_id": "req\u{0}"}),
            "correlation_id",
        ),
    ] {
        let (status, err) = server
            .call(
                Method::POST,
                Some(&admin),
                "/api/v1/queue/jobs",
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, 422, "{body} -> {err}");
        assert_eq!(err["error"]["field"], field, "{body} -> {err}");
    }
}
