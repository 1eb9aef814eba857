//! `GET /api/v1/events`: history, filters, isolation and long-polling.

use serde_json::json;

use crate::support::{custom, TestServer};

#[tokio::test]
async fn history_filters_by_room_type_since_and_limit() {
    let server = TestServer::start().await;
    let admin = server.admin();
    for i in 0..5 {
        server
            .publish(
                &admin,
                custom("acme", if i % 2 == 0 { "erp" } else { "ai" }, i),
            )
            .await;
    }
    server
        .publish(
            &admin,
            json!({"event_type": "Other", "tenant_id": "acme", "rooms": ["erp"]}),
        )
        .await;
    let ids = |v: &serde_json::Value| -> Vec<i64> {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect()
    };
    let (status, page) = server.get(Some(&admin), "/api/v1/events?rooms=erp").await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page), vec![1, 3, 5, 6]);
    assert_eq!(page["head"], 6);
    let (_, page) = server
        .get(Some(&admin), "/api/v1/events?rooms=erp,ai&since=2&limit=2")
        .await;
    assert_eq!(ids(&page), vec![3, 4]);
    assert_eq!(page["next_since"], 4);
    let (_, page) = server
        .get(Some(&admin), "/api/v1/events?event_types=Other")
        .await;
    assert_eq!(ids(&page), vec![6]);
}

#[tokio::test]
async fn history_is_scoped_to_the_tokens_tenant() {
    let server = TestServer::start().await;
    let admin = server.admin();
    server.publish(&admin, custom("globex", "erp", 1)).await;
    server.publish(&admin, custom("acme", "erp", 2)).await;
    let viewer = server.viewer("acme");
    let (_, page) = server.get(Some(&viewer), "/api/v1/events").await;
    let tenants: Vec<_> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["tenant_id"].clone())
        .collect();
    assert_eq!(tenants, vec![json!("acme")]);
    let (status, reply) = server
        .get(Some(&viewer), "/api/v1/events?tenant_id=globex")
        .await;
    assert_eq!(status, 403, "{reply}");
    let (status, _) = server.get(None, "/api/v1/events").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn bad_parameters_are_named() {
    let server = TestServer::start().await;
    let admin = server.admin();
    for (query, message) in [
        ("since=abc", "since: `abc` is not an event id (0 or more)"),
        ("limit=0", "limit: `0` is not a number from 1 to 1000"),
        ("wait=forever", "wait: `forever` is not a duration like 25s"),
        ("wait=5m", "wait: at most 60s"),
        ("rooms=lobby", "rooms: unknown room `lobby`: expected one of dashboard, conversations, campaigns, erp, ai, alerts, presence or campaign:ID, conversation:ID, user:ID"),
    ] {
        let (status, reply) = server.get(Some(&admin), &format!("/api/v1/events?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(reply["error"]["message"], message);
    }
}

#[tokio::test]
async fn long_poll_returns_when_an_event_arrives() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let url = format!("{}/api/v1/events?rooms=erp&since=0&wait=30", server.url);
    let poll = tokio::spawn({
        let admin = admin.clone();
        async move {
            let started = std::time::Instant::now();
            let body: serde_json::Value = reqwest::Client::new()
                .get(url)
                .bearer_auth(admin)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (body, started.elapsed())
        }
    });
    // An event in another room does not end the wait; one in erp does.
    server.publish(&admin, custom("acme", "ai", 1)).await;
    let id = server.publish(&admin, custom("acme", "erp", 2)).await[0];
    let (body, took) = poll.await.unwrap();
    assert_eq!(body["events"][0]["id"], id);
    assert!(took.as_secs() < 30);
}

#[tokio::test]
async fn long_poll_times_out_empty() {
    let server = TestServer::start().await;
    let (status, page) = server
        .get(Some(&server.admin()), "/api/v1/events?wait=1")
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["events"], json!([]));
    assert_eq!(page["next_since"], 0);
}
