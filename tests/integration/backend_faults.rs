//! What a node does when PostgreSQL or Redis goes away under it: intake
//! answers 503 with `Retry-After` and stores nothing half-way, `/ready`
//! says why, and everything recovers by itself when the service is back,
//! with nothing acknowledged lost for any subscriber.

use std::time::Duration;

use pytake::protocol::{EventId, Subscription};
use serde_json::Value;

use crate::support::services::{Postgres, Redis};
use crate::support::{custom, Options, TestServer, TestWs, DEADLINE};

/// POSTs one event; the status, `Retry-After` and body.
async fn post(server: &TestServer, n: i64) -> (u16, Option<String>, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/events", server.url))
        .bearer_auth(server.admin())
        .json(&custom("acme", "erp", n))
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry, response.json().await.unwrap_or(Value::Null))
}

/// Retries a POST as a client following `Retry-After` would, until it is
/// accepted; returns the ids.
async fn post_until_accepted(server: &TestServer, n: i64) -> Vec<EventId> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (status, _, body) = post(server, n).await;
        if status == 201 {
            return serde_json::from_value(body["ids"].clone()).unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never accepted: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ready(server: &TestServer) -> (u16, Value) {
    server.get(None, "/ready").await
}

/// Waits until `/ready` answers `status`.
async fn wait_ready(server: &TestServer, status: u16) -> Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (got, body) = ready(server).await;
        if got == status {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/ready stayed {got}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn postgresql_lost_while_running_is_503_then_recovers_by_itself() {
    let test = "postgresql_lost_while_running_is_503_then_recovers_by_itself";
    let Some(mut pg) = Postgres::start_or_skip(test).await else {
        return;
    };
    let store = pg.create_database("faults").await;
    let server = TestServer::start_with(Options::args(&["--store", &store])).await;
    let (mut ws, _) = server.subscribed(&server.admin(), subscription()).await;
    let first = post_until_accepted(&server, 1).await;

    pg.stop().await;
    let (status, retry, body) = post(&server, 2).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let body = wait_ready(&server, 503).await;
    assert_eq!(body["reason"], "store unreachable");

    pg.restart_stopped().await;
    wait_ready(&server, 200).await;
    let second = post_until_accepted(&server, 3).await;
    // Only what was acknowledged is stored: the refused POST left nothing.
    let stored: Vec<EventId> = server.history("").await.iter().map(|e| e.id).collect();
    assert_eq!(stored, [first[0], second[0]]);
    assert_eq!(next_ids(&mut ws, 2).await, stored);
}

/// Redis restarts under two nodes: `/ready` is 503 while it is down, and
/// every acknowledged event, posted before, during and after, reaches the
/// subscriber on the other node in order.
#[tokio::test]
async fn a_redis_restart_loses_no_acknowledged_event() {
    let test = "a_redis_restart_loses_no_acknowledged_event";
    let Some(store) = Postgres::database_or_skip(test).await else {
        return;
    };
    let Some(mut redis) = Redis::start_or_skip(test).await else {
        return;
    };
    let bus = redis.url();
    let a = TestServer::start_with(Options::args(&["--store", &store, "--bus", &bus])).await;
    let b = TestServer::start_with(Options::args(&["--store", &store, "--bus", &bus])).await;
    let (mut on_b, _) = b.subscribed(&b.admin(), subscription()).await;
    let mut posted = post_until_accepted(&a, 1).await;

    redis.stop().await;
    let body = wait_ready(&b, 503).await;
    assert_eq!(body["reason"], "bus unreachable");
    let (_, health) = b.get(None, "/health").await;
    assert_eq!(health["components"]["bus"]["status"], "down", "{health}");
    // Intake goes on: the store is the record.
    posted.extend(post_until_accepted(&a, 2).await);

    redis.restart_stopped().await;
    wait_ready(&b, 200).await;
    wait_ready(&a, 200).await;
    posted.extend(post_until_accepted(&a, 3).await);
    assert_eq!(next_ids(&mut on_b, 3).await, posted);
}

fn subscription() -> Subscription {
    Subscription {
        rooms: vec![],
        event_types: None,
        tenant_id: None,
        since: None,
    }
}

async fn next_ids(ws: &mut TestWs, n: usize) -> Vec<EventId> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(ws.event().await.id);
    }
    ids
}
