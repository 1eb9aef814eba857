//! Presence across two `pytake serve` processes on PostgreSQL and Redis:
//! both nodes answer the same list and relay each other's changes, a node
//! killed with SIGKILL has its users go offline within the TTL, announced
//! by the survivor, and a node that stalls past the TTL announces its
//! users again when it wakes.

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

/// Two nodes on a fresh database and Redis, with the short TTL and no
/// grace; `None` when the services cannot start (outside CI).
async fn two_nodes(test: &str) -> Option<(Vec<TestServer>, Redis)> {
    let store = Postgres::database_or_skip(test).await?;
    let redis = Redis::start_or_skip(test).await?;
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
    Some((nodes, redis))
}

/// A watcher of acme's `presence` room on `node`.
async fn watcher(node: &TestServer) -> TestWs {
    let mut sub = rooms(&["presence"]);
    sub.tenant_id = Some("acme".into());
    node.subscribed(&node.admin(), sub).await.0
}

/// The next `Presence` frame of `user`: its status and connections.
async fn next_of(ws: &mut TestWs, user: &str) -> (Status, u32) {
    let p = presence_until(ws, |p| p.user_id == user).await;
    (p.status, p.connections)
}

#[tokio::test]
async fn two_nodes_share_presence_and_a_killed_nodes_users_go_offline() {
    let test = "two_nodes_share_presence_and_a_killed_nodes_users_go_offline";
    let Some((mut nodes, _redis)) = two_nodes(test).await else {
        return;
    };
    let mut watch = watcher(&nodes[0]).await;

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

/// A change that one node's own view does not show is still announced:
/// alice has a tab on A and one on B; when A's closes, A sees her leave
/// its node while B still has her, and the tenant hears "1 connection".
#[tokio::test]
async fn a_tab_closing_on_one_node_is_announced_with_the_other_nodes_count() {
    let test = "a_tab_closing_on_one_node_is_announced_with_the_other_nodes_count";
    let Some((nodes, _redis)) = two_nodes(test).await else {
        return;
    };
    let mut watch = watcher(&nodes[1]).await;
    let on_a = tab(&nodes[0], "alice").await;
    assert_eq!(next_of(&mut watch, "alice").await, (Status::Online, 1));
    let _on_b = tab(&nodes[1], "alice").await;
    assert_eq!(next_of(&mut watch, "alice").await, (Status::Online, 2));
    drop(on_a);
    assert_eq!(next_of(&mut watch, "alice").await, (Status::Online, 1));
    both_list(&nodes, &[("alice", 1)]).await;
}

/// Node A stalls (SIGSTOP) past the TTL: B takes it for dead and announces
/// alice offline. When A wakes (SIGCONT), its heartbeat finds it was
/// swept, and it announces alice online again, so the clients' view and
/// the list agree.
#[tokio::test]
async fn a_node_that_stalls_past_the_ttl_announces_its_users_again() {
    let test = "a_node_that_stalls_past_the_ttl_announces_its_users_again";
    let Some((nodes, _redis)) = two_nodes(test).await else {
        return;
    };
    let mut watch = watcher(&nodes[1]).await;
    let _alice = tab(&nodes[0], "alice").await;
    assert_eq!(next_of(&mut watch, "alice").await, (Status::Online, 1));
    nodes[0].signal(nix::sys::signal::Signal::SIGSTOP);
    let offline = next_of(&mut watch, "alice").await;
    nodes[0].signal(nix::sys::signal::Signal::SIGCONT);
    assert_eq!(offline, (Status::Offline, 0), "swept by B");
    assert_eq!(next_of(&mut watch, "alice").await, (Status::Online, 1));
    both_list(&nodes, &[("alice", 1)]).await;
}
