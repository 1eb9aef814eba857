//! Alerting against real `pytake serve` processes: a `pytake tail --room
//! alerts` process sees an alert fire; two nodes on PostgreSQL and Redis
//! record and notify each transition once, and when the evaluating node
//! is killed the other takes over within the lease time.

use std::time::Duration;

use pytake::protocol::Event;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::peer::Peer;
use crate::support::services::{Postgres, Redis};
use crate::support::{pytake, Options, TestServer, DEADLINE};

/// A config file with a one-second evaluation and a rule that fires as
/// soon as `acme` has any event in the last minute.
fn config(dir: &std::path::Path, webhook: Option<&str>) -> String {
    let path = dir.join("alerts.toml");
    let webhook = webhook
        .map(|url| format!("webhook_url = \"{url}\"\n"))
        .unwrap_or_default();
    std::fs::write(
        &path,
        format!(
            r#"[alerts]
evaluation_interval = "1s"
{webhook}
[[alerts.rules]]
id = "acme_events"
name = "Events from acme"
condition = "Metric"
metric = "events"
threshold = 0
for = "0s"
window = "1m"
tenant_id = "acme"
channels = ["websocket", "webhook"]
"#
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// The `SystemAlert` events of acme's rule, oldest first.
async fn transitions(server: &TestServer) -> Vec<Event> {
    server
        .history("tenant_id=acme&event_types=SystemAlert&since=0")
        .await
        .into_iter()
        .filter(|e| e.data["rule_id"] == "acme_events")
        .collect()
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn tail_on_the_alerts_room_sees_an_alert_fire() {
    let dir = tempfile::tempdir().unwrap();
    let file = config(dir.path(), None);
    let server = TestServer::start_with(Options::args(&["--config", &file])).await;
    let admin = server.admin();
    let tail = {
        let (url, admin, path) = (
            server.url.clone(),
            admin.clone(),
            server.path().to_path_buf(),
        );
        tokio::spawn(async move {
            pytake(
                &[
                    "tail", "--server", &url, "--token", &admin, "--room", "alerts", "--tenant",
                    "acme", "--count", "1", "--output", "json",
                ],
                &path,
            )
            .await
        })
    };
    server.wait_for_subscribers(1).await;
    server
        .publish(&admin, crate::support::custom("acme", "erp", 1))
        .await;
    let run = tokio::time::timeout(DEADLINE, tail).await.unwrap().unwrap();
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{}", run.stdout);
    let event: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(event["event_type"], "SystemAlert");
    assert_eq!(event["data"]["rule_id"], "acme_events");
    assert_eq!(event["data"]["state"], "firing");
    assert_eq!(event["data"]["current_value"], 1.0);
}

#[tokio::test]
async fn two_nodes_notify_each_transition_once_and_survive_the_evaluators_death() {
    let test = "two_nodes_notify_each_transition_once_and_survive_the_evaluators_death";
    let Some(store) = Postgres::database_or_skip(test).await else {
        return;
    };
    let Some(redis) = Redis::start_or_skip(test).await else {
        return;
    };
    let hook = Peer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = config(dir.path(), Some(&hook.url()));
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let args = ["--store", &store, "--bus", &redis.url(), "--config", &file];
        nodes.push(TestServer::start_with(Options::args(&args)).await);
    }
    let admin = nodes[0].admin();
    // One node evaluates, the other stands by.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let holder = loop {
        let mut evaluating = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            let (_, health) = node.get(None, "/health").await;
            if health["alerts"]["evaluating"] == true {
                evaluating.push(i);
            }
        }
        if evaluating.len() == 1 {
            break evaluating[0];
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no single evaluator: {evaluating:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let other = 1 - holder;

    nodes[other]
        .publish(&admin, crate::support::custom("acme", "erp", 1))
        .await;
    wait_until("the alert fires", Duration::from_secs(30), || async {
        transitions(&nodes[other]).await.len() == 1 && !hook.received().await.is_empty()
    })
    .await;

    // The evaluator dies; the other node resolves the alert once the
    // rule is disabled, which it can only do holding the lease.
    nodes[holder].kill().await;
    let path = "/api/v1/alerts/rules/acme_events/disable";
    let (status, reply) = nodes[other]
        .call(Method::POST, Some(&admin), path, None)
        .await;
    assert_eq!(status, 200, "{reply}");
    // The lease lasts three intervals (3 s) after the holder's last renewal.
    wait_until(
        "the survivor resolves it",
        Duration::from_secs(20),
        || async { transitions(&nodes[other]).await.len() == 2 },
    )
    .await;
    let (_, health) = nodes[other].get(None, "/health").await;
    assert_eq!(health["alerts"]["evaluating"], true, "{health}");
    wait_until("the resolved notification", DEADLINE, || async {
        hook.received().await.len() == 2
    })
    .await;
    // Two more evaluations: nothing more happens.
    let last = |health: &Value| {
        health["alerts"]["last_evaluation"]
            .as_str()
            .map(str::to_string)
    };
    let resolved_at = last(&health).unwrap();
    wait_until("two more evaluations", DEADLINE, || async {
        let (_, health) = nodes[other].get(None, "/health").await;
        last(&health).is_some_and(|t| {
            let ms = |t: &str| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .unwrap()
                    .timestamp_millis()
            };
            ms(&t) - ms(&resolved_at) >= 2000
        })
    })
    .await;
    let states: Vec<Value> = transitions(&nodes[other])
        .await
        .iter()
        .map(|e| e.data["state"].clone())
        .collect();
    assert_eq!(states, [json!("firing"), json!("resolved")]);
    let reasons: Vec<Value> = hook
        .received()
        .await
        .iter()
        .map(|r| r.body["reason"].clone())
        .collect();
    assert_eq!(reasons, [json!("firing"), json!("resolved")]);
}
