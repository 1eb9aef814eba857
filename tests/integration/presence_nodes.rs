//! Presence across two `pytake serve` processes on PostgreSQL and Redis:
//! both nodes answer the same list and relay each other's changes, and a
//! node killed with SIGKILL has its users go offline within the TTL,
//! announced by the survivor.

use std::time::Duration;

use pytake::protocol::presence::{PresenceChange, PresenceList, Status};
use pytake::protocol::{Role, ServerFrame};

use crate::support::services::{Postgres, Redis};
use crate::support::ws::TestWs;
use crate::support::{rooms, Options, TestServer, DEADLINE};

/// The nodes' presence TTL: short, so the kill test waits seconds.
const TTL: Duration = Duration::from_secs(3);

async fn list(node: &TestServer) -> Vec<(String, u32)> {
    let (status, body) = node
        .get(Some(&node.admin()), "/api/v1/presence?tenant_id=acme")
        .await;
    assert_eq!(status, 200, "{body}");
    let list: PresenceList = serde_json::from_value(body).unwrap();
    assert_eq!(list.online_count as usize, list.users.len());
    list.users
        .into_iter()
        .map(|u| (u.user_id, u.connections))
        .collect()
}

async fn tab(node: &TestServer, user: &str) -> TestWs {
    let token = node.keys().mint_for(
        user,
        Some("acme"),
        Role::Operator,
        Duration::from_secs(3600),
    );
    let mut ws = node.ws("/ws").await;
    ws.auth(&token).await;
    ws
}

/// Reads `Presence` frames until one matches.
async fn presence_until(
    ws: &mut TestWs,
    wanted: impl Fn(&PresenceChange) -> bool,
) -> PresenceChange {
    loop {
        match ws.recv().await {
            ServerFrame::Presence(p) => {
                let p: PresenceChange = serde_json::from_value(p).unwrap();
                if wanted(&p) {
                    return p;
                }
            }
            other => panic!("expected Presence, got {other:?}"),
        }
    }
}

async fn both_list(nodes: &[TestServer], want: &[(&str, u32)]) {
    let want: Vec<(String, u32)> = want.iter().map(|(u, n)| (u.to_string(), *n)).collect();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let a = list(&nodes[0]).await;
        let b = list(&nodes[1]).await;
        if a == want && b == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the nodes list {a:?} and {b:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn two_nodes_share_presence_and_a_killed_nodes_users_go_offline() {
    let test = "two_nodes_share_presence_and_a_killed_nodes_users_go_offline";
    let Some(store) = Postgres::database_or_skip(test).await else {
        return;
    };
    let Some(redis) = Redis::start_or_skip(test).await else {
        return;
    };
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let args = [
            "--store",
            &store,
            "--bus",
            &redis.url(),
            "--presence-ttl",
            "3s",
            "--presence-grace",
            "0s",
        ];
        nodes.push(TestServer::start_with(Options::args(&args)).await);
    }
    let mut sub = rooms(&["presence"]);
    sub.tenant_id = Some("acme".into());
    let (mut watch, _) = nodes[0].subscribed(&nodes[0].admin(), sub).await;

    let _alice = tab(&nodes[0], "alice").await;
    presence_until(&mut watch, |p| p.user_id == "alice").await;
    let _bob = tab(&nodes[1], "bob").await;
    // Node B's change reaches node A's watcher through Redis.
    let p = presence_until(&mut watch, |p| p.user_id == "bob").await;
    assert_eq!(
        (p.status, p.connections, p.online_count),
        (Status::Online, 1, 2)
    );
    let mut alice_on_b = tab(&nodes[1], "alice").await;
    both_list(&nodes, &[("alice", 2), ("bob", 1)]).await;
    alice_on_b
        .send(pytake::protocol::ClientFrame::Presence {
            status: "busy".into(),
        })
        .await;
    let p = presence_until(&mut watch, |p| {
        p.user_id == "alice" && p.status == Status::Busy
    })
    .await;
    assert_eq!(p.connections, 2);

    // Node B dies without a word: bob (there alone) goes offline and
    // alice keeps her tab on A, announced by A within the TTL (plus one
    // heartbeat, when A's sweep notices).
    let killed = tokio::time::Instant::now();
    nodes[1].kill().await;
    let p = presence_until(&mut watch, |p| p.user_id == "bob").await;
    let took = killed.elapsed();
    assert_eq!((p.status, p.connections), (Status::Offline, 0));
    assert!(took < DEADLINE, "bob went offline after {took:?}");
    let alice = list(&nodes[0]).await;
    assert_eq!(alice, [("alice".to_string(), 1)]);
    eprintln!("a killed node's user went offline after {took:?} (TTL {TTL:?})");
}
