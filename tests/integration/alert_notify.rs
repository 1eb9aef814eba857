//! Alert notifications (`alert.notify` jobs) from a real `pytake serve`
//! to real peers on loopback: an HTTP server standing in for Slack and
//! the generic webhook's receiver, aiosmtpd for email, and a port that
//! refuses connections for a peer that is down. Retries are made fast by
//! the config's `[queue]` settings; every wait is a condition with a
//! deadline.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::Router;
use reqwest::Method;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::queue::wait_job;
use crate::support::smtp::SmtpSink;
use crate::support::{pytake, Options, TestServer};

const SLACK_PATH: &str = "/services/T0/B0/sl4ck";
const HOOK_PATH: &str = "/hook";

/// What a peer received: the path, the headers, the body as JSON.
type Received = Vec<(String, HeaderMap, Value)>;

/// An HTTP server on loopback that answers with `statuses` in turn, then
/// 200, and keeps every request.
struct Peer {
    base: String,
    received: Arc<Mutex<Received>>,
}

impl Peer {
    async fn start(statuses: &[u16]) -> Peer {
        let answers = Arc::new(Mutex::new(
            statuses.iter().copied().collect::<VecDeque<_>>(),
        ));
        let received = Arc::new(Mutex::new(Vec::new()));
        let kept = received.clone();
        let app = Router::new().fallback(move |request: Request| {
            let (answers, kept) = (answers.clone(), kept.clone());
            async move {
                let path = request.uri().to_string();
                let headers = request.headers().clone();
                let body = axum::body::to_bytes(request.into_body(), 1 << 20)
                    .await
                    .unwrap();
                let body: Value = serde_json::from_slice(&body).unwrap();
                kept.lock().unwrap().push((path, headers, body));
                let status = answers.lock().unwrap().pop_front().unwrap_or(200);
                (StatusCode::from_u16(status).unwrap(), "peer says no")
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Peer { base, received }
    }

    fn received(&self) -> Received {
        self.received.lock().unwrap().clone()
    }
}

/// A config file with fast retries and the channels given.
fn config(dir: &TempDir, channels: &str) -> PathBuf {
    let path = dir.path().join("pytake.toml");
    let text = format!(
        "[queue]\nretry_base = \"50ms\"\nretry_cap = \"100ms\"\nhttp_timeout = \"5s\"\n\n{channels}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

async fn serve(config: &std::path::Path) -> TestServer {
    TestServer::start_with(Options::args(&["--config", config.to_str().unwrap()])).await
}

/// The payload of a firing incident's notification to `channel`.
fn notification(channel: &str) -> Value {
    json!({
        "channel": channel,
        "reason": "firing",
        "incident": {
            "id": "inc-1", "correlation_id": "corr-7f3a", "tenant_id": "acme",
            "state": "firing", "opened_at": "2026-12-03T16:01:00Z",
            "last_fired_at": "2026-12-03T16:01:00Z", "notifications": 1,
            "alert_ids": ["al-1"]
        },
        "alerts": [{
            "id": "al-1", "rule_id": "high_failure_rate",
            "rule_name": "High message failure rate",
            "condition": "MessageFailureRate", "comparator": ">", "threshold": 5.0,
            "severity": "critical", "tenant_id": "acme", "state": "firing",
            "current_value": 7.5, "pending_since": "2026-12-03T16:00:00Z",
            "fired_at": "2026-12-03T16:01:00Z", "incident_id": "inc-1", "silenced": false
        }],
        "windows": {"high_failure_rate": "5m"}
    })
}

/// Enqueues a notification as an admin; its job id.
async fn enqueue(server: &TestServer, payload: Value, max_attempts: u32) -> i64 {
    let (status, job) = server
        .call(
            Method::POST,
            Some(&server.admin()),
            "/api/v1/queue/jobs",
            Some(json!({"kind": "alert.notify", "payload": payload, "max_attempts": max_attempts})),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    job["id"].as_i64().unwrap()
}

/// A loopback port that refuses connections while the socket lives.
fn refusing_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

#[tokio::test]
async fn slack_and_the_webhook_receive_the_incident() {
    let peer = Peer::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        &dir,
        &format!(
            "[slack]\nwebhook_url = \"{0}{SLACK_PATH}\"\n\n[alerts]\nwebhook_url = \"{0}{HOOK_PATH}?token=t0ken\"\n",
            peer.base
        ),
    );
    let server = serve(&path).await;
    for channel in ["slack", "webhook", "websocket"] {
        let id = enqueue(&server, notification(channel), 3).await;
        let done = wait_job(&server, id, "done", |j| j["status"] == "done").await;
        assert_eq!(done["attempts"], 1, "{done}");
    }
    let received = peer.received();
    assert_eq!(
        received.len(),
        2,
        "nothing is sent for the websocket channel"
    );

    let (path, headers, body) = &received[0];
    assert_eq!(path, SLACK_PATH);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        body,
        &json!({
            "text": "[FIRING] critical: High message failure rate (acme)",
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn",
                    "text": "*FIRING: incident inc-1 of tenant acme, 1 alert, severity critical*"}},
                {"type": "section", "text": {"type": "mrkdwn",
                    "text": "• *High message failure rate*: 7.5% (threshold &gt; 5%), MessageFailureRate over 5m; critical, firing since 2026-12-03T16:01:00Z"}},
                {"type": "context", "elements": [{"type": "mrkdwn",
                    "text": "correlation id `corr-7f3a` · opened `2026-12-03T16:01:00Z`"}]}
            ]
        })
    );

    let (path, headers, body) = &received[1];
    assert_eq!(path, &format!("{HOOK_PATH}?token=t0ken"));
    assert_eq!(headers["x-pytake-correlation-id"], "corr-7f3a");
    assert_eq!(body, &notification("webhook"));
    assert!(
        headers["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("pytake/"),
        "{headers:?}"
    );
}

#[tokio::test]
async fn a_peer_that_fails_twice_is_retried_until_it_answers() {
    let peer = Peer::start(&[500, 500]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        &dir,
        &format!("[slack]\nwebhook_url = \"{}{SLACK_PATH}\"\n", peer.base),
    );
    let server = serve(&path).await;
    let id = enqueue(&server, notification("slack"), 3).await;
    let done = wait_job(&server, id, "done", |j| j["status"] == "done").await;
    assert_eq!(done["attempts"], 3, "{done}");
    let received = peer.received();
    assert_eq!(received.len(), 3);
    assert!(
        received.iter().all(|(_, _, body)| *body == received[2].2),
        "every attempt sends the same message"
    );
}

#[tokio::test]
async fn a_peer_that_is_down_leaves_a_dead_job_naming_its_host_only() {
    let (_socket, port) = refusing_port();
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        &dir,
        &format!("[slack]\nwebhook_url = \"http://127.0.0.1:{port}{SLACK_PATH}\"\n"),
    );
    let server = serve(&path).await;
    let id = enqueue(&server, notification("slack"), 2).await;
    let dead = wait_job(&server, id, "dead", |j| j["status"] == "dead").await;
    let error = dead["last_error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("cannot reach 127.0.0.1:{port}: "))
            && error.ends_with("(attempt 2 of 2)"),
        "{error}"
    );
    assert!(!error.contains("sl4ck"), "{error}");

    // The operator's view of dead letters says the same.
    let run = pytake(
        &[
            "queue",
            "dead",
            "-o",
            "json",
            "--server",
            &server.url,
            "--token",
            &server.admin(),
        ],
        server.path(),
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let listed: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(listed["jobs"][0]["id"], id);
    assert_eq!(listed["jobs"][0]["last_error"], error);
    assert!(!server.log().contains("sl4ck"), "{}", server.log());
}

#[tokio::test]
async fn a_channel_this_node_lacks_is_dead_with_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&config(&dir, "")).await;
    for (channel, reason) in [
        (
            "email",
            "the email channel is not configured on this node: set [smtp] host and to",
        ),
        (
            "slack",
            "the slack channel is not configured on this node: set [slack] webhook_url (or webhook_url_file)",
        ),
        (
            "webhook",
            "the webhook channel is not configured on this node: set [alerts] webhook_url",
        ),
    ] {
        let id = enqueue(&server, notification(channel), 3).await;
        let dead = wait_job(&server, id, "dead", |j| j["status"] == "dead").await;
        assert_eq!(
            (dead["last_error"].as_str(), dead["attempts"].as_u64()),
            (Some(reason), Some(1)),
            "{dead}"
        );
    }
}

#[tokio::test]
async fn notifications_are_checked_and_an_admins_at_enqueue() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&config(&dir, "")).await;
    let body = json!({"kind": "alert.notify", "payload": notification("slack")});
    let (status, reply) = server
        .call(
            Method::POST,
            Some(&server.operator("acme")),
            "/api/v1/queue/jobs",
            Some(body),
        )
        .await;
    assert_eq!(status, 403, "{reply}");
    assert_eq!(
        reply["error"]["message"],
        "alert.notify jobs send to the platform's alert channels: admin tokens only"
    );
    let mut payload = notification("slack");
    payload["incident"]
        .as_object_mut()
        .unwrap()
        .remove("tenant_id");
    let (status, reply) = server
        .call(
            Method::POST,
            Some(&server.admin()),
            "/api/v1/queue/jobs",
            Some(json!({"kind": "alert.notify", "payload": payload})),
        )
        .await;
    assert_eq!(status, 422, "{reply}");
    assert_eq!(reply["error"]["field"], "payload");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("payload.incident: missing field `tenant_id`"),
        "{reply}"
    );
}

#[tokio::test]
async fn email_goes_through_a_real_smtp_server() {
    let Some(smtp) = SmtpSink::start_or_skip("email_goes_through_a_real_smtp_server").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        &dir,
        &format!(
            "[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             from = \"pytake <alerts@example.com>\"\n\
             to = [\"oncall@example.com\", \"Ops <ops@example.com>\"]\n",
            smtp.port()
        ),
    );
    let server = serve(&path).await;
    let id = enqueue(&server, notification("email"), 3).await;
    wait_job(&server, id, "done", |j| j["status"] == "done").await;
    let messages = smtp.wait_for_messages(1).await;
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(
        m.header("Subject"),
        Some("[FIRING] critical: High message failure rate (acme)")
    );
    assert_eq!(m.header("From"), Some("pytake <alerts@example.com>"));
    assert_eq!(
        m.header("To"),
        Some("oncall@example.com, Ops <ops@example.com>")
    );
    assert_eq!(m.header("X-MailFrom"), Some("alerts@example.com"));
    assert_eq!(
        m.header("X-RcptTo"),
        Some("oncall@example.com, ops@example.com")
    );
    assert_eq!(m.header("Message-ID"), Some("<corr-7f3a@example.com>"));
    assert_eq!(m.header("Content-Type"), Some("text/plain; charset=utf-8"));
    assert_eq!(
        m.body,
        "\
FIRING: incident inc-1 of tenant acme, 1 alert, severity critical

High message failure rate
  value:      7.5% (threshold > 5%)
  condition:  MessageFailureRate over 5m
  severity:   critical
  state:      firing since 2026-12-03T16:01:00Z

Correlation id: corr-7f3a
Opened: 2026-12-03T16:01:00Z
"
    );
}
