//! Alert rules against a server: evaluation on the in-process server and
//! tokio's clock (the pending duration, resolving, incidents, repeats,
//! acknowledgements and silences move with `advance`, not with sleeps),
//! the `SystemAlert` events and `Alert` messages a subscriber gets, and
//! the rules API's answers to bad input and other tenants.
//!
//! The evaluation interval is a minute, so real time between the test's
//! jumps never reaches one: each jump of a minute is one evaluation.

use std::time::Duration;

use pytake::protocol::ServerFrame;
use reqwest::Method;
use serde_json::{json, Value};

use crate::dashboard::typed;
use crate::support::{rooms, TestServer, TestWs};

pub const INTERVAL: Duration = Duration::from_secs(60);

pub async fn server(configure: impl FnOnce(&mut pytake::config::Settings)) -> TestServer {
    let server = TestServer::in_process(|s| {
        s.alerts.evaluation_interval = INTERVAL;
        s.alerts.repeat_interval = Duration::from_secs(600);
        s.alerts.group_window = Duration::from_secs(300);
        s.gateway.idle_timeout = Duration::from_secs(7200);
        s.gateway.ping_interval = Duration::from_secs(3600);
        configure(s);
    })
    .await;
    // The machine's CPU is whatever the test host's is: not a figure a
    // test can hold still.
    let admin = server.admin();
    wait_until("the default rules are stored", || async {
        server
            .call(
                Method::POST,
                Some(&admin),
                "/api/v1/alerts/rules/cpu_usage/disable",
                None,
            )
            .await
            .0
            == 200
    })
    .await;
    server
}

/// Moves the server's clock on by `d` at once: one evaluation per
/// interval crossed.
pub async fn jump(d: Duration) {
    tokio::time::pause();
    tokio::time::advance(d).await;
    tokio::time::resume();
}

/// Waits (in real time, with a deadline) until `check` holds.
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` failed and `ok` sent messages of `tenant`, stamped now.
pub async fn messages(server: &TestServer, tenant: &str, failed: usize, ok: usize) {
    let mut events = Vec::new();
    for i in 0..failed {
        events.push(typed(
            tenant,
            "MessageFailed",
            json!({"message_id": format!("f{i}-{}", rand_suffix()), "error": "131026"}),
        ));
    }
    for i in 0..ok {
        events.push(typed(
            tenant,
            "MessageSent",
            json!({"message_id": format!("s{i}-{}", rand_suffix()), "to": "+55", "status": "sent"}),
        ));
    }
    let ids = server.publish(&server.admin(), Value::Array(events)).await;
    counted(server, &ids).await;
}

/// Waits until the live figures count `ids`, so the next evaluation sees
/// them.
pub async fn counted(server: &TestServer, ids: &[i64]) {
    let last = ids.iter().copied().max().unwrap_or(0);
    wait_until("the figures count the events", || async {
        let (_, overview) = server
            .get(Some(&server.admin()), "/api/v1/dashboard/overview")
            .await;
        overview["kpis"]["last_event_id"].as_i64().unwrap_or(0) >= last
    })
    .await;
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The alerts of a tenant, newest first.
pub async fn alerts_of(server: &TestServer, tenant: &str) -> Vec<Value> {
    let (status, body) = server
        .get(
            Some(&server.admin()),
            &format!("/api/v1/alerts?tenant_id={tenant}"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["alerts"].as_array().cloned().unwrap_or_default()
}

/// Waits until the tenant's newest alert of `rule` is in `state`.
pub async fn wait_state(server: &TestServer, tenant: &str, rule: &str, state: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let alerts = alerts_of(server, tenant).await;
        match alerts.into_iter().find(|a| a["rule_id"] == rule) {
            Some(a) if a["state"] == state => return a,
            last => assert!(
                std::time::Instant::now() < deadline,
                "timed out: {rule} of {tenant} {state}; newest: {last:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next `SystemAlert` event and the `Alert` message beside it.
async fn next_alert(ws: &mut TestWs) -> (Value, Value) {
    let mut event = None;
    loop {
        match ws.recv().await {
            ServerFrame::Event(e) if e.event_type == "SystemAlert" => {
                event = Some(serde_json::to_value(&e).unwrap())
            }
            ServerFrame::Alert(a) => {
                return (event.expect("the Event comes before its Alert"), a);
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn the_failure_rate_rule_fires_after_its_pending_duration_and_resolves_once_clear() {
    let server = server(|_| {}).await;
    let (mut ws, _) = server
        .subscribed(&server.operator("acme"), rooms(&["alerts"]))
        .await;
    // Seed 000's rule: failure rate over 5 % for a minute, over 5 minutes.
    messages(&server, "acme", 1, 9).await;
    jump(INTERVAL).await;
    let pending = wait_state(&server, "acme", "high_failure_rate", "pending").await;
    assert_eq!(pending["current_value"], 10.0);
    assert!(pending.get("fired_at").is_none(), "{pending}");
    // Held for the minute: fires at the next evaluation.
    jump(INTERVAL).await;
    let firing = wait_state(&server, "acme", "high_failure_rate", "firing").await;
    assert_eq!(firing["id"], pending["id"]);
    let (event, alert) = next_alert(&mut ws).await;
    assert_eq!(event["tenant_id"], "acme");
    assert_eq!(event["room"], "alerts");
    let data = &event["data"];
    assert_eq!(
        (
            &data["rule_id"],
            &data["rule_name"],
            &data["condition"],
            &data["threshold"],
            &data["current_value"],
            &data["state"],
            &data["severity"]
        ),
        (
            &json!("high_failure_rate"),
            &json!("High message failure rate"),
            &json!("MessageFailureRate"),
            &json!(5.0),
            &json!(10.0),
            &json!("firing"),
            &json!("warning")
        )
    );
    assert_eq!(alert["event_type"], "SystemAlert");
    assert_eq!(alert["id"], event["id"]);
    assert_eq!(alert["data"], event["data"]);
    // The messages leave the 5-minute window: no traffic is no failure.
    // Clear for a minute, then resolved.
    jump(Duration::from_secs(300)).await;
    wait_until("clearing noted", || async {
        alerts_of(&server, "acme").await[0]["state"] == "firing"
    })
    .await;
    jump(INTERVAL).await;
    let resolved = wait_state(&server, "acme", "high_failure_rate", "resolved").await;
    assert!(resolved["resolved_at"].is_string(), "{resolved}");
    let (event, _) = next_alert(&mut ws).await;
    assert_eq!(event["data"]["state"], "resolved");
    assert_eq!(event["data"]["alert_id"], firing["id"]);
    // Seed 000's dashboard list: the last 24 h, with state and times.
    let (status, dashboard) = server
        .get(Some(&server.viewer("acme")), "/api/v1/dashboard/alerts")
        .await;
    assert_eq!(status, 200);
    assert_eq!(dashboard["alerts"][0]["id"], firing["id"]);
    assert_eq!(dashboard["alerts"][0]["state"], "resolved");
    assert_eq!(dashboard["firing"], 0);
}

#[tokio::test]
async fn a_spike_shorter_than_the_pending_duration_never_fires() {
    let server = server(|_| {}).await;
    messages(&server, "acme", 5, 5).await;
    jump(INTERVAL).await;
    wait_state(&server, "acme", "high_failure_rate", "pending").await;
    // Many good messages: the rate drops to under 5 % before the minute.
    messages(&server, "acme", 0, 200).await;
    jump(INTERVAL).await;
    wait_until("the pending alert is forgotten", || async {
        alerts_of(&server, "acme").await.is_empty()
    })
    .await;
    let history = server
        .history("tenant_id=acme&event_types=SystemAlert")
        .await;
    assert!(history.is_empty(), "{history:?}");
}

#[tokio::test]
async fn rules_refuse_bad_input_naming_the_field() {
    let server = server(|_| {}).await;
    let admin = server.admin();
    let post = |body: Value| {
        let server = &server;
        let admin = admin.clone();
        async move {
            server
                .call(
                    Method::POST,
                    Some(&admin),
                    "/api/v1/alerts/rules",
                    Some(body),
                )
                .await
        }
    };
    for (body, field, says) in [
        (
            json!({"name": "x", "condition": "Nope", "threshold": 1}),
            "condition",
            "unknown variant `Nope`",
        ),
        (
            json!({"name": "x", "condition": "Metric", "metric": "nope", "threshold": 1}),
            "metric",
            "unknown metric `nope`",
        ),
        (
            json!({"name": "x", "condition": "QueueDepth", "threshold": 1, "window": "-5m"}),
            "window",
            "not a duration",
        ),
        (
            json!({"name": "x", "condition": "QueueDepth"}),
            "threshold",
            "missing field `threshold`",
        ),
    ] {
        let (status, reply) = post(body).await;
        assert_eq!(status, 400, "{reply}");
        assert_eq!(reply["error"]["field"], field, "{reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }
    let (status, reply) = post(
        json!({"name": "x", "condition": "QueueDepth", "threshold": 1,
                                      "channels": ["slack"]}),
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["error"]["field"], "channels");
    assert_eq!(
        reply["error"]["message"],
        "channels: the slack channel is not configured on this server: set [slack] webhook_url"
    );
    let rule = json!({"name": "Queue backed up", "condition": "QueueDepth", "threshold": 1000});
    let (status, created) = post(rule.clone()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["id"], "queue_backed_up");
    assert_eq!(post(rule).await.0, 409);
}

#[tokio::test]
async fn a_tenant_operator_sees_and_changes_only_its_own_rules() {
    let server = server(|_| {}).await;
    let (acme, globex) = (server.operator("acme"), server.operator("globex"));
    let rule = json!({"name": "acme errors", "condition": "ErpErrorRate", "threshold": 10});
    let (status, created) = server
        .call(
            Method::POST,
            Some(&acme),
            "/api/v1/alerts/rules",
            Some(rule),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["tenant_id"], "acme",
        "an operator's rule is its tenant's"
    );
    let path = "/api/v1/alerts/rules/acme_errors";
    assert_eq!(server.get(Some(&globex), path).await.0, 404);
    assert_eq!(
        server
            .call(Method::DELETE, Some(&globex), path, None)
            .await
            .0,
        404
    );
    let (_, listed) = server.get(Some(&globex), "/api/v1/alerts/rules").await;
    let ids: Vec<&str> = listed["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["cpu_usage", "high_failure_rate"]);
    // Rules for every tenant are an admin's.
    let (status, _) = server
        .call(
            Method::POST,
            Some(&acme),
            "/api/v1/alerts/rules/high_failure_rate/disable",
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = server
        .call(
            Method::POST,
            Some(&server.viewer("acme")),
            "/api/v1/alerts/rules",
            Some(json!({"name": "v", "condition": "QueueDepth", "threshold": 1})),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        server.call(Method::DELETE, Some(&acme), path, None).await.0,
        204
    );
}

#[tokio::test]
async fn a_silenced_rule_fires_on_record_without_notifications() {
    let hook = crate::support::peer::Peer::start().await;
    let server = server(|s| {
        s.alerts.webhook_url = Some(hook.url());
    })
    .await;
    let admin = server.admin();
    let rule = json!({"name": "acme failures", "condition": "MessageFailureRate", "threshold": 5,
                      "for": "0s", "tenant_id": "acme", "channels": ["websocket", "webhook"]});
    let (status, reply) = server
        .call(
            Method::POST,
            Some(&admin),
            "/api/v1/alerts/rules",
            Some(rule),
        )
        .await;
    assert_eq!(status, 201, "{reply}");
    server
        .call(
            Method::POST,
            Some(&admin),
            "/api/v1/alerts/rules/high_failure_rate/disable",
            None,
        )
        .await;
    let (status, silence) = server
        .call(
            Method::POST,
            Some(&server.operator("acme")),
            "/api/v1/alerts/silences",
            Some(json!({"rule_id": "acme_failures", "for": "1h", "reason": "maintenance"})),
        )
        .await;
    assert_eq!(status, 201, "{silence}");
    assert_eq!(silence["tenant_id"], "acme");
    messages(&server, "acme", 5, 5).await;
    jump(INTERVAL).await;
    let firing = wait_state(&server, "acme", "acme_failures", "firing").await;
    assert_eq!(firing["silenced"], true);
    let (_, jobs) = server
        .get(Some(&admin), "/api/v1/queue/jobs?kind=alert.notify")
        .await;
    assert_eq!(jobs["jobs"], json!([]), "a silenced alert is not notified");
    assert_eq!(hook.received().await.len(), 0);
}

#[tokio::test]
async fn deleting_or_disabling_a_firing_rule_resolves_its_alert() {
    let server = server(|_| {}).await;
    let admin = server.admin();
    for (name, tenant) in [("gone", "acme"), ("off", "globex")] {
        let rule = json!({"name": name, "condition": "MessageFailureRate", "threshold": 5,
                          "for": "0s", "tenant_id": tenant});
        let (status, reply) = server
            .call(
                Method::POST,
                Some(&admin),
                "/api/v1/alerts/rules",
                Some(rule),
            )
            .await;
        assert_eq!(status, 201, "{reply}");
        messages(&server, tenant, 5, 5).await;
    }
    jump(INTERVAL).await;
    wait_state(&server, "acme", "gone", "firing").await;
    wait_state(&server, "globex", "off", "firing").await;
    let (status, _) = server
        .call(
            Method::DELETE,
            Some(&admin),
            "/api/v1/alerts/rules/gone",
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = server
        .call(
            Method::POST,
            Some(&admin),
            "/api/v1/alerts/rules/off/disable",
            None,
        )
        .await;
    assert_eq!(status, 200);
    jump(INTERVAL).await;
    wait_state(&server, "acme", "gone", "resolved").await;
    wait_state(&server, "globex", "off", "resolved").await;
}

#[tokio::test]
async fn a_tenant_may_not_end_a_silence_of_every_tenant() {
    let server = server(|_| {}).await;
    let (status, silence) = server
        .call(
            Method::POST,
            Some(&server.admin()),
            "/api/v1/alerts/silences",
            Some(json!({"rule_id": "high_failure_rate", "for": "2h"})),
        )
        .await;
    assert_eq!(status, 201, "{silence}");
    let path = format!(
        "/api/v1/alerts/silences/{}",
        silence["id"].as_str().unwrap()
    );
    let acme = server.operator("acme");
    let (_, listed) = server.get(Some(&acme), "/api/v1/alerts/silences").await;
    assert_eq!(listed["silences"][0]["id"], silence["id"]);
    assert_eq!(
        server
            .call(Method::DELETE, Some(&acme), &path, None)
            .await
            .0,
        403
    );
    assert_eq!(
        server
            .call(Method::DELETE, Some(&server.admin()), &path, None)
            .await
            .0,
        204
    );
    let (_, listed) = server.get(Some(&acme), "/api/v1/alerts/silences").await;
    assert_eq!(listed["silences"], json!([]));
}
