//! Authentication and tenant isolation on the WebSocket gateway.

use std::time::Duration;

use pytake::auth::{unix_now, Keys};
use pytake::protocol::{Claims, Role, ServerFrame, Subscription};

use crate::support::{custom, rooms, Options, TestServer};

#[tokio::test]
async fn no_auth_within_the_timeout_closes_4001() {
    let server = TestServer::start_with(Options::args(&["--auth-timeout", "300ms"])).await;
    let mut ws = server.ws("/ws").await;
    let (frames, closed) = ws.closed().await;
    assert_eq!(closed.code, 4001, "{closed:?}");
    assert!(
        matches!(&frames[..], [ServerFrame::Error(e)] if e.message == "no Auth within 300ms"),
        "{frames:?}"
    );
}

#[tokio::test]
async fn bad_tokens_close_4001_with_the_reason() {
    let server = TestServer::start().await;
    let now = unix_now();
    let expired = server.keys().mint(&Claims {
        sub: "t".into(),
        tenant_id: Some("acme".into()),
        role: Role::Viewer,
        iat: now - 7200,
        exp: now - 3600,
        nbf: None,
        aud: None,
        iss: None,
    });
    let foreign = Keys::new(b"another secret").mint_for(
        "t",
        Some("acme"),
        Role::Viewer,
        Duration::from_secs(60),
    );
    // {"alg":"none"} with admin claims and no signature.
    let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4Iiwicm9sZSI6ImFkbWluIiwiZXhwIjo0MTAyNDQ0ODAwLCJpYXQiOjB9.";
    for (token, reason) in [
        (expired.as_str(), "token expired"),
        (
            foreign.as_str(),
            "token signature does not match this server's secret",
        ),
        (none, "token algorithm `none` is not accepted (only HS256)"),
        (
            "garbage",
            "token is malformed: expected three dot-separated parts (header.payload.signature), found 1",
        ),
    ] {
        // As an Auth frame...
        let mut ws = server.ws("/ws").await;
        ws.send(pytake::protocol::ClientFrame::Auth {
            token: token.into(),
        })
        .await;
        let (frames, closed) = ws.closed().await;
        assert_eq!(closed.code, 4001);
        assert!(
            matches!(&frames[..], [ServerFrame::Error(e)] if e.message == reason),
            "{frames:?} for {reason}"
        );
        // ... and at upgrade.
        let mut ws = server.ws(&format!("/ws?token={token}")).await;
        assert_eq!(ws.closed().await.1.code, 4001);
    }
}

#[tokio::test]
async fn frames_before_auth_are_refused_politely() {
    let server = TestServer::start().await;
    let mut ws = server.ws("/ws").await;
    ws.send(pytake::protocol::ClientFrame::Subscription(rooms(&[
        "dashboard",
    ])))
    .await;
    assert_eq!(
        ws.error().await,
        ("unauthorized".into(), "send Auth first".into())
    );
    ws.alive().await;
    ws.auth(&server.viewer("acme")).await;
}

#[tokio::test]
async fn another_tenants_rooms_are_forbidden_and_nothing_leaks() {
    let server = TestServer::start().await;
    let mut ws = server.ws("/ws").await;
    ws.auth(&server.viewer("acme")).await;
    ws.send(pytake::protocol::ClientFrame::Subscription(Subscription {
        rooms: vec!["dashboard".into()],
        tenant_id: Some("globex".into()),
        ..Subscription::default()
    }))
    .await;
    assert_eq!(
        ws.error().await,
        (
            "forbidden".into(),
            "this token may not see tenant `globex`".into()
        )
    );
    ws.subscribe(rooms(&["dashboard"])).await;

    let admin = server.admin();
    server
        .publish(&admin, custom("globex", "dashboard", 1))
        .await;
    let own = server.publish(&admin, custom("acme", "dashboard", 2)).await;
    let event = ws.event().await;
    assert_eq!(
        (event.id, event.tenant_id.as_str()),
        (own[0], "acme"),
        "globex event leaked"
    );

    let mut other = server
        .ws(&format!(
            "/ws/tenant/globex?token={}",
            server.viewer("acme")
        ))
        .await;
    let (frames, closed) = other.closed().await;
    assert_eq!(closed.code, 4003);
    assert!(matches!(&frames[..], [ServerFrame::Error(e)] if e.code.to_string() == "forbidden"));
}

#[tokio::test]
async fn admins_see_every_tenant_or_pick_one() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (mut all, _) = server.subscribed(&admin, rooms(&["erp"])).await;
    let (mut one, sub) = server
        .subscribed(
            &admin,
            Subscription {
                tenant_id: Some("globex".into()),
                ..rooms(&["erp"])
            },
        )
        .await;
    assert_eq!(sub.tenant_id.as_deref(), Some("globex"));
    let a = server.publish(&admin, custom("acme", "erp", 1)).await;
    let g = server.publish(&admin, custom("globex", "erp", 2)).await;
    assert_eq!(all.event().await.id, a[0]);
    assert_eq!(all.event().await.id, g[0]);
    assert_eq!(one.event().await.id, g[0]);
}

#[tokio::test]
async fn a_connection_is_closed_when_its_token_expires() {
    let server = TestServer::start().await;
    let now = unix_now();
    let short = server.keys().mint(&Claims {
        sub: "t".into(),
        tenant_id: Some("acme".into()),
        role: Role::Viewer,
        iat: now,
        exp: now + 1,
        nbf: None,
        aud: None,
        iss: None,
    });
    let mut ws = server.ws("/ws").await;
    ws.auth(&short).await;
    let (frames, closed) = ws.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (4001, "token expired")
    );
    assert!(
        matches!(&frames[..], [ServerFrame::Error(e)] if e.message == "token expired: reconnect with a fresh token")
    );
}

#[tokio::test]
async fn a_token_whose_tenant_is_not_a_tenant_id_is_refused() {
    let server = TestServer::start().await;
    let sneaky = server
        .keys()
        .mint_for("t", Some("*"), Role::Viewer, Duration::from_secs(60));
    let mut ws = server.ws("/ws").await;
    ws.send(pytake::protocol::ClientFrame::Auth { token: sneaky })
        .await;
    assert_eq!(ws.closed().await.1.code, 4001);
}
