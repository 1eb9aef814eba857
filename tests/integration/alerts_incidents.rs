//! Incidents on the in-process server and tokio's clock: a tenant's
//! alerts grouped into one incident, notified once, repeated until
//! acknowledged, resolved once; silences set on a firing alert.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::alerts::{alerts_of, counted, jump, messages, server, wait_state, wait_until, INTERVAL};
use crate::dashboard::typed;
use crate::support::peer::Peer;
use crate::support::TestServer;

/// The `alert.notify` jobs queued so far, oldest first, as (reason,
/// alert count, incident id).
async fn notifications(server: &TestServer) -> Vec<(String, usize, String)> {
    let (status, jobs) = server
        .get(
            Some(&server.admin()),
            "/api/v1/queue/jobs?kind=alert.notify",
        )
        .await;
    assert_eq!(status, 200, "{jobs}");
    let mut out: Vec<(String, usize, String)> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            let p = &j["payload"];
            (
                p["reason"].as_str().unwrap().to_string(),
                p["alerts"].as_array().unwrap().len(),
                p["incident"]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.reverse();
    out
}

async fn erp_calls(server: &TestServer, tenant: &str, failed: usize, ok: usize) {
    let events: Vec<Value> = (0..failed + ok)
        .map(|i| {
            typed(
                tenant,
                "ERPCall",
                json!({"provider": "sap", "endpoint": "/orders", "response_time": 120, "success": i >= failed}),
            )
        })
        .collect();
    let ids = server.publish(&server.admin(), Value::Array(events)).await;
    counted(server, &ids).await;
}

#[tokio::test]
async fn a_tenants_alerts_form_one_incident_notified_once_repeated_until_acknowledged() {
    let hook = crate::support::peer::Peer::start().await;
    let server = server(|s| s.alerts.webhook_url = Some(hook.url())).await;
    let admin = server.admin();
    server
        .call(
            Method::POST,
            Some(&admin),
            "/api/v1/alerts/rules/high_failure_rate/disable",
            None,
        )
        .await;
    for rule in [
        json!({"name": "acme failures", "condition": "MessageFailureRate", "threshold": 5,
               "for": "0s", "window": "1h", "tenant_id": "acme", "channels": ["webhook"]}),
        json!({"name": "acme erp", "condition": "ErpErrorRate", "threshold": 10, "severity": "critical",
               "for": "0s", "window": "1h", "tenant_id": "acme", "channels": ["webhook"]}),
    ] {
        let (status, reply) = server
            .call(
                Method::POST,
                Some(&admin),
                "/api/v1/alerts/rules",
                Some(rule),
            )
            .await;
        assert_eq!(status, 201, "{reply}");
    }
    messages(&server, "acme", 5, 5).await;
    jump(INTERVAL).await;
    let first = wait_state(&server, "acme", "acme_failures", "firing").await;
    wait_until("the first notification", || async {
        notifications(&server).await.len() == 1
    })
    .await;
    // A minute later, within the 5-minute group window: the same incident,
    // no second notification.
    erp_calls(&server, "acme", 5, 5).await;
    jump(INTERVAL).await;
    let second = wait_state(&server, "acme", "acme_erp", "firing").await;
    assert_eq!(second["incident_id"], first["incident_id"]);
    let incident = first["incident_id"].as_str().unwrap().to_string();
    let (_, incidents) = server
        .get(Some(&server.viewer("acme")), "/api/v1/alerts/incidents")
        .await;
    assert_eq!(incidents["incidents"][0]["id"], incident);
    assert_eq!(
        incidents["incidents"][0]["alert_ids"],
        json!([first["id"], second["id"]])
    );
    assert_eq!(
        notifications(&server).await,
        [("firing".to_string(), 1, incident.clone())]
    );
    // The repeat interval (10 min) passes while both fire.
    jump(Duration::from_secs(600)).await;
    wait_until("the repeat", || async {
        notifications(&server).await.len() == 2
    })
    .await;
    assert_eq!(
        notifications(&server).await[1],
        ("repeat".to_string(), 2, incident.clone())
    );
    // Acknowledged by one of its alerts: no more repeats.
    let path = format!("/api/v1/alerts/{}/ack", second["id"].as_str().unwrap());
    let (status, acked) = server
        .call(Method::POST, Some(&server.operator("acme")), &path, None)
        .await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["incident"]["id"], incident);
    assert!(acked["incident"]["acknowledged_at"].is_string());
    jump(Duration::from_secs(600)).await;
    jump(INTERVAL).await;
    // Both clear when the hour's window has no failures left; the
    // incident resolves and says so once.
    jump(Duration::from_secs(3600)).await;
    wait_state(&server, "acme", "acme_failures", "resolved").await;
    wait_state(&server, "acme", "acme_erp", "resolved").await;
    wait_until("the resolved notification", || async {
        notifications(&server).await.len() == 3
    })
    .await;
    assert_eq!(
        notifications(&server).await,
        [
            ("firing".to_string(), 1, incident.clone()),
            ("repeat".to_string(), 2, incident.clone()),
            ("resolved".to_string(), 2, incident.clone()),
        ]
    );
    let alerts = alerts_of(&server, "acme").await;
    assert!(
        alerts.iter().all(|a| a["acknowledged_at"].is_string()),
        "{alerts:?}"
    );
}

#[tokio::test]
async fn a_silence_on_a_firing_alert_stops_its_repeats_until_it_ends() {
    let hook = Peer::start().await;
    let server = server(|s| s.alerts.webhook_url = Some(hook.url())).await;
    let admin = server.admin();
    server
        .call(
            Method::POST,
            Some(&admin),
            "/api/v1/alerts/rules/high_failure_rate/disable",
            None,
        )
        .await;
    let rule = json!({"name": "acme failures", "condition": "MessageFailureRate", "threshold": 5,
                      "for": "0s", "window": "1h", "tenant_id": "acme", "channels": ["webhook"]});
    let (status, reply) = server
        .call(
            Method::POST,
            Some(&admin),
            "/api/v1/alerts/rules",
            Some(rule),
        )
        .await;
    assert_eq!(status, 201, "{reply}");
    messages(&server, "acme", 5, 5).await;
    jump(INTERVAL).await;
    wait_state(&server, "acme", "acme_failures", "firing").await;
    wait_until("the first notification", || async {
        notifications(&server).await.len() == 1
    })
    .await;
    let (status, silence) = server
        .call(
            Method::POST,
            Some(&server.operator("acme")),
            "/api/v1/alerts/silences",
            Some(json!({"rule_id": "acme_failures", "for": "15m"})),
        )
        .await;
    assert_eq!(status, 201, "{silence}");
    // The repeat interval (10 min) passes under the silence: no repeat.
    jump(Duration::from_secs(600)).await;
    wait_until("the alert is marked silenced", || async {
        alerts_of(&server, "acme").await[0]["silenced"] == true
    })
    .await;
    assert_eq!(notifications(&server).await.len(), 1);
    // The silence ends: the next evaluation repeats.
    jump(Duration::from_secs(600)).await;
    wait_until("the repeat after the silence", || async {
        notifications(&server).await.len() == 2
    })
    .await;
    assert_eq!(notifications(&server).await[1].0, "repeat");
}
