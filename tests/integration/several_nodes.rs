//! Several `pytake serve` processes on one PostgreSQL and one Redis, as an
//! operator runs them behind a load balancer: every subscriber, on any
//! node, gets its events in increasing id order with no gap and no
//! duplicate relative to the store's history of its rooms.

use std::time::Duration;

use pytake::protocol::{Event, EventId, Subscription};
use serde_json::{json, Value};

use crate::support::services::{Postgres, Redis};
use crate::support::{bin, custom, Options, TestServer, TestWs, DEADLINE};

/// Nodes on one fresh database and a Redis of their own (pub/sub channels
/// are global to a Redis server: one per cluster).
struct Cluster {
    nodes: Vec<TestServer>,
    _redis: Redis,
}

impl Cluster {
    async fn start(test: &str, n: usize) -> Option<Cluster> {
        let store = Postgres::database_or_skip(test).await?;
        let redis = Redis::start_or_skip(test).await?;
        let bus = redis.url();
        let mut nodes = Vec::with_capacity(n);
        for _ in 0..n {
            let options = Options::args(&["--store", &store, "--bus", &bus]);
            nodes.push(TestServer::start_with(options).await);
        }
        Some(Cluster {
            nodes,
            _redis: redis,
        })
    }
}

fn sub(rooms: &[&str], tenant: Option<&str>, since: Option<EventId>) -> Subscription {
    Subscription {
        rooms: rooms.iter().map(|r| r.to_string()).collect(),
        event_types: None,
        tenant_id: tenant.map(str::to_string),
        since,
    }
}

/// The next `n` events on `ws`.
async fn events(ws: &mut TestWs, n: usize) -> Vec<EventId> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(ws.event().await.id);
    }
    ids
}

/// Nothing else arrives for a moment (a duplicate or a stray event would).
async fn quiet(ws: &mut TestWs) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    while let Ok(frame) = tokio::time::timeout_at(deadline, ws.next()).await {
        // Metrics pushes are not events: no id, nothing to duplicate.
        use pytake::protocol::ServerFrame;
        if !matches!(
            frame,
            Ok(ServerFrame::Metrics(_) | ServerFrame::QueueStats(_))
        ) {
            panic!("unexpected frame after the last event: {frame:?}");
        }
    }
}

fn ids(events: &[Event]) -> Vec<EventId> {
    events.iter().map(|e| e.id).collect()
}

#[tokio::test]
async fn an_event_posted_to_one_node_reaches_subscribers_on_the_others() {
    let test = "an_event_posted_to_one_node_reaches_subscribers_on_the_others";
    let Some(cluster) = Cluster::start(test, 3).await else {
        return;
    };
    let [a, b, c] = &cluster.nodes[..] else {
        unreachable!()
    };
    let (mut on_b, _) = b
        .subscribed(&b.operator("acme"), sub(&["erp"], None, None))
        .await;
    let (mut on_c, _) = c.subscribed(&c.admin(), sub(&[], None, None)).await;
    let posted = a.publish(&a.admin(), custom("acme", "erp", 1)).await;
    assert_eq!(events(&mut on_b, 1).await, posted);
    assert_eq!(events(&mut on_c, 1).await, posted);
    // Every node reads the same history.
    for node in [a, b, c] {
        assert_eq!(ids(&node.history("tenant_id=acme").await), posted);
    }
}

/// A client of node A disconnects, events are posted to C meanwhile, and it
/// resumes on node B with `since`: it misses nothing and sees nothing twice.
#[tokio::test]
async fn a_client_resumes_on_another_node_without_missing_anything() {
    let test = "a_client_resumes_on_another_node_without_missing_anything";
    let Some(cluster) = Cluster::start(test, 3).await else {
        return;
    };
    let [a, b, c] = &cluster.nodes[..] else {
        unreachable!()
    };
    let token = a.operator("acme");
    let (mut on_a, _) = a.subscribed(&token, sub(&["erp"], None, None)).await;
    let first = c.publish(&c.admin(), custom("acme", "erp", 1)).await;
    assert_eq!(events(&mut on_a, 1).await, first);
    drop(on_a);
    let mut missed = Vec::new();
    for n in 2..=4 {
        missed.extend(c.publish(&c.admin(), custom("acme", "erp", n)).await);
    }
    let (mut on_b, subscribed) = b
        .subscribed(&token, sub(&["erp"], None, Some(first[0])))
        .await;
    assert!(subscribed.head >= missed[2]);
    assert_eq!(events(&mut on_b, 3).await, missed);
    let live = a.publish(&a.admin(), custom("acme", "erp", 5)).await;
    assert_eq!(events(&mut on_b, 1).await, live);
    quiet(&mut on_b).await;
}

/// Publishers on every node at once, subscribers of several scopes on
/// every node: each subscriber's ids are exactly the store's history of
/// its rooms, in order.
#[tokio::test]
async fn publishers_and_subscribers_on_every_node_see_the_stores_order() {
    let test = "publishers_and_subscribers_on_every_node_see_the_stores_order";
    let Some(cluster) = Cluster::start(test, 3).await else {
        return;
    };
    let nodes = &cluster.nodes;
    // (scope, history query, subscriber) on each node.
    let mut subscribers = Vec::new();
    for node in nodes {
        let scopes: [(String, Subscription, &str); 3] = [
            (
                node.operator("acme"),
                sub(&["erp"], None, None),
                "tenant_id=acme&rooms=erp",
            ),
            (
                node.operator("globex"),
                sub(&[], None, None),
                "tenant_id=globex",
            ),
            (node.admin(), sub(&[], None, None), ""),
        ];
        for (token, subscription, query) in scopes {
            let (ws, _) = node.subscribed(&token, subscription).await;
            subscribers.push((query, ws));
        }
    }
    let bodies = [
        custom("acme", "erp", 0),
        custom("acme", "ai", 0),
        custom("globex", "erp", 0),
    ];
    let mut publishers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let (url, admin) = (node.url.clone(), node.admin());
        let bodies = bodies.clone();
        publishers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for n in 0..60 {
                let body = &bodies[(n + i) % bodies.len()];
                let status = client
                    .post(format!("{url}/api/v1/events"))
                    .bearer_auth(&admin)
                    .json(body)
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(status.as_u16(), 201);
            }
        }));
    }
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let all = nodes[0].history("").await;
    assert_eq!(ids(&all), (1..=180).collect::<Vec<_>>(), "dense ids");
    for (query, mut ws) in subscribers {
        let want = ids(&nodes[0].history(query).await);
        assert_eq!(events(&mut ws, want.len()).await, want, "scope {query:?}");
        quiet(&mut ws).await;
    }
}

/// `pytake tail` against node B shows what node A ingests.
#[tokio::test]
async fn tail_on_one_node_follows_ingest_on_another() {
    let test = "tail_on_one_node_follows_ingest_on_another";
    let Some(cluster) = Cluster::start(test, 2).await else {
        return;
    };
    let [a, b] = &cluster.nodes[..] else {
        unreachable!()
    };
    let admin = b.admin();
    let child = tokio::process::Command::new(bin())
        .args(["tail", "--server", &b.url, "--token", &admin])
        .args(["--count", "3", "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Subscribed, not just authenticated: its room is joined.
    b.wait_for_health("/websocket/rooms", 1).await;
    let mut posted = Vec::new();
    for n in 0..3 {
        posted.extend(a.publish(&a.admin(), custom("acme", "erp", n)).await);
    }
    let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success());
    let seen: Vec<EventId> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Event>(l).unwrap().id)
        .collect();
    assert_eq!(seen, posted);
}

/// Node A is killed with SIGKILL while it ingests: every event it
/// acknowledged reaches the subscribers of the other nodes, and A's own
/// client resumes on B without a gap.
#[tokio::test]
async fn a_node_killed_mid_run_loses_no_acknowledged_event() {
    let test = "a_node_killed_mid_run_loses_no_acknowledged_event";
    let Some(mut cluster) = Cluster::start(test, 3).await else {
        return;
    };
    let token = cluster.nodes[0].operator("acme");
    let (mut on_a, _) = cluster.nodes[0]
        .subscribed(&token, sub(&["erp"], None, None))
        .await;
    let (mut on_b, _) = cluster.nodes[1]
        .subscribed(&token, sub(&["erp"], None, None))
        .await;
    let (mut on_c, _) = cluster.nodes[2]
        .subscribed(&cluster.nodes[2].admin(), sub(&[], None, None))
        .await;
    // A publisher posting to A as fast as A answers.
    let (url, admin) = (cluster.nodes[0].url.clone(), cluster.nodes[0].admin());
    let publisher = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut acknowledged: Vec<EventId> = Vec::new();
        for n in 0.. {
            let sent = client
                .post(format!("{url}/api/v1/events"))
                .bearer_auth(&admin)
                .json(&custom("acme", "erp", n))
                .send()
                .await;
            let Ok(response) = sent else { break };
            let Ok(body) = response.json::<Value>().await else {
                break;
            };
            match body["ids"].as_array() {
                Some(ids) => acknowledged.extend(ids.iter().map(|v| v.as_i64().unwrap())),
                None => break,
            }
        }
        acknowledged
    });
    // Let it run, then kill A in the middle of it.
    let seen_on_a = events(&mut on_a, 20).await;
    cluster.nodes[0].kill().await;
    let acknowledged = publisher.await.unwrap();
    assert!(acknowledged.len() >= 20, "{acknowledged:?}");
    assert_eq!(seen_on_a, acknowledged[..20]);

    // Anything A committed without answering is in the store too: the
    // subscribers get the store's history, which holds every
    // acknowledged event.
    let b = &cluster.nodes[1];
    let stored = ids(&b.history("tenant_id=acme&rooms=erp").await);
    assert!(acknowledged.iter().all(|id| stored.contains(id)));
    assert_eq!(events(&mut on_b, stored.len()).await, stored);
    assert_eq!(events(&mut on_c, stored.len()).await, stored);

    // A's client resumes on B from the last event it saw.
    let (mut resumed, _) = b
        .subscribed(&token, sub(&["erp"], None, Some(seen_on_a[19])))
        .await;
    assert_eq!(events(&mut resumed, stored.len() - 20).await, stored[20..]);
    let more = b
        .publish(
            &b.admin(),
            json!({"event_type": "TestEvent", "tenant_id": "acme", "rooms": ["erp"], "data": {}}),
        )
        .await;
    assert_eq!(events(&mut resumed, 1).await, more);
    quiet(&mut resumed).await;
}

/// Events posted to both nodes at once: each node's figures are every
/// node's, exact, and the same (counted once, in the append's transaction,
/// and followed live from the bus).
#[tokio::test]
async fn both_nodes_report_the_same_exact_figures() {
    let Some(cluster) =
        Cluster::start("several_nodes::both_nodes_report_the_same_exact_figures", 2).await
    else {
        return;
    };
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let admin = a.admin();
    let events = crate::dashboard::known_events();
    let (first, second) = events.split_at(events.len() / 2);
    let mut posts = Vec::new();
    for (node, part) in [(a, first), (b, second)] {
        for event in part {
            posts.push(node.publish(&admin, event.clone()));
        }
    }
    let head = futures_util::future::join_all(posts)
        .await
        .into_iter()
        .flatten()
        .max()
        .unwrap();
    let on_a = crate::dashboard::counted(a, &admin, "?tenant_id=acme", head).await;
    let on_b = crate::dashboard::counted(b, &admin, "?tenant_id=acme", head).await;
    for key in [
        "messages_sent",
        "messages_failed",
        "message_failure_rate",
        "active_conversations",
        "erp_calls",
        "erp_errors",
        "erp_latency_p95_ms",
        "ai_tokens",
        "tickets_created",
        "events_total",
    ] {
        assert_eq!(on_a["kpis"][key], on_b["kpis"][key], "{key}");
    }
    assert_eq!(on_a["kpis"]["messages_sent"], 19);
    assert_eq!(on_a["kpis"]["messages_failed"], 1);
    assert_eq!(on_a["kpis"]["active_conversations"], 1);
    assert_eq!(on_a["kpis"]["events_total"], 28);
    let all_a = crate::dashboard::counted(a, &admin, "", head).await;
    let all_b = crate::dashboard::counted(b, &admin, "", head).await;
    assert_eq!(all_a["kpis"]["messages_sent"], 21);
    assert_eq!(all_b["kpis"]["messages_sent"], 21);
    let series = |node: &TestServer| {
        let admin = admin.clone();
        let node_url = node.url.clone();
        async move {
            let body: Value = reqwest::Client::new()
                .get(format!(
                    "{node_url}/api/v1/dashboard/metrics?period=1h&metrics=messages_sent,events"
                ))
                .bearer_auth(admin)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let sum = |m: &str| -> f64 {
                body["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p[m].as_f64().unwrap())
                    .sum()
            };
            (sum("messages_sent"), sum("events"))
        }
    };
    assert_eq!(series(a).await, (21.0, 30.0));
    assert_eq!(series(b).await, (21.0, 30.0));
}
