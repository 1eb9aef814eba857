//! Conversation transfer end to end (seed 002): over REST and as a
//! WebSocket `Transfer` frame, seen live in `user:{to}` and
//! `conversation:{id}`, replayed to a client resuming with `since`, kept
//! in `GET /api/v1/conversations/{id}`; the refusals; two nodes.

use pytake::protocol::{ClientFrame, Event, Subscription};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::services::{Postgres, Redis};
use crate::support::{rooms, Options, TestServer, TestWs};

const TRANSFERRED: &str = "ConversationTransferred";

async fn post_transfer(
    server: &TestServer,
    token: &str,
    path_and_query: &str,
    body: Value,
) -> (u16, Value) {
    server
        .call(Method::POST, Some(token), path_and_query, Some(body))
        .await
}

/// Asserts `event` is the transfer of `conversation` to `to`.
fn is_transfer(event: &Event, conversation: &str, from: Option<&str>, to: &str) {
    assert_eq!(event.event_type, TRANSFERRED, "{event:?}");
    assert_eq!(event.data["conversation_id"], conversation);
    assert_eq!(event.data["from_user"], json!(from));
    assert_eq!(event.data["to_user"], to);
    for room in [
        "conversations".to_string(),
        format!("conversation:{conversation}"),
        format!("user:{to}"),
    ] {
        assert!(event.rooms.contains(&room), "{room} missing: {event:?}");
    }
}

#[tokio::test]
async fn a_transfer_over_rest_reaches_the_assignee_the_conversation_and_a_resuming_client() {
    let server = TestServer::start().await;
    let operator = server.operator("acme");
    let (mut bob, _) = server.subscribed(&operator, rooms(&["user:bob"])).await;
    let (mut room, _) = server
        .subscribed(&operator, rooms(&["conversation:c1"]))
        .await;
    let (status, first) = post_transfer(
        &server,
        &operator,
        "/api/v1/conversations/c1/transfer",
        json!({"to_user": "bob", "note": "VIP customer"}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["seq"], 1);
    assert_eq!(first["from_user"], Value::Null);
    assert_eq!(first["by"], "test");
    let first_id = first["event_id"].as_i64().expect("the event is stored");
    let seen = bob.event().await;
    is_transfer(&seen, "c1", None, "bob");
    assert_eq!((seen.id, seen.tenant_id.as_str()), (first_id, "acme"));
    assert_eq!(seen.data["note"], "VIP customer");
    assert_eq!(room.event().await, seen);

    let (status, second) = post_transfer(
        &server,
        &operator,
        "/api/v1/conversations/c1/transfer",
        json!({"to_user": "carol"}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    let moved = room.event().await;
    is_transfer(&moved, "c1", Some("bob"), "carol");
    assert_eq!(moved.data["note"], Value::Null);

    // A client that was away resumes from before the first: both, in order.
    let mut back = server.ws("/ws").await;
    back.auth(&operator).await;
    back.subscribe(Subscription {
        rooms: vec!["conversations".into()],
        since: Some(first_id - 1),
        ..Subscription::default()
    })
    .await;
    assert_eq!(back.event().await, seen);
    assert_eq!(back.event().await, moved);

    let (status, conversation) = server
        .get(Some(&server.viewer("acme")), "/api/v1/conversations/c1")
        .await;
    assert_eq!(status, 200, "{conversation}");
    assert_eq!(conversation["conversation_id"], "c1");
    assert_eq!(conversation["tenant_id"], "acme");
    assert_eq!(conversation["assignee"], "carol");
    assert_eq!(conversation["assigned_at"], second["at"]);
    let transfers = conversation["transfers"].as_array().unwrap();
    assert_eq!(transfers.len(), 2);
    assert_eq!(transfers[0], first);
    assert_eq!(transfers[1]["from_user"], "bob");
    assert_eq!(transfers[1]["event_id"], moved.id);
    // Paging back from the newest: `before` = the first seq of a page.
    let viewer = server.viewer("acme");
    let (status, page) = server
        .get(Some(&viewer), "/api/v1/conversations/c1?limit=1")
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["transfers"][0]["seq"], 2);
    let (_, page) = server
        .get(Some(&viewer), "/api/v1/conversations/c1?limit=1&before=2")
        .await;
    assert_eq!(page["transfers"][0], first);
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("before=x", "before"),
    ] {
        let (status, body) = server
            .get(Some(&viewer), &format!("/api/v1/conversations/c1?{query}"))
            .await;
        assert_eq!(
            (status, &body["error"]["field"]),
            (400, &serde_json::json!(field)),
            "{body}"
        );
    }
    // History has them too.
    let history = server.history("rooms=user:bob&tenant_id=acme").await;
    assert_eq!(history, vec![seen]);
}

#[tokio::test]
async fn a_transfer_frame_is_stored_and_delivered_like_a_post() {
    let server = TestServer::start().await;
    let operator = server.operator("acme");
    let (mut dave, _) = server.subscribed(&operator, rooms(&["user:dave"])).await;
    // The sender follows the conversation: the event is its confirmation.
    let (mut sender, _) = server
        .subscribed(&operator, rooms(&["conversation:c2"]))
        .await;
    sender
        .send(ClientFrame::Transfer {
            conversation_id: "c2".into(),
            to_user: "dave".into(),
            note: Some("needs billing".into()),
            tenant_id: None,
        })
        .await;
    let seen = dave.event().await;
    is_transfer(&seen, "c2", None, "dave");
    assert_eq!(seen.data["note"], "needs billing");
    assert_eq!(sender.event().await, seen);
    // An admin names the tenant in the frame.
    let mut admin = server.ws("/ws").await;
    admin.auth(&server.admin()).await;
    admin
        .send(ClientFrame::Transfer {
            conversation_id: "c2".into(),
            to_user: "erin".into(),
            note: None,
            tenant_id: Some("acme".into()),
        })
        .await;
    is_transfer(&sender.event().await, "c2", Some("dave"), "erin");
    let (status, conversation) = server
        .get(Some(&operator), "/api/v1/conversations/c2")
        .await;
    assert_eq!(status, 200, "{conversation}");
    assert_eq!(conversation["assignee"], "erin");
    assert_eq!(conversation["transfers"][0]["event_id"], seen.id);
    assert_eq!(conversation["transfers"][1]["by"], "test");
}

#[tokio::test]
async fn refused_transfers_say_why_and_change_nothing() {
    let server = TestServer::start().await;
    let operator = server.operator("acme");
    let path = "/api/v1/conversations/c1/transfer";
    let (status, _) = post_transfer(&server, &operator, path, json!({"to_user": "bob"})).await;
    assert_eq!(status, 200);
    let cases: Vec<(String, &str, Value, u16, &str)> = vec![
        (
            operator.clone(),
            path,
            json!({"to_user": "bob"}),
            409,
            "already assigned to `bob`",
        ),
        (
            server.viewer("acme"),
            path,
            json!({"to_user": "carol"}),
            403,
            "role viewer",
        ),
        (operator.clone(), path, json!({}), 400, "to_user"),
        (
            operator.clone(),
            path,
            json!({"to_user": ""}),
            400,
            "to_user",
        ),
        (
            operator.clone(),
            path,
            json!({"to_user": "a b"}),
            400,
            "to_user",
        ),
        (
            operator.clone(),
            path,
            json!({"to_user": 7}),
            400,
            "to_user",
        ),
        (
            operator.clone(),
            path,
            json!({"to_user": "carol", "note": "x".repeat(1001)}),
            400,
            "note",
        ),
        (
            operator.clone(),
            path,
            json!({"to_user": "carol", "notes": "typo"}),
            400,
            "notes",
        ),
        // Another tenant's conversation: impossible with a tenant token.
        (
            operator.clone(),
            "/api/v1/conversations/c1/transfer?tenant_id=globex",
            json!({"to_user": "carol"}),
            403,
            "tenant `globex`",
        ),
        (
            operator.clone(),
            path,
            json!({"to_user": "carol", "tenant_id": "globex"}),
            403,
            "tenant `globex`",
        ),
        (
            server.admin(),
            path,
            json!({"to_user": "carol"}),
            400,
            "tenant_id",
        ),
        (
            operator.clone(),
            "/api/v1/conversations/c'1/transfer",
            json!({"to_user": "carol"}),
            400,
            "conversation_id",
        ),
    ];
    for (token, path, body, want, says) in cases {
        let (status, reply) = post_transfer(&server, &token, path, body.clone()).await;
        assert_eq!(status, want, "{body}: {reply}");
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(says),
            "{body}: `{message}` should say {says}"
        );
        if want == 400 && says != "tenant_id" {
            assert_eq!(reply["error"]["field"], says, "{body}: {reply}");
        }
    }
    // Not JSON at all.
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", server.url))
        .bearer_auth(&operator)
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // Nothing of the refused ones was stored.
    let (_, conversation) = server
        .get(Some(&operator), "/api/v1/conversations/c1")
        .await;
    assert_eq!(conversation["assignee"], "bob");
    assert_eq!(conversation["transfers"].as_array().unwrap().len(), 1);
    assert_eq!(
        server
            .history("event_types=ConversationTransferred")
            .await
            .len(),
        1
    );
    // An admin naming the tenant may; the same id in globex is unknown.
    let (status, _) = post_transfer(
        &server,
        &server.admin(),
        "/api/v1/conversations/c1/transfer?tenant_id=acme",
        json!({"to_user": "carol"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, reply) = server
        .get(Some(&server.operator("globex")), "/api/v1/conversations/c1")
        .await;
    assert_eq!(status, 404, "{reply}");
    let (status, _) = server
        .get(Some(&operator), "/api/v1/conversations/c1?tenant_id=globex")
        .await;
    assert_eq!(status, 403);
    let (status, reply) = server
        .get(Some(&server.admin()), "/api/v1/conversations/c1")
        .await;
    assert_eq!(
        (status, &reply["error"]["field"]),
        (400, &json!("tenant_id"))
    );
    let (status, _) = server.get(None, "/api/v1/conversations/c1").await;
    assert_eq!(status, 401);
}

/// Expects an `Error` frame with `code` whose message says `says`.
async fn refused(ws: &mut TestWs, code: &str, says: &str) {
    let (got, message) = ws.error().await;
    assert_eq!(got, code, "{message}");
    assert!(message.contains(says), "`{message}` should say {says}");
}

#[tokio::test]
async fn refused_transfer_frames_answer_errors_and_keep_the_connection() {
    let server = TestServer::start().await;
    let frame = |to: &str| ClientFrame::Transfer {
        conversation_id: "c3".into(),
        to_user: to.into(),
        note: None,
        tenant_id: None,
    };
    let mut viewer = server.ws("/ws").await;
    viewer.auth(&server.viewer("acme")).await;
    viewer.send(frame("bob")).await;
    refused(&mut viewer, "forbidden", "role viewer").await;
    viewer.alive().await;

    let mut operator = server.ws("/ws").await;
    operator.auth(&server.operator("acme")).await;
    operator.send(frame("")).await;
    refused(&mut operator, "bad_message", "payload.to_user").await;
    operator
        .send_json(json!({"message_type": "Transfer", "payload": {"conversation_id": "c3"}}))
        .await;
    refused(&mut operator, "bad_message", "to_user").await;
    operator.send(frame("bob")).await;
    operator.alive().await;
    operator.send(frame("bob")).await;
    refused(&mut operator, "conflict", "already assigned to `bob`").await;
    operator
        .send(ClientFrame::Transfer {
            conversation_id: "c3".into(),
            to_user: "carol".into(),
            note: None,
            tenant_id: Some("globex".into()),
        })
        .await;
    refused(&mut operator, "forbidden", "tenant `globex`").await;
    operator.alive().await;
    let mut admin = server.ws("/ws").await;
    admin.auth(&server.admin()).await;
    admin.send(frame("carol")).await;
    refused(&mut admin, "bad_message", "tenant_id").await;
    admin.alive().await;
    let (_, conversation) = server
        .get(Some(&server.operator("acme")), "/api/v1/conversations/c3")
        .await;
    assert_eq!(conversation["transfers"].as_array().unwrap().len(), 1);
}

/// Two nodes on one PostgreSQL and one Redis: a transfer posted on A is
/// live on B's subscriber and in B's answer; a transfer sent as a frame to
/// B to the same user conflicts with A's.
#[tokio::test]
async fn a_transfer_on_one_node_is_seen_on_another() {
    let test = "a_transfer_on_one_node_is_seen_on_another";
    let Some(store) = Postgres::database_or_skip(test).await else {
        return;
    };
    let Some(redis) = Redis::start_or_skip(test).await else {
        return;
    };
    let options = || Options::args(&["--store", &store, "--bus", &redis.url()]);
    let a = TestServer::start_with(options()).await;
    let b = TestServer::start_with(options()).await;
    let operator = a.operator("acme");
    let (mut on_b, _) = b.subscribed(&operator, rooms(&["user:bob"])).await;
    let (status, posted) = post_transfer(
        &a,
        &operator,
        "/api/v1/conversations/c9/transfer",
        json!({"to_user": "bob", "note": "from node A"}),
    )
    .await;
    assert_eq!(status, 200, "{posted}");
    let seen = on_b.event().await;
    is_transfer(&seen, "c9", None, "bob");
    assert_eq!(json!(seen.id), posted["event_id"]);
    let (status, conversation) = b.get(Some(&operator), "/api/v1/conversations/c9").await;
    assert_eq!(status, 200, "{conversation}");
    assert_eq!(conversation["assignee"], "bob");
    assert_eq!(conversation["transfers"][0], posted);
    on_b.send(ClientFrame::Transfer {
        conversation_id: "c9".into(),
        to_user: "bob".into(),
        note: None,
        tenant_id: None,
    })
    .await;
    refused(&mut on_b, "conflict", "already assigned").await;
    let (status, _) = post_transfer(
        &b,
        &operator,
        "/api/v1/conversations/c9/transfer",
        json!({"to_user": "carol"}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, conversation) = a.get(Some(&operator), "/api/v1/conversations/c9").await;
    assert_eq!(conversation["assignee"], "carol");
    assert_eq!(conversation["transfers"][1]["from_user"], "bob");
}
