//! Input that used to be accepted and silently changed or dropped:
//! reused idempotency keys, unknown fields, ids that cannot key a room,
//! integers past 2^64, a `Subscription` without rooms.

use pytake::protocol::ServerFrame;
use serde_json::{json, Value};

use crate::support::{message_sent, rooms, TestServer};

fn error_of(reply: &Value) -> (&str, &str) {
    (
        reply["error"]["field"].as_str().unwrap_or_default(),
        reply["error"]["message"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn an_idempotency_key_reused_for_another_body_is_refused_with_422() {
    let server = TestServer::start().await;
    let op = server.operator("acme");
    let one = message_sent("acme", "m1").to_string();
    let (status, first) = server.post(Some(&op), one.clone(), Some("order-1")).await;
    assert_eq!(
        (status, &first),
        (201, &json!({"ids": [1], "duplicate": false}))
    );
    // The same body again, re-spaced and re-ordered: a retry.
    let respaced = serde_json::to_string_pretty(&message_sent("acme", "m1")).unwrap();
    let (status, retry) = server.post(Some(&op), respaced, Some("order-1")).await;
    assert_eq!(
        (status, &retry),
        (200, &json!({"ids": [1], "duplicate": true}))
    );
    // Another body under the same key: refused, nothing stored.
    let other = json!([message_sent("acme", "m2"), message_sent("acme", "m3")]).to_string();
    let (status, reply) = server.post(Some(&op), other, Some("order-1")).await;
    assert_eq!(status, 422, "{reply}");
    let (field, message) = error_of(&reply);
    assert_eq!(field, "Idempotency-Key");
    assert!(
        message.contains(
            "key `order-1` was already used for a different request within the last 24 h"
        ),
        "{message}"
    );
    // The same for an event's own key.
    let keyed = |n: &str| {
        let mut e = message_sent("acme", n);
        e["idempotency_key"] = json!("evt-1");
        e
    };
    server.publish(&op, keyed("m4")).await;
    let (status, reply) = server
        .post(Some(&op), json!([keyed("m5")]).to_string(), None)
        .await;
    assert_eq!(status, 422, "{reply}");
    assert_eq!(error_of(&reply).0, "[0].idempotency_key");
    let (status, reply) = server.post(Some(&op), keyed("m5").to_string(), None).await;
    assert_eq!(status, 422, "{reply}");
    assert_eq!(error_of(&reply).0, "idempotency_key");
    assert_eq!(server.history("").await.len(), 2);
}

#[tokio::test]
async fn two_events_of_one_batch_with_one_key_are_refused_naming_both() {
    let server = TestServer::start().await;
    let mut a = message_sent("acme", "m1");
    a["idempotency_key"] = json!("dup");
    let b = a.clone();
    let batch = json!([message_sent("acme", "m0"), a, b]).to_string();
    let (status, reply) = server
        .post(Some(&server.operator("acme")), batch, None)
        .await;
    assert_eq!(status, 422, "{reply}");
    let (field, message) = error_of(&reply);
    assert_eq!(field, "[2].idempotency_key");
    assert!(message.contains("also the key of [1]"), "{message}");
    assert!(server.history("").await.is_empty());
}

#[tokio::test]
async fn unknown_fields_and_unroutable_ids_are_refused_not_dropped() {
    let server = TestServer::start().await;
    let op = server.operator("acme");
    for (body, field, problem) in [
        (
            json!({"event_type": "OrderShipped", "room": "alerts"}),
            "room",
            "unknown field `room`",
        ),
        (
            json!([{"event_type": "OrderShipped"}, {"event_type": "OrderShipped", "tenantid": "x"}]),
            "[1].tenantid",
            "unknown field `tenantid`",
        ),
        (
            json!({"event_type": "ConversationEnded", "data": {"conversation_id": "a\"b"}}),
            "data.conversation_id",
            "cannot key the `conversation:` room",
        ),
        (
            json!({"event_type": "ConversationEnded", "data": {"conversation_id": "x".repeat(10_000)}}),
            "data.conversation_id",
            "1 to 128 characters",
        ),
    ] {
        let (status, reply) = server.post(Some(&op), body.to_string(), None).await;
        assert_eq!(status, 422, "{body}: {reply}");
        let (got_field, message) = error_of(&reply);
        assert_eq!(got_field, field, "{reply}");
        assert!(message.contains(problem), "{message}");
    }
    assert!(server.history("").await.is_empty());
}

#[tokio::test]
async fn integers_past_64_bits_are_kept_exactly() {
    let server = TestServer::start().await;
    let (mut ws, _) = server
        .subscribed(&server.viewer("acme"), rooms(&["dashboard"]))
        .await;
    let body = r#"{"event_type":"OrderShipped","data":{"big":123456789012345678901234567890,"neg":-98765432109876543210,"pi":3.141592653589793238462643383279,"small":1.0}}"#;
    let (status, reply) = server
        .post(Some(&server.operator("acme")), body, None)
        .await;
    assert_eq!(status, 201, "{reply}");
    let exact = r#""big":123456789012345678901234567890,"neg":-98765432109876543210,"pi":3.141592653589793238462643383279,"small":1.0"#;
    let live = ws.next_event_text().await;
    assert!(live.contains(exact), "{live}");
    let stored = reqwest::Client::new()
        .get(format!("{}/api/v1/events", server.url))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(stored.contains(exact), "{stored}");
}

#[tokio::test]
async fn a_subscription_must_name_its_rooms_and_only_known_fields() {
    let server = TestServer::start().await;
    let mut ws = server.ws("/ws").await;
    ws.auth(&server.viewer("acme")).await;
    ws.send_text(r#"{"message_type":"Subscription"}"#).await;
    let (code, message) = ws.error().await;
    assert_eq!(code, "bad_message");
    assert!(
        message.contains("payload: missing field `rooms`"),
        "{message}"
    );
    ws.send_text(r#"{"message_type":"Subscription","payload":{"rooms":["erp"],"snice":4}}"#)
        .await;
    let (code, message) = ws.error().await;
    assert_eq!(code, "bad_message");
    assert!(message.contains("unknown field `snice`"), "{message}");
    // `[]` is the explicit way to ask for every room.
    ws.send_text(r#"{"message_type":"Subscription","payload":{"rooms":[]}}"#)
        .await;
    assert!(matches!(ws.recv().await, ServerFrame::Subscribed(_)));
}

#[tokio::test]
async fn an_event_carries_every_room_it_was_published_to() {
    let server = TestServer::start().await;
    let (mut ws, _) = server
        .subscribed(&server.viewer("acme"), rooms(&["conversation:exp"]))
        .await;
    let mut sent = message_sent("acme", "m1");
    sent["data"]["conversation_id"] = json!("exp");
    server.publish(&server.operator("acme"), sent).await;
    let event = ws.event().await;
    assert_eq!(event.room, "dashboard");
    assert_eq!(
        event.rooms,
        vec!["dashboard", "conversations", "conversation:exp"]
    );
}
