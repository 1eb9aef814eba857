//! The pushes, on the in-process server with tokio's clock: `Metrics` to
//! `dashboard` subscribers each interval when their figures changed, and
//! throttled campaign figures (lifecycle at once, a burst's last state on
//! the trailing edge). Intervals are set to a minute so that real time
//! between the test's jumps never reaches one.

use std::time::Duration;

use pytake::protocol::{ClientFrame, ServerFrame, Subscription};
use serde_json::{json, Value};

use crate::dashboard::{counted, typed};
use crate::support::{rooms, TestServer, TestWs};

const INTERVAL: Duration = Duration::from_secs(60);

async fn server() -> TestServer {
    TestServer::in_process(|s| {
        s.metrics.push_interval = INTERVAL;
        s.metrics.campaign_throttle = INTERVAL;
        // The jumps are not silence: keep connections open across them.
        s.gateway.idle_timeout = Duration::from_secs(3600);
        s.gateway.ping_interval = Duration::from_secs(1800);
    })
    .await
}

/// Moves the server's clock on by `d` at once.
async fn jump(d: Duration) {
    tokio::time::pause();
    tokio::time::advance(d).await;
    tokio::time::resume();
}

/// The `Metrics` frames a connection got before the answer to a
/// heartbeat sent now: everything the server had sent it by then.
async fn metrics_so_far(ws: &mut TestWs) -> Vec<Value> {
    ws.send(ClientFrame::Heartbeat).await;
    let mut metrics = Vec::new();
    loop {
        match ws.recv().await {
            ServerFrame::HeartbeatAck { .. } => return metrics,
            ServerFrame::Metrics(m) => metrics.push(m),
            _ => {}
        }
    }
}

/// Waits for the next `Metrics` frame, skipping events.
async fn next_metrics(ws: &mut TestWs) -> Value {
    loop {
        if let ServerFrame::Metrics(m) = ws.recv().await {
            return m;
        }
    }
}

#[tokio::test]
async fn dashboard_subscribers_get_their_scopes_figures_each_interval_when_changed() {
    let server = server().await;
    let admin = server.admin();
    let (mut acme, _) = server
        .subscribed(&server.viewer("acme"), rooms(&["dashboard"]))
        .await;
    let (mut all, _) = server.subscribed(&admin, rooms(&["dashboard"])).await;
    // Ten minutes old: in the hour's rates, not in the per-second one.
    let when = (chrono::Utc::now() - chrono::Duration::minutes(10))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let events: Vec<Value> = [
        typed(
            "acme",
            "MessageSent",
            json!({"message_id": "1", "to": "+55", "status": "sent"}),
        ),
        typed(
            "acme",
            "MessageSent",
            json!({"message_id": "2", "to": "+55", "status": "sent"}),
        ),
        typed(
            "globex",
            "MessageFailed",
            json!({"message_id": "3", "error": "x"}),
        ),
    ]
    .into_iter()
    .map(|mut e| {
        e["timestamp"] = when.clone().into();
        e
    })
    .collect();
    let ids = server.publish(&admin, Value::Array(events)).await;
    counted(&server, &admin, "", ids[2]).await;
    // Nothing before the interval is up (the events themselves arrive).
    assert!(metrics_so_far(&mut acme).await.is_empty());

    jump(INTERVAL).await;
    let m = next_metrics(&mut acme).await;
    assert_eq!(m["tenant_id"], "acme");
    assert_eq!(m["messages_sent"], 2);
    assert_eq!(m["messages_failed"], 0);
    for field in [
        "messages_received",
        "active_conversations",
        "system_cpu_usage",
        "system_memory_usage",
        "websocket_connections",
    ] {
        assert!(m.get(field).is_some(), "seed 000's field {field}");
    }
    let acme_first = m.clone();
    let m = next_metrics(&mut all).await;
    assert_eq!(m["tenant_id"], Value::Null);
    assert_eq!(
        (m["messages_sent"].as_i64(), m["messages_failed"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(m["message_failure_rate"], 33.33);

    // Nothing changed (the events are ten minutes old, so not even the
    // per-second rate moves): nothing is pushed.
    assert_eq!(m["events_per_second"], 0.0);
    let first = acme_first;
    jump(INTERVAL).await;
    let pushed = metrics_so_far(&mut acme).await;
    assert!(
        pushed.is_empty(),
        "unchanged: no push, got {pushed:?} after {first}"
    );

    // A new event: pushed at the next interval, and only then.
    let more = server
        .publish(
            &admin,
            json!(typed(
                "acme",
                "MessageSent",
                json!({"message_id": "4", "to": "+55", "status": "sent"})
            )),
        )
        .await;
    counted(&server, &admin, "", more[0]).await;
    let early = metrics_so_far(&mut acme).await;
    assert!(early.is_empty(), "{early:?} after {m}");
    jump(INTERVAL).await;
    assert_eq!(next_metrics(&mut acme).await["messages_sent"], 3);
}

fn campaign(event: &str, extra: Value) -> Value {
    let mut data = json!({"campaign_id": "C1", "event": event});
    data.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    typed("acme", "CampaignUpdate", data)
}

#[tokio::test]
async fn campaign_pushes_are_throttled_but_lifecycle_changes_and_the_last_state_go_out() {
    let server = server().await;
    let admin = server.admin();
    let sub = Subscription {
        rooms: vec!["campaign:C1".into()],
        ..Subscription::default()
    };
    let (mut ws, _) = server.subscribed(&server.viewer("acme"), sub).await;

    // A lifecycle change goes at once.
    let ids = server
        .publish(
            &admin,
            campaign("campaign_started", json!({"total_contacts": 100})),
        )
        .await;
    let m = next_metrics(&mut ws).await;
    assert_eq!(
        (m["kind"].as_str(), m["status"].as_str()),
        (Some("campaign"), Some("running"))
    );
    assert_eq!(m["campaign_id"], "C1");
    counted(&server, &admin, "", ids[0]).await;

    // A burst inside the interval: held back.
    let burst: Vec<Value> = (0..5)
        .map(|_| campaign("message_sent", json!({})))
        .collect();
    let ids = server.publish(&admin, Value::Array(burst)).await;
    counted(&server, &admin, "", ids[4]).await;
    assert!(metrics_so_far(&mut ws).await.is_empty(), "throttled");

    // A pause is a lifecycle change: at once, with the burst in it.
    server
        .publish(&admin, campaign("campaign_paused", json!({})))
        .await;
    let m = next_metrics(&mut ws).await;
    assert_eq!(
        (m["status"].as_str(), m["sent_count"].as_i64()),
        (Some("paused"), Some(5))
    );

    // Another burst: nothing until the interval ends, then its last state.
    let burst: Vec<Value> = (0..3)
        .map(|_| campaign("message_sent", json!({})))
        .collect();
    let ids = server.publish(&admin, Value::Array(burst)).await;
    counted(&server, &admin, "", ids[2]).await;
    let burst: Vec<Value> = (0..2)
        .map(|_| campaign("message_failed", json!({"error": "Timeout"})))
        .collect();
    let ids = server.publish(&admin, Value::Array(burst)).await;
    counted(&server, &admin, "", ids[1]).await;
    assert!(metrics_so_far(&mut ws).await.is_empty(), "throttled");
    jump(INTERVAL).await;
    let m = next_metrics(&mut ws).await;
    assert_eq!(
        (m["sent_count"].as_i64(), m["error_count"].as_i64()),
        (Some(8), Some(2))
    );
    assert!(
        metrics_so_far(&mut ws).await.is_empty(),
        "one trailing push"
    );
}
