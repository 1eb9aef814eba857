//! Presence and typing on one node, in process so the grace period and the
//! typing expiry move with tokio's clock: several tabs of one user, the
//! grace period after the last closes, typing relayed to the others of a
//! conversation (never the typist), its de-duplication and expiry, and bad
//! input answered with an `Error` naming the field.

use std::time::Duration;

use pytake::protocol::presence::{PresenceChange, PresenceList, Status, TypingChange};
use pytake::protocol::{ClientFrame, Role, ServerFrame};

use crate::alerts::jump;
use crate::support::ws::TestWs;
use crate::support::{custom, rooms, TestServer};

/// The grace period of these tests: long enough that the real time a test
/// spends between two jumps never ends it.
const GRACE: Duration = Duration::from_secs(60);

async fn server() -> TestServer {
    TestServer::in_process(|s| {
        s.gateway.presence_grace = GRACE;
        // The jumps must not close quiet test sockets.
        s.gateway.idle_timeout = Duration::from_secs(24 * 3600);
        s.gateway.ping_interval = Duration::from_secs(12 * 3600);
    })
    .await
}

fn token(server: &TestServer, user: &str, tenant: &str) -> String {
    server.keys().mint_for(
        user,
        Some(tenant),
        Role::Operator,
        Duration::from_secs(48 * 3600),
    )
}

/// A connection of `user`, authenticated (and so online).
async fn tab(server: &TestServer, user: &str, tenant: &str) -> TestWs {
    let mut ws = server.ws("/ws").await;
    ws.auth(&token(server, user, tenant)).await;
    ws
}

/// The next `Presence` frame.
async fn presence(ws: &mut TestWs) -> PresenceChange {
    match ws.recv().await {
        ServerFrame::Presence(p) => serde_json::from_value(p).expect("a presence payload"),
        other => panic!("expected Presence, got {other:?}"),
    }
}

/// The next `Typing` frame.
async fn typing(ws: &mut TestWs) -> TypingChange {
    match ws.recv().await {
        ServerFrame::Typing(t) => serde_json::from_value(t).expect("a typing payload"),
        other => panic!("expected Typing, got {other:?}"),
    }
}

async fn list(server: &TestServer, token: &str, query: &str) -> PresenceList {
    let (status, body) = server
        .get(Some(token), &format!("/api/v1/presence{query}"))
        .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).expect("a presence list")
}

/// A watcher of acme's `presence` room that is nobody's presence itself
/// (an admin token has no tenant).
async fn watcher(server: &TestServer) -> TestWs {
    let mut sub = rooms(&["presence"]);
    sub.tenant_id = Some("acme".into());
    server.subscribed(&server.admin(), sub).await.0
}

#[tokio::test]
async fn two_tabs_keep_a_user_online_until_both_close_and_the_grace_passes() {
    let server = server().await;
    let mut watch = watcher(&server).await;

    let tab1 = tab(&server, "alice", "acme").await;
    let p = presence(&mut watch).await;
    assert_eq!(
        (
            p.tenant_id.as_str(),
            p.user_id.as_str(),
            p.status,
            p.connections,
            p.online_count
        ),
        ("acme", "alice", Status::Online, 1, 1)
    );
    let tab2 = tab(&server, "alice", "acme").await;
    assert_eq!(presence(&mut watch).await.connections, 2);
    let _bob = tab(&server, "bob", "acme").await;
    let p = presence(&mut watch).await;
    assert_eq!((p.user_id.as_str(), p.online_count), ("bob", 2));

    drop(tab1);
    let p = presence(&mut watch).await;
    assert_eq!(
        (p.user_id.as_str(), p.status, p.connections),
        ("alice", Status::Online, 1),
        "one tab left: still online"
    );
    drop(tab2);
    // The watcher and bob: the server saw the tab close (the grace runs).
    server.wait_for_subscribers(2).await;
    // The last tab closed: nothing yet, and the listing still shows her.
    jump(GRACE / 2).await;
    watch.alive().await;
    let listed = list(&server, &server.admin(), "?tenant_id=acme").await;
    assert_eq!(listed.online_count, 2);
    // This node's share: alice (in her grace) and bob; no one typing.
    let scrape = crate::support::metrics::scrape(&server).await;
    assert_eq!(scrape.get("pytake_presence_users"), 2.0);
    assert_eq!(scrape.get("pytake_presence_typing"), 0.0);
    let alice = &listed.users[0];
    assert_eq!((alice.user_id.as_str(), alice.connections), ("alice", 1));

    jump(GRACE / 2 + Duration::from_secs(1)).await;
    let p = presence(&mut watch).await;
    assert_eq!(
        (p.user_id.as_str(), p.status, p.connections, p.online_count),
        ("alice", Status::Offline, 0, 1)
    );
    let listed = list(&server, &token(&server, "carol", "acme"), "").await;
    let names: Vec<&str> = listed.users.iter().map(|u| u.user_id.as_str()).collect();
    // carol's REST call is no connection: bob alone is online.
    assert_eq!(names, ["bob"]);
}

#[tokio::test]
async fn a_reload_within_the_grace_period_does_not_flap() {
    let server = server().await;
    let mut watch = watcher(&server).await;
    let tab1 = tab(&server, "alice", "acme").await;
    assert_eq!(presence(&mut watch).await.status, Status::Online);
    drop(tab1);
    server.wait_for_subscribers(1).await;
    watch.alive().await;
    jump(GRACE - Duration::from_secs(5)).await;
    let mut again = tab(&server, "alice", "acme").await;
    // A status change is the next frame: the reload announced nothing.
    again
        .send(ClientFrame::Presence {
            status: "away".into(),
        })
        .await;
    let p = presence(&mut watch).await;
    assert_eq!((p.status, p.connections), (Status::Away, 1));
    jump(GRACE).await;
    watch.alive().await;
    let listed = list(&server, &server.admin(), "?tenant_id=acme").await;
    assert_eq!(
        listed.users[0].status,
        Status::Away,
        "still online after the grace"
    );
}

#[tokio::test]
async fn presence_listing_is_scoped_like_every_api() {
    let server = server().await;
    let _a = tab(&server, "alice", "acme").await;
    let _g = tab(&server, "gus", "globex").await;
    let acme = token(&server, "bob", "acme");
    let all = list(&server, &server.admin(), "").await;
    let who: Vec<(&str, &str)> = all
        .users
        .iter()
        .map(|u| (u.tenant_id.as_str(), u.user_id.as_str()))
        .collect();
    assert_eq!(who, [("acme", "alice"), ("globex", "gus")]);
    assert_eq!(all.tenant_id, None);
    assert_eq!(
        list(&server, &acme, "").await.tenant_id.as_deref(),
        Some("acme")
    );
    let (status, body) = server
        .get(Some(&acme), "/api/v1/presence?tenant_id=globex")
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = server
        .get(Some(&acme), "/api/v1/presence?tenant=acme")
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("tenant"), "{body}");
    let (status, _) = server.get(None, "/api/v1/presence").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_bad_status_is_an_error_naming_the_field_and_the_connection_stays() {
    let server = server().await;
    let mut ws = tab(&server, "alice", "acme").await;
    ws.send(ClientFrame::Presence {
        status: "sleeping".into(),
    })
    .await;
    let (code, message) = ws.error().await;
    assert_eq!(code, "bad_message");
    assert!(
        message.starts_with("payload.status: unknown status `sleeping`"),
        "{message}"
    );
    ws.send(ClientFrame::Presence {
        status: "offline".into(),
    })
    .await;
    assert!(ws.error().await.1.starts_with("payload.status"));
    ws.send_json(serde_json::json!({"message_type": "Presence", "payload": {"state": "away"}}))
        .await;
    assert!(ws.error().await.1.contains("payload"));
    ws.alive().await;
    // An admin without a tenant is nobody's presence.
    let mut admin = server.ws("/ws").await;
    admin.auth(&server.admin()).await;
    admin
        .send(ClientFrame::Presence {
            status: "busy".into(),
        })
        .await;
    let (code, message) = admin.error().await;
    assert_eq!(code, "forbidden");
    assert!(message.starts_with("payload.status"), "{message}");
    admin.alive().await;
}

/// Two agents in a conversation of acme (it has an event in its room).
async fn conversation(server: &TestServer) -> (TestWs, TestWs) {
    server
        .publish(&server.admin(), custom("acme", "conversation:c1", 1))
        .await;
    let mut alice = tab(server, "alice", "acme").await;
    alice.subscribe(rooms(&["conversation:c1"])).await;
    let mut bob = tab(server, "bob", "acme").await;
    bob.subscribe(rooms(&["conversation:c1"])).await;
    (alice, bob)
}

fn typing_frame(conversation: &str, on: bool) -> ClientFrame {
    ClientFrame::Typing {
        conversation_id: conversation.into(),
        typing: on,
    }
}

#[tokio::test]
async fn typing_goes_to_the_others_once_a_second_and_ends_by_itself() {
    let server = server().await;
    let (mut alice, mut bob) = conversation(&server).await;

    alice.send(typing_frame("c1", true)).await;
    let t = typing(&mut bob).await;
    assert_eq!(
        (t.conversation_id.as_str(), t.user_id.as_str(), t.typing),
        ("c1", "alice", true)
    );
    // Not to the typist; a repeat within the second is not sent on.
    alice.send(typing_frame("c1", true)).await;
    alice.alive().await;
    bob.alive().await;

    // Paused: the state, last refreshed now, ends 10 s later.
    jump(Duration::from_secs(9)).await;
    bob.alive().await;
    jump(Duration::from_secs(2)).await;
    let t = typing(&mut bob).await;
    assert_eq!((t.user_id.as_str(), t.typing), ("alice", false));
    alice.alive().await;

    // An explicit stop is sent on; a stop with nothing to stop is not.
    alice.send(typing_frame("c1", true)).await;
    assert!(typing(&mut bob).await.typing);
    alice.send(typing_frame("c1", false)).await;
    assert!(!typing(&mut bob).await.typing);
    alice.send(typing_frame("c1", false)).await;
    alice.alive().await;
    bob.alive().await;

    // A connection that closes while typing stops typing.
    alice.send(typing_frame("c1", true)).await;
    assert!(typing(&mut bob).await.typing);
    drop(alice);
    let t = typing(&mut bob).await;
    assert_eq!((t.user_id.as_str(), t.typing), ("alice", false));
}

#[tokio::test]
async fn typing_in_a_conversation_the_tenant_does_not_own_is_refused() {
    let server = server().await;
    let (mut alice, mut bob) = conversation(&server).await;
    server
        .publish(&server.admin(), custom("globex", "conversation:g1", 1))
        .await;
    for (conversation, problem) in [
        ("g1", "tenant `acme` has no conversation `g1`"),
        ("nope", "tenant `acme` has no conversation `nope`"),
        ("a b", "bad room key"),
    ] {
        alice.send(typing_frame(conversation, true)).await;
        let (code, message) = alice.error().await;
        assert_eq!(code, "bad_message");
        assert!(
            message.starts_with("payload.conversation_id: "),
            "{message}"
        );
        assert!(message.contains(problem), "{message}");
    }
    alice.alive().await;
    bob.alive().await;

    // An admin types in the one tenant that has the conversation.
    let mut admin = server.ws("/ws").await;
    admin.auth(&server.admin()).await;
    admin.send(typing_frame("c1", true)).await;
    let t = typing(&mut bob).await;
    assert_eq!((t.user_id.as_str(), t.typing), ("test", true));
    server
        .publish(&server.admin(), custom("globex", "conversation:c1", 2))
        .await;
    admin.send(typing_frame("c2", true)).await;
    assert!(admin
        .error()
        .await
        .1
        .contains("no tenant has a conversation `c2`"));
}

/// Typing counts against the connection's message rate like any frame.
#[tokio::test]
async fn a_typing_flood_is_rate_limited() {
    let server = TestServer::in_process(|s| s.gateway.rate_limit = 5).await;
    let mut ws = server.ws("/ws").await;
    ws.auth(&server.token(Some("acme"), Role::Operator)).await;
    server
        .publish(&server.admin(), custom("acme", "conversation:c1", 1))
        .await;
    for _ in 0..5 {
        ws.send(typing_frame("c1", true)).await;
    }
    ws.send(typing_frame("c1", true)).await;
    let frame = ws.recv().await;
    let ServerFrame::Error(e) = frame else {
        panic!("expected a rate-limit error, got {frame:?}")
    };
    assert_eq!(e.code.to_string(), "rate_limited");
}
