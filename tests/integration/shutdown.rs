//! Graceful shutdown: sockets closed with 1001, exit 0, nothing acknowledged lost.

use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::support::{custom, rooms, TestServer};

#[tokio::test]
async fn sigterm_closes_sockets_with_1001_and_exits_0() {
    let mut server = TestServer::start().await;
    let (mut ws, _) = server
        .subscribed(&server.viewer("acme"), rooms(&["dashboard"]))
        .await;
    let status = server.stop().await;
    assert!(status.success(), "exit status {status}");
    let (_, closed) = ws.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (1001, "server shutting down")
    );
    assert!(server.log().contains("stopped"), "{}", server.log());
}

#[tokio::test]
async fn events_acknowledged_before_shutdown_survive_it() {
    let mut server = TestServer::start().await;
    let admin = server.admin();
    let url = format!("{}/api/v1/events", server.url);
    let acked = Arc::new(Mutex::new(Vec::<i64>::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (url, admin, acked) = (url.clone(), admin.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in 0.. {
                let body = json!([
                    custom("acme", "erp", w * 100_000 + i),
                    custom("acme", "erp", -1)
                ]);
                let Ok(resp) = client
                    .post(&url)
                    .bearer_auth(&admin)
                    .json(&body)
                    .send()
                    .await
                else {
                    break;
                };
                if resp.status() != 201 {
                    break;
                }
                let reply: serde_json::Value = resp.json().await.unwrap();
                acked.lock().unwrap().extend(
                    reply["ids"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_i64().unwrap()),
                );
                if i == 200 {
                    break;
                }
            }
        }));
    }
    // Let the writers get going, then stop the server under them.
    loop {
        if acked.lock().unwrap().len() >= 40 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let status = server.stop().await;
    assert!(status.success());
    for w in writers {
        w.await.unwrap();
    }
    server.restart_stopped().await;
    let stored: std::collections::HashSet<i64> = {
        let mut ids = std::collections::HashSet::new();
        let mut since = 0;
        loop {
            let page = server.history(&format!("since={since}")).await;
            if page.is_empty() {
                break;
            }
            since = page.last().unwrap().id;
            ids.extend(page.iter().map(|e| e.id));
        }
        ids
    };
    let acked = acked.lock().unwrap().clone();
    let lost: Vec<_> = acked.iter().filter(|id| !stored.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}

#[tokio::test]
async fn health_and_ready_report_the_server() {
    let server = TestServer::start().await;
    let (status, ready) = server.get(None, "/ready").await;
    assert_eq!((status, ready), (200, json!({"ready": true})));
    let (_ws, _) = server
        .subscribed(&server.viewer("acme"), rooms(&["dashboard", "erp"]))
        .await;
    let _anonymous = server.ws("/ws").await;
    server
        .publish(&server.admin(), custom("acme", "erp", 1))
        .await;
    let (status, health) = server.get(None, "/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        (health["store"].as_str(), health["bus"].as_str()),
        (Some("sqlite"), Some("memory"))
    );
    assert_eq!(health["last_event_id"], 1);
    assert_eq!(
        health["websocket"],
        json!({"total": 2, "authenticated": 1, "rooms": 2, "slow_consumers_closed": 0})
    );
}
