//! Bad frames, floods, oversized frames and slow consumers.

use pytake::protocol::{ClientFrame, ServerFrame};
use serde_json::json;

use crate::support::{rooms, Options, TestServer};

#[tokio::test]
async fn bad_frames_get_bad_message_and_the_connection_stays_open() {
    let server = TestServer::start().await;
    let mut ws = server.ws("/ws").await;
    ws.auth(&server.viewer("acme")).await;
    let cases = [
        ("{not json", "frame is not valid JSON: key must be a string at line 1 column 2"),
        (r#"{"message_type":"Shout","payload":{}}"#,
         "unknown message_type `Shout`: expected one of Auth, Subscription, Unsubscribe, Heartbeat, Publish, Typing, Presence, Transfer"),
        (r#"{"message_type":"Subscription","payload":{"rooms":"dashboard"}}"#,
         "payload.rooms: invalid type: string \"dashboard\", expected a sequence"),
        (r#"{"message_type":"Subscription","payload":{"rooms":["dashbord"]}}"#,
         "payload.rooms[0]: unknown room `dashbord`: expected one of dashboard, conversations, campaigns, erp, ai, alerts, presence or campaign:ID, conversation:ID, user:ID"),
        (r#"{"message_type":"Subscription","payload":{"rooms":["erp"],"since":"yesterday"}}"#,
         "payload.since: invalid type: string \"yesterday\", expected i64"),
        (r#"{"payload":{}}"#, "bad envelope: missing field `message_type` at line 1 column 14"),
    ];
    for (frame, message) in cases {
        ws.send_text(frame).await;
        assert_eq!(
            ws.error().await,
            ("bad_message".to_string(), message.to_string()),
            "for {frame}"
        );
    }
    ws.send_json(json!(1)).await;
    assert_eq!(ws.error().await.0, "bad_message");
    ws.alive().await;
}

#[tokio::test]
async fn binary_frames_are_refused() {
    let server = TestServer::start().await;
    let mut ws = server.ws("/ws").await;
    ws.auth(&server.viewer("acme")).await;
    ws.send_binary(vec![1, 2, 3]).await;
    assert_eq!(
        ws.error().await.1,
        "binary frames are not supported: send JSON text frames"
    );
    ws.alive().await;
}

#[tokio::test]
async fn an_oversized_frame_closes_the_connection() {
    let server = TestServer::start_with(Options::args(&["--max-frame-bytes", "1024"])).await;
    let mut ws = server.ws("/ws").await;
    ws.auth(&server.viewer("acme")).await;
    ws.send_text(format!(
        r#"{{"message_type":"Heartbeat","payload":{{"pad":"{}"}}}}"#,
        "x".repeat(2000)
    ))
    .await;
    let (_, closed) = ws.closed().await;
    assert_eq!(closed.code, 1009, "{closed:?}");
}

#[tokio::test]
async fn a_flood_is_rate_limited_then_closed() {
    let server = TestServer::start_with(Options::args(&["--rate-limit", "5"])).await;
    let mut ws = server.ws("/ws").await;
    ws.auth(&server.viewer("acme")).await; // the Auth frame is message 1
    for _ in 0..4 {
        ws.send(ClientFrame::Heartbeat).await;
        assert!(matches!(ws.recv().await, ServerFrame::HeartbeatAck { .. }));
    }
    ws.send(ClientFrame::Heartbeat).await;
    match ws.recv().await {
        ServerFrame::Error(e) => {
            assert_eq!(e.code.to_string(), "rate_limited");
            assert_eq!(e.message, "more than 5 messages per minute; slow down");
            let retry = e.retry_after.expect("retry_after");
            assert!(retry > 0.0 && retry <= 12.0, "retry_after {retry}");
        }
        other => panic!("expected rate_limited, got {other:?}"),
    }
    for _ in 0..20 {
        ws.send(ClientFrame::Heartbeat).await;
    }
    let (frames, closed) = ws.closed().await;
    assert_eq!(closed.code, 4008, "{closed:?}");
    assert!(frames
        .iter()
        .all(|f| matches!(f, ServerFrame::Error(e) if e.code.to_string() == "rate_limited")));
}

#[tokio::test]
async fn a_slow_consumer_is_closed_4009_and_resumes_without_loss() {
    let server = TestServer::start_with(Options::args(&["--outbound-queue", "8"])).await;
    let (mut slow, _) = server
        .subscribed(&server.viewer("acme"), rooms(&["erp"]))
        .await;
    let last = flood_until_closed(&server).await;
    let (frames, closed) = slow.closed().await;
    assert_eq!(closed.code, 4009, "{closed:?}");
    assert!(
        matches!(frames.last(), Some(ServerFrame::Error(e)) if e.code.to_string() == "slow_consumer"),
        "the last of {} frames is not Error slow_consumer",
        frames.len()
    );
    let seen = frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Event(e) => Some(e.id),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    assert!(seen < last, "the consumer was not slow after all");

    // Resume from the last id seen: everything else arrives, in order.
    let sub = pytake::protocol::Subscription {
        since: Some(seen),
        ..rooms(&["erp"])
    };
    let (mut again, _) = server.subscribed(&server.viewer("acme"), sub).await;
    let mut expect = seen + 1;
    while expect <= last {
        assert_eq!(again.event().await.id, expect);
        expect += 1;
    }
    // The replay was read at the client's pace: only the first consumer
    // was closed, even if the hub was still offering these events live.
    assert_eq!(slow_consumers_closed(&server).await, 1);
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_closed_4009_after_the_write_stall() {
    let server = TestServer::start_with(Options::args(&[
        "--write-stall",
        "300ms",
        "--outbound-queue",
        "100000",
    ]))
    .await;
    let (mut stuck, _) = server
        .subscribed(&server.viewer("acme"), rooms(&["erp"]))
        .await;
    // The queue never fills: what closes the peer is a write that waits.
    flood_until_closed(&server).await;
    let (frames, closed) = stuck.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (4009, "write stalled")
    );
    match frames.last() {
        Some(ServerFrame::Error(e)) => {
            assert_eq!(e.code.to_string(), "slow_consumer");
            assert_eq!(
                e.message,
                "no write progress for 300ms: reconnect and resume with `since`"
            );
        }
        _ => panic!("the last of {} frames is not an Error", frames.len()),
    }
}

/// Publishes 16 KiB events into `erp`, enough to fill socket buffers, until
/// the server has closed a subscriber as slow; returns the last id. It stops
/// there, so the subscriber reads its Close within the server's grace.
async fn flood_until_closed(server: &TestServer) -> i64 {
    let admin = server.admin();
    let pad = "x".repeat(16 * 1024);
    for batch in 0..200 {
        let body: Vec<_> = (0..50)
            .map(|i| json!({"event_type": "Bulk", "tenant_id": "acme", "rooms": ["erp"], "data": {"n": batch * 50 + i, "pad": pad}}))
            .collect();
        let last = *server.publish(&admin, json!(body)).await.last().unwrap();
        if slow_consumers_closed(server).await >= 1 {
            return last;
        }
    }
    panic!("no subscriber was closed as slow after 200 batches");
}

async fn slow_consumers_closed(server: &TestServer) -> i64 {
    server.get(None, "/health").await.1["websocket"]["slow_consumers_closed"]
        .as_i64()
        .expect("/health reports websocket.slow_consumers_closed")
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let server = TestServer::start_with(Options::args(&[
        "--idle-timeout",
        "400ms",
        "--ping-interval",
        "1h",
    ]))
    .await;
    let mut ws = server.ws("/ws").await;
    ws.auth(&server.viewer("acme")).await;
    let (_, closed) = ws.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (1001, "idle timeout")
    );
}
