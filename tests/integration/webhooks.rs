//! Webhook intake end to end: real payloads (the fixtures) posted to the
//! real endpoints, stored as jobs, turned into events by the workers and
//! seen by a WebSocket subscriber; and every refusal: bad or missing
//! signature or key (401, nothing stored), the handshake's wrong token
//! (403), an oversized body (413), a payload that is JSON but not the
//! source's schema (200, then a dead letter with the reason).

use std::time::{Duration, Instant};

use pytake::protocol::limits::MAX_BODY_BYTES;
use pytake::protocol::ServerFrame;
use reqwest::Method;
use serde_json::Value;

use crate::support::{rooms, TestServer};

const APP_SECRET: &str = "test-app-secret";
const VERIFY_TOKEN: &str = "test-verify-token";
const API_KEY: &str = "7A1E0B9C2D3F4E5A8B6C9D0E1F2A3B4C";

fn fixture(path: &str) -> String {
    let file = format!(
        "{}/tests/fixtures/webhooks/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn sign(body: &str) -> String {
    pytake::server::webhooks::whatsapp::signature(APP_SECRET, body.as_bytes())
}

async fn server() -> TestServer {
    TestServer::in_process(|s| {
        s.webhooks.whatsapp = Some(pytake::config::WhatsappSettings {
            app_secret: Some(APP_SECRET.into()),
            verify_token: Some(VERIFY_TOKEN.into()),
            tenants: [("106540352242922".to_string(), "acme".to_string())].into(),
            ..Default::default()
        });
        s.webhooks.evolution = Some(pytake::config::EvolutionSettings {
            api_key: Some(API_KEY.into()),
            tenants: [("acme-main".to_string(), "acme".to_string())].into(),
            ..Default::default()
        });
    })
    .await
}

async fn post(
    server: &TestServer,
    source: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/api/v1/webhooks/{source}", server.url))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.expect("POST");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn jobs(server: &TestServer) -> Vec<Value> {
    let (status, body) = server
        .get(Some(&server.admin()), "/api/v1/queue/jobs")
        .await;
    assert_eq!(status, 200, "{body}");
    body["jobs"].as_array().unwrap().clone()
}

/// Waits for the next `Event` frame (10 s at most).
async fn next_event(ws: &mut crate::support::ws::TestWs) -> pytake::protocol::Event {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, ws.recv())
            .await
            .expect("an event within 10 s");
        if let ServerFrame::Event(event) = frame {
            return event;
        }
    }
}

/// Polls a job until `status` (10 s at most).
async fn wait_status(server: &TestServer, id: i64, status: &str) -> Value {
    crate::queue::wait_job(server, id, status, |j| j["status"] == status).await
}

#[tokio::test]
async fn a_signed_whatsapp_message_reaches_a_websocket_subscriber() {
    let server = server().await;
    let (mut ws, _) = server
        .subscribed(&server.operator("acme"), rooms(&["conversations"]))
        .await;
    let body = fixture("whatsapp/text.json");
    let (status, reply) = post(
        &server,
        "whatsapp",
        &body,
        &[("x-hub-signature-256", &sign(&body))],
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["status"], "accepted");
    let mut types = Vec::new();
    for _ in 0..2 {
        let event = next_event(&mut ws).await;
        assert_eq!(event.tenant_id, "acme");
        types.push(event.event_type.clone());
        if event.event_type == "MessageReceived" {
            assert_eq!(
                event.data["message"], "Does it come in another color?",
                "{:?}",
                event.data
            );
        }
    }
    types.sort();
    assert_eq!(types, ["ConversationStarted", "MessageReceived"]);
    // Meta delivers again: stored once.
    let (status, _) = post(
        &server,
        "whatsapp",
        &body,
        &[("x-hub-signature-256", &sign(&body))],
    )
    .await;
    assert_eq!(status, 200);
    let id = jobs(&server).await[0]["id"].as_i64().unwrap();
    wait_status(&server, id, "done").await;
    assert_eq!(
        server.history("tenant_id=acme").await.len(),
        2,
        "a redelivery stores nothing new"
    );
}

#[tokio::test]
async fn statuses_become_sent_and_failed_with_the_whatsapp_error_code() {
    let server = server().await;
    let (mut ws, _) = server
        .subscribed(&server.operator("acme"), rooms(&["conversations"]))
        .await;
    let body = fixture("whatsapp/status_failed.json");
    let (status, _) = post(
        &server,
        "whatsapp",
        &body,
        &[("x-hub-signature-256", &sign(&body))],
    )
    .await;
    assert_eq!(status, 200);
    let failed = next_event(&mut ws).await;
    assert_eq!(failed.event_type, "MessageFailed");
    assert!(
        failed.data["error"]["code"].is_number(),
        "{:?}",
        failed.data
    );
}

#[tokio::test]
async fn an_evolution_message_reaches_a_websocket_subscriber() {
    let server = server().await;
    let (mut ws, _) = server
        .subscribed(&server.operator("acme"), rooms(&["conversations"]))
        .await;
    let body = fixture("evolution/messages_upsert.json");
    let (status, reply) = post(&server, "evolution", &body, &[]).await;
    assert_eq!(status, 200, "the body's apikey: {reply}");
    let mut types = Vec::new();
    for _ in 0..2 {
        types.push(next_event(&mut ws).await.event_type);
    }
    types.sort();
    assert_eq!(types, ["ConversationStarted", "MessageReceived"]);
}

#[tokio::test]
async fn refused_webhooks_store_nothing_and_say_why() {
    let server = server().await;
    let body = fixture("whatsapp/text.json");
    for (headers, why) in [
        (vec![], "missing"),
        (
            vec![("x-hub-signature-256", "sha256=00".to_string())],
            "malformed or mismatch",
        ),
        (
            vec![("x-hub-signature-256", sign("other body"))],
            "mismatch",
        ),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_ref())).collect();
        let (status, reply) = post(&server, "whatsapp", &body, &headers).await;
        assert_eq!(status, 401, "{why}: {reply}");
        assert!(!reply["error"]["message"].as_str().unwrap().is_empty());
    }
    let evo = fixture("evolution/messages_upsert.json").replace(API_KEY, "wrong-key");
    assert_eq!(post(&server, "evolution", &evo, &[]).await.0, 401);
    assert_eq!(
        post(&server, "evolution", &evo, &[("apikey", API_KEY)])
            .await
            .0,
        200,
        "the header counts"
    );
    assert_eq!(post(&server, "telegram", &body, &[]).await.0, 404);

    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(MAX_BODY_BYTES));
    let (status, _) = post(
        &server,
        "whatsapp",
        &huge,
        &[("x-hub-signature-256", &sign(&huge))],
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(
        jobs(&server).await.len(),
        1,
        "only the accepted Evolution body is stored"
    );

    let verify = |token: &str| {
        format!("/api/v1/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444")
    };
    let resp = reqwest::get(format!("{}{}", server.url, verify(VERIFY_TOKEN)))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.unwrap(), "1158201444");
    assert_eq!(server.get(None, &verify("guess")).await.0, 403);
}

#[tokio::test]
async fn json_that_is_not_the_sources_schema_is_accepted_then_dead_lettered() {
    let server = server().await;
    let unmapped = fixture("whatsapp/text.json").replace("106540352242922", "999999999999999");
    for body in [
        r#"{"object":"page","entry":[]}"#.to_string(),
        unmapped,
        "not json".to_string(),
    ] {
        let (status, reply) = post(
            &server,
            "whatsapp",
            &body,
            &[("x-hub-signature-256", &sign(&body))],
        )
        .await;
        assert_eq!(status, 200, "{reply}");
        let id = reply["job_id"].as_i64().unwrap();
        let dead = wait_status(&server, id, "dead").await;
        assert_eq!(dead["attempts"], 1, "not retried: {dead}");
        assert!(!dead["last_error"].as_str().unwrap().is_empty(), "{dead}");
    }
    let (_, dead) = server
        .call(
            Method::GET,
            Some(&server.admin()),
            "/api/v1/queue/jobs?status=dead",
            None,
        )
        .await;
    let reasons: Vec<&str> = dead["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["last_error"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("999999999999999")),
        "the unmapped id is named: {reasons:?}"
    );
    assert!(server.history("tenant_id=acme").await.is_empty());
}
