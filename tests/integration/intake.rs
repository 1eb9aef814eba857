//! `POST /api/v1/events`: validation, batches, idempotency, permissions.

use serde_json::json;

use crate::support::{custom, message_sent, TestServer};

#[tokio::test]
async fn one_event_or_a_batch_gets_increasing_ids() {
    let server = TestServer::start().await;
    let op = server.operator("acme");
    let (status, reply) = server
        .post(Some(&op), message_sent("acme", "m1").to_string(), None)
        .await;
    assert_eq!(status, 201);
    assert_eq!(reply, json!({"ids": [1], "duplicate": false}));
    let batch = json!([
        message_sent("acme", "m2"),
        custom("acme", "erp", 1),
        message_sent("acme", "m3")
    ]);
    let (status, reply) = server.post(Some(&op), batch.to_string(), None).await;
    assert_eq!(status, 201);
    assert_eq!(reply["ids"], json!([2, 3, 4]));
    // The token's tenant is the default; the timestamp given is kept.
    let body = json!({"event_type": "ConversationStarted", "timestamp": "2026-03-01T10:00:00Z",
        "data": {"conversation_id": 42, "customer": {"name": "Ana"}}});
    server.publish(&op, body).await;
    let stored = server.history("since=4").await;
    assert_eq!(stored[0].tenant_id, "acme");
    assert_eq!(
        stored[0].rooms,
        vec!["dashboard", "conversations", "conversation:42"]
    );
    assert_eq!(
        stored[0].timestamp.to_rfc3339(),
        "2026-03-01T10:00:00+00:00"
    );
}

#[tokio::test]
async fn bad_bodies_name_what_is_wrong() {
    let server = TestServer::start().await;
    let op = server.operator("acme");
    let rooms: Vec<String> = (0..101).map(|i| format!("\"campaign:{i}\"")).collect();
    let too_many_rooms = format!(r#"{{"event_type": "X", "rooms": [{}]}}"#, rooms.join(","));
    let cases = [
        ("{\"event_type\": ", 400, "bad_message", None, "body is not valid JSON: EOF while parsing a value at line 1 column 15"),
        ("42", 422, "unprocessable", Some("body"), "body: expected an event object or an array of them, got a number"),
        ("[]", 422, "unprocessable", Some("body"), "body: the batch is empty"),
        (r#"{"data": {}}"#, 422, "unprocessable", Some("body"), "body: missing field `event_type`"),
        (r#"{"event_type": 7}"#, 422, "unprocessable", Some("event_type"), "event_type: invalid type: number, expected a string"),
        (r#"{"event_type": "MessageSent", "data": {"to": "+55", "status": "sent"}}"#, 422, "unprocessable",
         Some("data.message_id"), "data.message_id: required for MessageSent"),
        (r#"{"event_type": "ERPCall", "data": {"provider": "sap", "endpoint": "/x", "response_time": "slow", "success": true}}"#,
         422, "unprocessable", Some("data.response_time"), "data.response_time: expected a number, got a string"),
        (r#"{"event_type": "X", "rooms": ["lobby"]}"#, 422, "unprocessable", Some("rooms[0]"),
         "rooms[0]: unknown room `lobby`: expected one of dashboard, conversations, campaigns, erp, ai, alerts, presence or campaign:ID, conversation:ID, user:ID"),
        (r#"{"event_type": "X", "timestamp": "noon"}"#, 422, "unprocessable", Some("timestamp"),
         "timestamp: input contains invalid characters"),
        (too_many_rooms.as_str(), 422, "unprocessable", Some("rooms"),
         "rooms: 101 rooms is over the limit of 100 per event"),
    ];
    for (body, status, code, field, message) in cases {
        let (got, reply) = server.post(Some(&op), body, None).await;
        assert_eq!(got, status, "{body}: {reply}");
        assert_eq!(reply["error"]["code"], code, "{body}");
        assert_eq!(reply["error"]["message"], message, "{body}");
        assert_eq!(reply["error"]["field"].as_str(), field, "{body}");
    }
    assert!(
        server.history("").await.is_empty(),
        "a rejected body stored something"
    );
}

#[tokio::test]
async fn a_batch_is_all_or_nothing_and_names_the_bad_event() {
    let server = TestServer::start().await;
    let batch = json!([message_sent("acme", "m1"), {"event_type": "MessageSent", "data": {"message_id": "m2", "status": "sent"}}]);
    let (status, reply) = server
        .post(Some(&server.operator("acme")), batch.to_string(), None)
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        reply["error"]["message"],
        "[1].data.to: required for MessageSent"
    );
    assert!(
        server.history("").await.is_empty(),
        "half a batch was stored"
    );
}

#[tokio::test]
async fn oversized_bodies_and_batches_get_413() {
    let server = TestServer::start().await;
    let op = server.operator("acme");
    let big = json!({"event_type": "X", "data": {"pad": "x".repeat(2 * 1024 * 1024)}});
    let (status, reply) = server.post(Some(&op), big.to_string(), None).await;
    assert_eq!(status, 413, "{reply}");
    assert_eq!(reply["error"]["code"], "payload_too_large");
    let many: Vec<_> = (0..1001).map(|i| custom("acme", "erp", i)).collect();
    let (status, reply) = server.post(Some(&op), json!(many).to_string(), None).await;
    assert_eq!(status, 413);
    assert_eq!(
        reply["error"]["message"],
        "batch of 1001 events is over the limit of 1000"
    );
}

#[tokio::test]
async fn a_retried_post_with_the_same_key_is_stored_once() {
    let server = TestServer::start().await;
    let op = server.operator("acme");
    let body = json!([message_sent("acme", "m1"), message_sent("acme", "m2")]).to_string();
    let (status, first) = server.post(Some(&op), body.clone(), Some("req-1")).await;
    assert_eq!((status, first["duplicate"].as_bool()), (201, Some(false)));
    let (status, again) = server.post(Some(&op), body.clone(), Some("req-1")).await;
    assert_eq!(status, 200);
    assert_eq!(again, json!({"ids": first["ids"], "duplicate": true}));
    assert_eq!(server.history("").await.len(), 2);

    // A per-event key works the same across requests (twice in one
    // batch is a 422: see strict_input).
    let keyed = json!({"event_type": "X", "idempotency_key": "evt-9", "data": {}});
    let a = server
        .publish(&op, json!([keyed, {"event_type": "X"}]))
        .await;
    let b = server.publish(&op, keyed.clone()).await;
    assert_eq!(b, vec![a[0]]);
    assert_eq!(server.history("").await.len(), 4);

    // Keys are per tenant.
    let other = server
        .publish(
            &server.operator("globex"),
            json!({"event_type": "X", "idempotency_key": "evt-9"}),
        )
        .await;
    assert_ne!(other[0], a[0]);
}

#[tokio::test]
async fn who_may_post_what() {
    let server = TestServer::start().await;
    let body = message_sent("acme", "m1").to_string();
    let (status, reply) = server.post(None, body.clone(), None).await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert_eq!(
        reply["error"]["message"],
        "missing `Authorization: Bearer <token>` header"
    );
    let (status, _) = server.post(Some("nonsense"), body.clone(), None).await;
    assert_eq!(status, 401);
    let (status, reply) = server
        .post(Some(&server.viewer("acme")), body.clone(), None)
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        reply["error"]["message"],
        "role viewer may not publish events"
    );
    let (status, reply) = server
        .post(Some(&server.operator("globex")), body.clone(), None)
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        reply["error"]["message"],
        "tenant_id: a token for tenant `globex` may not publish for tenant `acme`"
    );
    let (status, reply) = server
        .post(
            Some(&server.admin()),
            json!({"event_type": "X"}).to_string(),
            None,
        )
        .await;
    assert_eq!(
        (status, reply["error"]["field"].as_str()),
        (422, Some("tenant_id"))
    );
    let (status, _) = server.post(Some(&server.admin()), body, None).await;
    assert_eq!(status, 201);
    let service = server.token(Some("acme"), pytake::protocol::Role::Service);
    assert_eq!(
        server
            .post(Some(&service), message_sent("acme", "m2").to_string(), None)
            .await
            .0,
        201
    );
}
