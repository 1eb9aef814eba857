//! The WebSocket protocol as a dashboard uses it.

use pytake::protocol::{ClientFrame, Role, ServerFrame, Subscription};
use serde_json::json;

use crate::support::{custom, message_sent, rooms, TestServer, TestWs};

#[tokio::test]
async fn auth_subscribe_receive_heartbeat_unsubscribe() {
    let server = TestServer::start().await;
    let mut ws = server.ws("/ws").await;
    let welcome = ws.auth(&server.viewer("acme")).await;
    assert_eq!(welcome.tenant_id.as_deref(), Some("acme"));
    assert_eq!(welcome.role, "viewer");
    assert!(welcome.rooms.is_empty());
    assert_eq!(welcome.limits.rate_limit_per_minute, 100);
    assert_eq!(welcome.limits.max_frame_bytes, 65536);

    let subscribed = ws.subscribe(rooms(&["dashboard", "erp"])).await;
    assert_eq!(subscribed.rooms, vec!["dashboard", "erp"]);
    assert_eq!(subscribed.tenant_id.as_deref(), Some("acme"));
    assert_eq!(subscribed.head, 0);

    let ids = server
        .publish(&server.operator("acme"), message_sent("acme", "wamid.1"))
        .await;
    let event = ws.event().await;
    assert_eq!(event.id, ids[0]);
    assert_eq!(event.event_type, "MessageSent");
    assert_eq!(event.tenant_id, "acme");
    assert_eq!(event.room, "dashboard");
    assert_eq!(event.data["message_id"], "wamid.1");

    ws.send(ClientFrame::Heartbeat).await;
    assert!(matches!(ws.recv().await, ServerFrame::HeartbeatAck { .. }));

    ws.send(ClientFrame::Unsubscribe {
        rooms: vec!["dashboard".into()],
    })
    .await;
    assert_eq!(
        ws.recv().await,
        ServerFrame::Unsubscribed {
            rooms: vec!["dashboard".into()]
        }
    );
    // A dashboard event, then an erp one: only the erp one may arrive.
    server
        .publish(&server.operator("acme"), custom("acme", "dashboard", 1))
        .await;
    let erp = server
        .publish(&server.operator("acme"), custom("acme", "erp", 2))
        .await;
    assert_eq!(ws.event().await.id, erp[0]);
}

#[tokio::test]
async fn envelope_has_message_type_payload_and_timestamp() {
    let server = TestServer::start().await;
    let mut ws = server.ws("/ws").await;
    ws.send_json(
        json!({"message_type": "Auth", "payload": {"token": server.admin()},
        "timestamp": "2026-01-01T00:00:00Z"}),
    )
    .await;
    let _ = ws.recv().await;
    ws.send_json(
        json!({"message_type": "Heartbeat", "payload": {}, "timestamp": "2026-01-01T00:00:00Z"}),
    )
    .await;
    // Read the raw text to check the envelope itself.
    let raw = ws.next_text().await;
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["message_type"], "HeartbeatAck");
    assert!(v["payload"]["server_time"].is_string());
    assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn token_at_upgrade_and_room_endpoint() {
    let server = TestServer::start().await;
    let mut by_query = server
        .ws(&format!("/ws/alerts?token={}", server.viewer("acme")))
        .await;
    let welcome = by_query.welcome().await;
    assert_eq!(welcome.rooms, vec!["alerts"]);

    let mut by_header = TestWs::connect_with_header(
        &server.ws_url("/ws/alerts"),
        "Authorization",
        &format!("Bearer {}", server.viewer("acme")),
    )
    .await;
    assert_eq!(by_header.welcome().await.rooms, vec!["alerts"]);

    let body = json!({"event_type": "SystemAlert", "tenant_id": "acme",
        "data": {"rule_id": "cpu", "condition": "SystemResourceUsage", "threshold": 80, "current_value": 93.5}});
    let ids = server.publish(&server.admin(), body).await;
    for ws in [&mut by_query, &mut by_header] {
        let event = ws.event().await;
        assert_eq!((event.id, event.room.as_str()), (ids[0], "alerts"));
    }
}

#[tokio::test]
async fn tenant_endpoint_gets_every_room_of_that_tenant_only() {
    let server = TestServer::start().await;
    let mut ws = server
        .ws(&format!("/ws/tenant/acme?token={}", server.viewer("acme")))
        .await;
    assert_eq!(ws.welcome().await.rooms, vec!["*"]);
    let admin = server.admin();
    server.publish(&admin, custom("globex", "erp", 1)).await;
    let a = server.publish(&admin, custom("acme", "erp", 2)).await;
    let b = server
        .publish(&admin, custom("acme", "campaign:C9", 3))
        .await;
    assert_eq!(ws.event().await.id, a[0]);
    assert_eq!(ws.event().await.id, b[0]);
}

#[tokio::test]
async fn event_type_filter_and_keyed_rooms() {
    let server = TestServer::start().await;
    let sub = Subscription {
        rooms: vec!["campaign:CAMP-7".into()],
        event_types: Some(vec!["CampaignUpdate".into()]),
        ..Subscription::default()
    };
    let (mut ws, _) = server.subscribed(&server.viewer("acme"), sub).await;
    let op = server.operator("acme");
    server
        .publish(&op, json!({"event_type": "CallEvent", "data": {"outcome": "busy", "campaign_id": "CAMP-7"}}))
        .await;
    server
        .publish(&op, json!({"event_type": "CampaignUpdate", "data": {"campaign_id": "CAMP-8", "event": "progress"}}))
        .await;
    let want = server
        .publish(&op, json!({"event_type": "CampaignUpdate", "data": {"campaign_id": "CAMP-7", "event": "progress"}}))
        .await;
    let event = ws.event().await;
    assert_eq!(event.id, want[0]);
    assert_eq!(event.rooms, vec!["campaigns", "campaign:CAMP-7"]);
}

#[tokio::test]
async fn an_event_in_two_joined_rooms_arrives_once() {
    let server = TestServer::start().await;
    let (mut ws, _) = server
        .subscribed(
            &server.viewer("acme"),
            rooms(&["dashboard", "conversations"]),
        )
        .await;
    let op = server.operator("acme");
    let first = server.publish(&op, message_sent("acme", "m1")).await;
    let second = server
        .publish(&op, custom("acme", "conversations", 2))
        .await;
    assert_eq!(ws.event().await.id, first[0]);
    assert_eq!(
        ws.event().await.id,
        second[0],
        "the first event was delivered twice"
    );
}

#[tokio::test]
async fn publish_over_websocket_goes_through_ingest() {
    let server = TestServer::start().await;
    let (mut watcher, _) = server
        .subscribed(&server.viewer("acme"), rooms(&["erp"]))
        .await;
    let mut op = server.ws("/ws").await;
    op.auth(&server.operator("acme")).await;
    op.send(ClientFrame::Publish {
        room: "erp".into(),
        event_type: "ERPCall".into(),
        data: json!({"provider": "sap", "endpoint": "/orders", "response_time": 120, "success": true}),
    })
    .await;
    let event = watcher.event().await;
    assert_eq!(event.event_type, "ERPCall");
    assert_eq!(event.tenant_id, "acme");
    assert_eq!(
        server.history("rooms=erp").await.len(),
        1,
        "published events are stored"
    );

    op.send(ClientFrame::Publish {
        room: "erp".into(),
        event_type: "ERPCall".into(),
        data: json!({"provider": "sap"}),
    })
    .await;
    let (code, message) = op.error().await;
    assert_eq!(code, "bad_message");
    assert_eq!(message, "payload.data.endpoint: required for ERPCall");

    let mut viewer = server.ws("/ws").await;
    viewer.auth(&server.token(Some("acme"), Role::Viewer)).await;
    viewer
        .send(ClientFrame::Publish {
            room: "erp".into(),
            event_type: "X".into(),
            data: json!({}),
        })
        .await;
    assert_eq!(
        viewer.error().await,
        ("forbidden".into(), "role viewer may not publish".into())
    );
}

#[tokio::test]
async fn subscribing_again_to_a_joined_room_keeps_it_live() {
    let server = TestServer::start().await;
    let op = server.operator("acme");
    let first = server.publish(&op, custom("acme", "dashboard", 1)).await;
    let mut ws = server
        .ws(&format!("/ws/dashboard?token={}", server.viewer("acme")))
        .await;
    ws.welcome().await;
    // Same room again, with since and then with a type filter.
    ws.subscribe(Subscription {
        since: Some(0),
        ..rooms(&["dashboard"])
    })
    .await;
    assert_eq!(ws.event().await.id, first[0]);
    let live = server.publish(&op, custom("acme", "dashboard", 2)).await;
    assert_eq!(ws.event().await.id, live[0], "re-subscribing left the room");
    ws.subscribe(Subscription {
        event_types: Some(vec!["MessageSent".into()]),
        ..rooms(&["dashboard"])
    })
    .await;
    server.publish(&op, custom("acme", "dashboard", 3)).await;
    let wanted = server.publish(&op, message_sent("acme", "m9")).await;
    assert_eq!(
        ws.event().await.id,
        wanted[0],
        "the new filter was not applied"
    );
}

#[tokio::test]
async fn subscriptions_are_capped() {
    let server = TestServer::start().await;
    let mut ws = server.ws("/ws").await;
    ws.auth(&server.viewer("acme")).await;
    let many: Vec<String> = (0..101).map(|i| format!("user:{i}")).collect();
    ws.send(ClientFrame::Subscription(Subscription {
        rooms: many,
        ..Subscription::default()
    }))
    .await;
    assert_eq!(
        ws.error().await.1,
        "payload.rooms: at most 100 rooms per subscription"
    );
    for batch in 0..2 {
        let names: Vec<String> = (0..100)
            .map(|i| format!("user:{}", batch * 100 + i))
            .collect();
        ws.subscribe(Subscription {
            rooms: names,
            ..Subscription::default()
        })
        .await;
    }
    let names: Vec<String> = (200..260).map(|i| format!("user:{i}")).collect();
    ws.send(ClientFrame::Subscription(Subscription {
        rooms: names,
        ..Subscription::default()
    }))
    .await;
    assert_eq!(
        ws.error().await.1,
        "payload.rooms: a connection may join at most 256 rooms; unsubscribe first"
    );
    let types: Vec<String> = (0..33).map(|i| format!("T{i}")).collect();
    ws.send(ClientFrame::Subscription(Subscription {
        event_types: Some(types),
        ..rooms(&["erp"])
    }))
    .await;
    assert_eq!(ws.error().await.1, "payload.event_types: at most 32 types");
}

#[tokio::test]
async fn a_plain_get_on_the_gateway_is_told_what_the_upgrade_lacks() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    let url = format!("{}/ws", server.url);
    let plain = client.get(&url).send().await.unwrap();
    assert_eq!(plain.status().as_u16(), 400);
    let body: serde_json::Value = plain.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "not a WebSocket upgrade: Connection header did not include 'upgrade'"
    );
    let no_key = client
        .get(&url)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status().as_u16(), 400);
    let body: serde_json::Value = no_key.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "not a WebSocket upgrade: `Sec-WebSocket-Key` header missing"
    );
    let post = client.post(&url).send().await.unwrap();
    assert_eq!(post.status().as_u16(), 405);
    assert_eq!(post.headers()["allow"], "GET,HEAD");
}
