//! Connection caps: server-wide, per tenant (at upgrade and after `Auth`)
//! and unauthenticated per address; the refusal, and the counts back down
//! after closes.

use pytake::protocol::ClientFrame;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::support::{Options, TestServer};

/// A WebSocket upgrade request made with plain HTTP, to read a refusal.
async fn attempt(server: &TestServer, path: &str) -> (u16, HeaderMap, Value) {
    attempt_from(server, path, None).await
}

/// [`attempt`] through a proxy that says it forwards `forwarded_for`.
async fn attempt_from(
    server: &TestServer,
    path: &str,
    forwarded_for: Option<&str>,
) -> (u16, HeaderMap, Value) {
    let mut request = reqwest::Client::new().get(format!("{}{path}", server.url));
    if let Some(client) = forwarded_for {
        request = request.header("x-forwarded-for", client);
    }
    let response = request
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .expect("upgrade request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Checks a refusal: 503, `Retry-After: 5`, and the cap named.
fn assert_refused(answer: (u16, HeaderMap, Value), setting: &str) {
    let (status, headers, body) = answer;
    assert_eq!(status, 503, "{body}");
    assert_eq!(headers["retry-after"], "5");
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(body["error"]["field"], format!("gateway.{setting}"));
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("the `[gateway] {setting}` cap")),
        "{message}"
    );
}

async fn caps(server: &TestServer) -> Value {
    server.get(None, "/health").await.1["caps"].clone()
}

#[tokio::test]
async fn the_server_wide_cap_refuses_upgrades_until_a_connection_closes() {
    let server = TestServer::start_with(Options::args(&["--max-connections", "2"])).await;
    let token = server.viewer("acme");
    let mut first = server.ws(&format!("/ws?token={token}")).await;
    first.welcome().await;
    let mut second = server.ws("/ws").await;
    second.auth(&server.admin()).await;
    assert_refused(
        attempt(&server, &format!("/ws?token={token}")).await,
        "max_connections",
    );
    assert_refused(attempt(&server, "/ws/dashboard").await, "max_connections");
    let health = caps(&server).await;
    assert_eq!(health["connections"], 2);
    assert_eq!(health["max_connections"], 2);
    assert_eq!(
        health["max_connections_per_tenant"], 2,
        "defaults to the server cap"
    );
    assert_eq!(health["tenants"]["acme"], 1);
    assert_eq!(health["refused"]["max_connections"], 2);

    drop(first);
    server.wait_for_health("/caps/connections", 1).await;
    let mut again = server.ws(&format!("/ws?token={token}")).await;
    again.welcome().await;
    drop((second, again));
    server.wait_for_health("/caps/connections", 0).await;
    let health = caps(&server).await;
    assert_eq!(health["tenants"], serde_json::json!({}));
    assert_eq!(health["unauthenticated"], 0);

    let metrics = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "pytake_connections_refused_total{cap=\"max_connections\"} 2",
        "pytake_connections_refused_total{cap=\"max_connections_per_tenant\"} 0",
        "pytake_connection_cap{cap=\"max_connections\"} 2",
        "pytake_connection_cap{cap=\"max_unauthenticated_per_address\"} 64",
        "pytake_connections_admitted 0",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
}

/// At upgrade a tenant's token is refused 503; after `Auth` by frame the
/// connection is closed 1013 "try again later". Other tenants and admin
/// tokens are not affected.
#[tokio::test]
async fn the_per_tenant_cap_refuses_at_upgrade_and_after_auth() {
    let server =
        TestServer::start_with(Options::args(&["--max-connections-per-tenant", "1"])).await;
    let acme = server.viewer("acme");
    let mut held = server.ws(&format!("/ws/dashboard?token={acme}")).await;
    held.welcome().await;
    assert_refused(
        attempt(&server, &format!("/ws?token={}", server.operator("acme"))).await,
        "max_connections_per_tenant",
    );
    let mut late = server.ws("/ws").await;
    late.send(ClientFrame::Auth {
        token: acme.clone(),
    })
    .await;
    let (frames, closed) = late.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (1013, "try again later")
    );
    let error = format!("{frames:?}");
    assert!(
        error.contains("Unavailable") || error.contains("unavailable"),
        "{error}"
    );
    assert!(
        error.contains("tenant `acme` already has 1 open"),
        "{error}"
    );

    drop(late);
    let mut globex = server
        .ws(&format!("/ws?token={}", server.viewer("globex")))
        .await;
    globex.welcome().await;
    let mut admin = server.ws(&format!("/ws?token={}", server.admin())).await;
    admin.welcome().await;
    server.wait_for_health("/caps/connections", 3).await;
    let health = caps(&server).await;
    assert_eq!(
        health["tenants"],
        serde_json::json!({"acme": 1, "globex": 1})
    );
    assert_eq!(health["refused"]["max_connections_per_tenant"], 2);

    drop(held);
    server.wait_for_health("/caps/connections", 2).await;
    let mut next = server.ws(&format!("/ws?token={acme}")).await;
    next.welcome().await;
}

/// Connections that have not authenticated count against their address;
/// authenticating frees the place.
#[tokio::test]
async fn unauthenticated_connections_are_capped_per_address() {
    let server =
        TestServer::start_with(Options::args(&["--max-unauthenticated-per-address", "2"])).await;
    let mut first = server.ws("/ws").await;
    let second = server.ws("/ws").await;
    assert_refused(
        attempt(&server, "/ws").await,
        "max_unauthenticated_per_address",
    );
    // A token at upgrade is not an unauthenticated connection.
    let mut with_token = server
        .ws(&format!("/ws?token={}", server.viewer("acme")))
        .await;
    with_token.welcome().await;
    assert_eq!(caps(&server).await["unauthenticated"], 2);

    first.auth(&server.viewer("acme")).await;
    assert_eq!(caps(&server).await["unauthenticated"], 1);
    let third = server.ws("/ws").await;
    assert_refused(
        attempt(&server, "/ws").await,
        "max_unauthenticated_per_address",
    );
    let health = caps(&server).await;
    assert_eq!(health["tenants"]["acme"], 2);
    assert_eq!(health["refused"]["max_unauthenticated_per_address"], 2);

    drop((first, second, third, with_token));
    server.wait_for_health("/caps/connections", 0).await;
    assert_eq!(caps(&server).await["unauthenticated"], 0);
}

/// Behind a reverse proxy every client's TCP address is the proxy's. With
/// the proxy in `--trusted-proxies`, each client counts under the address
/// the proxy forwards; from anyone else the header is ignored, so a client
/// cannot spread its connections over made-up addresses.
#[tokio::test]
async fn behind_a_trusted_proxy_each_client_counts_under_its_own_address() {
    use crate::support::ws::TestWs;
    let args = [
        "--max-unauthenticated-per-address",
        "1",
        "--trusted-proxies",
        "192.0.2.0/24,127.0.0.0/8",
    ];
    let server = TestServer::start_with(Options::args(&args)).await;
    let url = server.ws_url("/ws");
    let _a = TestWs::connect_with_header(&url, "x-forwarded-for", "203.0.113.1").await;
    let _b = TestWs::connect_with_header(&url, "x-forwarded-for", "203.0.113.2").await;
    assert_refused(
        attempt_from(&server, "/ws", Some("203.0.113.1")).await,
        "max_unauthenticated_per_address",
    );
    // A client's own claim left of the proxy's entry does not count.
    assert_refused(
        attempt_from(&server, "/ws", Some("198.51.100.7, 203.0.113.2")).await,
        "max_unauthenticated_per_address",
    );
    assert_eq!(caps(&server).await["unauthenticated"], 2);

    let untrusting =
        TestServer::start_with(Options::args(&["--max-unauthenticated-per-address", "1"])).await;
    let url = untrusting.ws_url("/ws");
    let _c = TestWs::connect_with_header(&url, "x-forwarded-for", "203.0.113.1").await;
    assert_refused(
        attempt_from(&untrusting, "/ws", Some("203.0.113.2")).await,
        "max_unauthenticated_per_address",
    );
}
