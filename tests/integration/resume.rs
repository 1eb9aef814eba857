//! Resume with `since`: across a client reconnect, across a server restart,
//! and at the seam between replay and live while events keep coming.

use std::sync::Arc;

use pytake::protocol::Subscription;
use serde_json::json;

use crate::support::{custom, rooms, TestServer};

fn since(room: &str, id: i64) -> Subscription {
    Subscription {
        since: Some(id),
        ..rooms(&[room])
    }
}

#[tokio::test]
async fn a_reconnecting_client_gets_what_it_missed_then_live_events() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let viewer = server.viewer("acme");
    let (mut ws, _) = server.subscribed(&viewer, rooms(&["erp"])).await;
    for i in 1..=2 {
        server.publish(&admin, custom("acme", "erp", i)).await;
    }
    assert_eq!(ws.event().await.id, 1);
    assert_eq!(ws.event().await.id, 2);
    drop(ws);
    for i in 3..=5 {
        server.publish(&admin, custom("acme", "erp", i)).await;
        server.publish(&admin, custom("acme", "ai", i)).await;
    }
    let (mut ws, subscribed) = server.subscribed(&viewer, since("erp", 2)).await;
    assert_eq!(subscribed.since, Some(2));
    assert_eq!(subscribed.head, 8);
    let replayed: Vec<i64> = [
        ws.event().await.id,
        ws.event().await.id,
        ws.event().await.id,
    ]
    .into();
    assert_eq!(replayed, vec![3, 5, 7]);
    let live = server.publish(&admin, custom("acme", "erp", 6)).await;
    assert_eq!(ws.event().await.id, live[0]);
}

#[tokio::test]
async fn resume_across_a_server_restart_loses_nothing() {
    let mut server = TestServer::start().await;
    let admin = server.admin();
    let viewer = server.viewer("acme");
    let (mut ws, _) = server.subscribed(&viewer, rooms(&["erp"])).await;
    for i in 1..=3 {
        server.publish(&admin, custom("acme", "erp", i)).await;
    }
    let mut last = 0;
    for _ in 0..3 {
        last = ws.event().await.id;
    }
    server.restart().await;
    let (_, closed) = ws.closed().await;
    assert_eq!(closed.code, 1001, "{closed:?}");
    let after: Vec<i64> = {
        let mut ids = Vec::new();
        for i in 4..=6 {
            ids.extend(server.publish(&admin, custom("acme", "erp", i)).await);
        }
        ids
    };
    assert_eq!(after, vec![4, 5, 6], "ids continue after a restart");
    let (mut ws, _) = server.subscribed(&viewer, since("erp", last)).await;
    for id in 4..=6 {
        assert_eq!(ws.event().await.id, id);
    }
    let live = server.publish(&admin, custom("acme", "erp", 7)).await;
    assert_eq!(ws.event().await.id, live[0]);
}

#[tokio::test]
async fn the_seam_between_replay_and_live_has_no_gap_and_no_duplicate() {
    let server = Arc::new(TestServer::start().await);
    let admin = server.admin();
    const TOTAL: i64 = 600;
    let publisher = tokio::spawn({
        let server = server.clone();
        let admin = admin.clone();
        async move {
            let mut n = 0;
            while n < TOTAL {
                let size = 1 + n % 4;
                let batch: Vec<_> = (n..(n + size).min(TOTAL))
                    .map(|i| custom("acme", "dashboard", i))
                    .collect();
                n += batch.len() as i64;
                server.publish(&admin, json!(batch)).await;
            }
        }
    });
    // Subscribers join at different points while the publisher runs.
    let mut subscribers = Vec::new();
    for from in [0, 50, 200] {
        loop {
            let (_, health) = server.get(None, "/health").await;
            if health["last_event_id"].as_i64().unwrap() >= from {
                break;
            }
            tokio::task::yield_now().await;
        }
        let (ws, _) = server
            .subscribed(&server.viewer("acme"), since("dashboard", from))
            .await;
        subscribers.push((from, ws));
    }
    for (from, mut ws) in subscribers {
        let mut expect = from + 1;
        while expect <= TOTAL {
            let id = ws.event().await.id;
            assert_eq!(id, expect, "subscriber from {from}: gap or duplicate");
            expect += 1;
        }
    }
    publisher.await.unwrap();
}

#[tokio::test]
async fn a_replay_of_several_pages_meets_live_traffic_without_a_gap() {
    let server = Arc::new(TestServer::start().await);
    let admin = server.admin();
    // Two full pages of history, and a third that live events extend.
    const STORED: i64 = 2_500;
    const LIVE: i64 = 400;
    for first in (0..STORED).step_by(500) {
        let batch: Vec<_> = (first..first + 500)
            .map(|i| custom("acme", "erp", i))
            .collect();
        server.publish(&admin, json!(batch)).await;
    }
    let publisher = tokio::spawn({
        let server = server.clone();
        async move {
            for i in 0..LIVE / 4 {
                let batch: Vec<_> = (0..4).map(|j| custom("acme", "erp", i * 4 + j)).collect();
                server.publish(&admin, json!(batch)).await;
            }
        }
    });
    let (mut ws, subscribed) = server
        .subscribed(&server.viewer("acme"), since("erp", 0))
        .await;
    assert!(subscribed.head >= STORED, "{subscribed:?}");
    for expect in 1..=STORED + LIVE {
        assert_eq!(ws.event().await.id, expect, "gap or duplicate");
    }
    publisher.await.unwrap();
    let health = server.get(None, "/health").await.1;
    assert_eq!(health["websocket"]["slow_consumers_closed"], 0);
}
