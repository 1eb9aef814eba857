//! The in-process server: the same HTTP and WebSocket surface as the
//! process, on the test's runtime and tokio's clock, so a test moves the
//! server's time with `tokio::time::pause()` and `advance` instead of
//! waiting for it.

use pytake::protocol::limits::IDEMPOTENCY_TTL;
use serde_json::json;

use crate::support::TestServer;

/// A request key is honoured for a day, then free: the window is read from
/// the server's clock, which the test moves by a day in no time.
#[tokio::test]
async fn a_request_key_is_free_again_a_day_later_by_the_servers_clock() {
    let server = TestServer::in_process(|_| {}).await;
    let token = server.operator("acme");
    let body = |n: i64| json!({"event_type": "Custom", "rooms": ["erp"], "data": {"n": n}});
    let first = server
        .post(Some(&token), body(1).to_string(), Some("k-1"))
        .await;
    assert_eq!(first.0, 201, "{}", first.1);
    let reused = server
        .post(Some(&token), body(2).to_string(), Some("k-1"))
        .await;
    assert_eq!(reused.0, 422, "{}", reused.1);

    // Paused only for the jump: with the clock paused while the test waits
    // on sockets, tokio would move time on by itself.
    tokio::time::pause();
    tokio::time::advance(IDEMPOTENCY_TTL + std::time::Duration::from_secs(1)).await;
    tokio::time::resume();

    let later = server
        .post(Some(&token), body(2).to_string(), Some("k-1"))
        .await;
    assert_eq!(later.0, 201, "a day on, the key is new: {}", later.1);
    assert_ne!(later.1["ids"], first.1["ids"]);
}

/// Stop and start again on the same data dir: what was stored is there.
#[tokio::test]
async fn an_in_process_server_restarts_on_its_data() {
    let mut server = TestServer::in_process(|_| {}).await;
    let admin = server.admin();
    let ids = server
        .publish(
            &admin,
            json!({"event_type": "Custom", "tenant_id": "acme", "rooms": ["erp"], "data": {}}),
        )
        .await;
    server.restart().await;
    let history = server.history("tenant_id=acme").await;
    assert_eq!(history.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
}
