//! The bus contract (`pytake::server::bus::Bus`), case by case, on every
//! bus: the in-process one and Redis (a throwaway `redis-server`). Each
//! "node" is a bus opened on the same store, as `pytake serve` opens them;
//! events are appended to the store first, as ingest does.
//!
//! Tenants are named per test: the shared Redis carries every test's
//! channels.

use std::sync::Arc;

use chrono::Utc;
use pytake::protocol::{EventId, Room, Scope, ServerFrame, TenantId, ValidEvent};
use pytake::server::bus::{
    self, Bus, BusEvent, BusFrame, BusMessage, BusReceiver, BusState, FrameReceiver,
};
use pytake::server::storage::{self, AppendRequest, EventStore, StoreOptions};
use tempfile::TempDir;
use tokio::sync::broadcast::error::RecvError;

use crate::support::services::Redis;
use crate::support::DEADLINE;

/// A SQLite store in a temp dir: the record every bus reads gaps from.
async fn sqlite_store() -> (TempDir, Arc<dyn EventStore>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pytake.db").display());
    let stores = storage::open(&url, &StoreOptions::default()).await.unwrap();
    (dir, stores.events)
}

fn tenant(id: &str) -> Scope<TenantId> {
    Scope::Only(TenantId::parse(id).unwrap())
}

fn event(tenant: &str, n: usize) -> ValidEvent {
    ValidEvent {
        event_type: "MessageSent".into(),
        tenant_id: tenant.into(),
        rooms: vec!["conversations".into()],
        data: serde_json::json!({"n": n}),
        timestamp: Utc::now(),
        idempotency_key: None,
        fingerprint: None,
    }
}

/// Stores `n` events of `tenant` as one request; returns them as ingest
/// publishes them.
async fn append(store: &dyn EventStore, tenant: &str, n: usize) -> Vec<BusMessage> {
    let request = AppendRequest {
        idempotency_key: None,
        key_scope: Scope::All,
        fingerprint: None,
        events: (0..n).map(|i| event(tenant, i)).collect(),
    };
    let outcome = store.append(vec![request], Utc::now()).await.unwrap();
    let outcome = outcome.into_iter().next().unwrap().unwrap();
    outcome
        .events
        .into_iter()
        .map(|a| BusMessage::Event {
            event: a.event,
            prev: a.prev,
        })
        .collect()
}

fn ids(messages: &[BusMessage]) -> Vec<EventId> {
    messages
        .iter()
        .filter_map(|m| match m {
            BusMessage::Event { event, .. } => Some(event.id),
            BusMessage::Frame(_) => None,
        })
        .collect()
}

/// The next `n` event ids `rx` receives of `tenant`, others skipped.
async fn receive(rx: &mut BusReceiver, tenant: &str, n: usize) -> Vec<EventId> {
    let mut got = Vec::new();
    while got.len() < n {
        let message = tokio::time::timeout(DEADLINE, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("only {got:?} of {n} events of {tenant} arrived"));
        match message {
            Ok(BusEvent { event, .. }) if event.tenant_id == tenant => got.push(event.id),
            Ok(_) => {}
            Err(RecvError::Lagged(n)) => panic!("lagged by {n}"),
            Err(RecvError::Closed) => panic!("bus closed"),
        }
    }
    got
}

/// Nothing more of `tenant` arrives within a moment (a negative check:
/// bounded by the time a loopback message takes, many times over).
async fn nothing_more(rx: &mut BusReceiver, tenant: &str) {
    let quiet = std::time::Duration::from_millis(300);
    while let Ok(message) = tokio::time::timeout(quiet, rx.recv()).await {
        if let Ok(BusEvent { event, .. }) = message {
            assert_ne!(event.tenant_id, tenant, "an unexpected event {}", event.id);
        }
    }
}

/// The cases every bus passes.
async fn publish_and_receive_in_order(bus: Arc<dyn Bus>, store: &dyn EventStore, t: &str) {
    let mut rx = bus.subscribe();
    let _watch = bus.watch(tenant(t)).await.unwrap();
    let mut sent = Vec::new();
    for n in [1, 5, 2] {
        let batch = append(store, t, n).await;
        sent.extend(ids(&batch));
        bus.publish(batch).await.unwrap();
    }
    assert_eq!(receive(&mut rx, t, sent.len()).await, sent);
    assert_eq!(bus.state(), BusState::Up);
}

#[tokio::test]
async fn memory_bus_delivers_in_order() {
    let (_dir, store) = sqlite_store().await;
    let bus = bus::open("memory", store.clone()).await.unwrap();
    assert_eq!(bus.kind(), "memory");
    publish_and_receive_in_order(bus, store.as_ref(), "mem-order").await;
}

#[tokio::test]
async fn redis_bus_delivers_in_order() {
    let Some(redis) = Redis::shared_or_skip("redis_bus_delivers_in_order").await else {
        return;
    };
    let (_dir, store) = sqlite_store().await;
    let bus = bus::open(&redis.url(), store.clone()).await.unwrap();
    assert_eq!(bus.kind(), "redis");
    publish_and_receive_in_order(bus, store.as_ref(), "redis-order").await;
}

/// A frame that is not stored (presence, typing).
fn frame(tenant: &str, n: i64) -> BusMessage {
    BusMessage::Frame(BusFrame {
        tenant: TenantId::parse(tenant).unwrap(),
        room: Room::parse("presence").unwrap(),
        frame: Arc::new(ServerFrame::Presence(serde_json::json!({"n": n}))),
        except: Some(7),
    })
}

/// The next frame of `tenant` on `rx` (events and other tenants skipped):
/// its `n` and `except`.
async fn receive_frame(rx: &mut FrameReceiver, tenant: &str) -> (i64, Option<u64>) {
    loop {
        let message = tokio::time::timeout(DEADLINE, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no frame of {tenant} arrived"));
        if let Ok(BusFrame {
            tenant: t,
            room,
            frame,
            except,
        }) = message
        {
            if t.as_str() != tenant {
                continue;
            }
            assert_eq!(room.as_str(), "presence");
            let ServerFrame::Presence(p) = frame.as_ref() else {
                panic!("not the frame sent: {frame:?}")
            };
            return (p["n"].as_i64().unwrap(), except);
        }
    }
}

/// A frame reaches this node's receivers as published (with `except`,
/// which names a connection of this node), and never touches the store.
#[tokio::test]
async fn memory_bus_passes_frames_through() {
    let (_dir, store) = sqlite_store().await;
    let bus = bus::open("memory", store.clone()).await.unwrap();
    let mut rx = bus.subscribe_frames();
    let _watch = bus.watch(tenant("mem-frames")).await.unwrap();
    bus.publish(vec![frame("mem-frames", 1)]).await.unwrap();
    assert_eq!(receive_frame(&mut rx, "mem-frames").await, (1, Some(7)));
    assert_eq!(
        store.last_event_id().await.unwrap(),
        0,
        "frames are not stored"
    );
}

/// Node A publishes a frame: A's receivers get it at once (with `except`),
/// B's once B watches the tenant (without: the connection id is A's), and
/// nobody gets a frame of a tenant it does not watch.
#[tokio::test]
async fn redis_carries_frames_to_the_nodes_that_watch_the_tenant() {
    let test = "redis_carries_frames_to_the_nodes_that_watch_the_tenant";
    let Some(redis) = Redis::shared_or_skip(test).await else {
        return;
    };
    let (_dir, store) = sqlite_store().await;
    let a = bus::open(&redis.url(), store.clone()).await.unwrap();
    let b = bus::open(&redis.url(), store.clone()).await.unwrap();
    let mut on_a = a.subscribe_frames();
    let mut on_b = b.subscribe_frames();
    let mut events_on_b = b.subscribe();
    let _watch_a = a.watch(tenant("frames-watched")).await.unwrap();
    let _watch_b = b.watch(tenant("frames-watched")).await.unwrap();
    a.publish(vec![frame("frames-unwatched", 1)]).await.unwrap();
    a.publish(vec![frame("frames-watched", 2)]).await.unwrap();
    assert_eq!(
        receive_frame(&mut on_a, "frames-watched").await,
        (2, Some(7))
    );
    assert_eq!(receive_frame(&mut on_b, "frames-watched").await, (2, None));
    // Events still flow beside frames, on their own receivers.
    let watched = append(store.as_ref(), "frames-watched", 1).await;
    let want = ids(&watched);
    a.publish(watched).await.unwrap();
    assert_eq!(receive(&mut events_on_b, "frames-watched", 1).await, want);
    // A got no echo of its frame, B nothing of the unwatched tenant.
    assert_eq!(
        no_more_frames(&mut on_a).await,
        [0; 0],
        "an echo of A's own frame"
    );
    assert_eq!(
        no_more_frames(&mut on_b).await,
        [0; 0],
        "an unwatched tenant's frame"
    );
}

/// The `n` of the frames `rx` gets before it is quiet for a while (a
/// negative check, bounded by a loopback message's time many times over).
async fn no_more_frames(rx: &mut FrameReceiver) -> Vec<i64> {
    let quiet = std::time::Duration::from_millis(300);
    let mut got = Vec::new();
    while let Ok(message) = tokio::time::timeout(quiet, rx.recv()).await {
        let frame = message.expect("no lag");
        if let ServerFrame::Presence(p) = frame.frame.as_ref() {
            got.push(p["n"].as_i64().unwrap());
        }
    }
    got
}

/// A node that watches a tenant both by itself and through every tenant
/// (a tenant's client and an admin's on one node) subscribes to the
/// tenant's frames channel and to the pattern of all of them, so Redis
/// sends it each frame twice: its receivers get one.
#[tokio::test]
async fn redis_delivers_a_frame_once_to_a_node_watching_the_tenant_twice() {
    let test = "redis_delivers_a_frame_once_to_a_node_watching_the_tenant_twice";
    let Some(redis) = Redis::shared_or_skip(test).await else {
        return;
    };
    let (_dir, store) = sqlite_store().await;
    let a = bus::open(&redis.url(), store.clone()).await.unwrap();
    let b = bus::open(&redis.url(), store.clone()).await.unwrap();
    let mut on_b = b.subscribe_frames();
    let one = b.watch(tenant("frames-twice")).await.unwrap();
    let _all = b.watch(Scope::All).await.unwrap();
    a.publish(vec![frame("frames-twice", 1)]).await.unwrap();
    assert_eq!(receive_frame(&mut on_b, "frames-twice").await, (1, None));
    assert_eq!(no_more_frames(&mut on_b).await, [0; 0], "a second copy");
    // Without the tenant's own watch, the pattern delivers it.
    drop(one);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut n = 2;
    loop {
        a.publish(vec![frame("frames-twice", n)]).await.unwrap();
        let got = no_more_frames(&mut on_b).await;
        assert!(got.len() <= 1, "frames doubled: {got:?}");
        if got == [n] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no frame through the pattern"
        );
        n += 1;
    }
}

/// Node A publishes, node B (same store, same Redis) receives; B gets
/// nothing of a tenant it does not watch.
#[tokio::test]
async fn redis_carries_a_watched_tenant_to_another_node_and_nothing_else() {
    let test = "redis_carries_a_watched_tenant_to_another_node_and_nothing_else";
    let Some(redis) = Redis::shared_or_skip(test).await else {
        return;
    };
    let (_dir, store) = sqlite_store().await;
    let a = bus::open(&redis.url(), store.clone()).await.unwrap();
    let b = bus::open(&redis.url(), store.clone()).await.unwrap();
    let mut on_b = b.subscribe();
    let _watch = b.watch(tenant("two-nodes-watched")).await.unwrap();
    let unwatched = append(store.as_ref(), "two-nodes-busy", 3).await;
    a.publish(unwatched).await.unwrap();
    let watched = append(store.as_ref(), "two-nodes-watched", 2).await;
    let want = ids(&watched);
    a.publish(watched).await.unwrap();
    assert_eq!(receive(&mut on_b, "two-nodes-watched", 2).await, want);
    nothing_more(&mut on_b, "two-nodes-busy").await;
}

/// Node A commits 1..3 and node B commits 4..5, but B's PUBLISH reaches
/// Redis first. A third node must deliver 1..5 in order: it sees 4's
/// `prev` is 3, reads 1..3 from the store, and drops A's late copies.
#[tokio::test]
async fn redis_restores_id_order_across_publishers() {
    let test = "redis_restores_id_order_across_publishers";
    let Some(redis) = Redis::shared_or_skip(test).await else {
        return;
    };
    let (_dir, store) = sqlite_store().await;
    let t = "reorder";
    let a = bus::open(&redis.url(), store.clone()).await.unwrap();
    let b = bus::open(&redis.url(), store.clone()).await.unwrap();
    let c = bus::open(&redis.url(), store.clone()).await.unwrap();
    let mut on_c = c.subscribe();
    let _watch = c.watch(tenant(t)).await.unwrap();
    let first = append(store.as_ref(), t, 3).await;
    let second = append(store.as_ref(), t, 2).await;
    let mut want = ids(&first);
    want.extend(ids(&second));
    b.publish(second).await.unwrap();
    a.publish(first).await.unwrap();
    assert_eq!(receive(&mut on_c, t, 5).await, want);
    nothing_more(&mut on_c, t).await;
}

/// A node that committed and died before publishing: the others deliver
/// its events anyway, from the store, within two reconcile ticks.
#[tokio::test]
async fn redis_delivers_what_a_dead_publisher_never_published() {
    let test = "redis_delivers_what_a_dead_publisher_never_published";
    let Some(redis) = Redis::shared_or_skip(test).await else {
        return;
    };
    let (_dir, store) = sqlite_store().await;
    let t = "dead-publisher";
    let b = bus::open(&redis.url(), store.clone()).await.unwrap();
    let mut on_b = b.subscribe();
    let _watch = b.watch(tenant(t)).await.unwrap();
    let lost = append(store.as_ref(), t, 4).await;
    assert_eq!(receive(&mut on_b, t, 4).await, ids(&lost));
}

/// Watching every tenant delivers every tenant's events in global id
/// order, whichever node published them and in whatever order.
#[tokio::test]
async fn redis_watching_every_tenant_orders_across_tenants() {
    let test = "redis_watching_every_tenant_orders_across_tenants";
    // A server of its own: a pattern subscription on the shared one would
    // see every other test's events.
    let Some(redis) = Redis::start_or_skip(test).await else {
        return;
    };
    let (_dir, store) = sqlite_store().await;
    let a = bus::open(&redis.url(), store.clone()).await.unwrap();
    let b = bus::open(&redis.url(), store.clone()).await.unwrap();
    let mut on_b = b.subscribe();
    let _all = b.watch(Scope::All).await.unwrap();
    let one = append(store.as_ref(), "acme", 2).await;
    let two = append(store.as_ref(), "globex", 2).await;
    let three = append(store.as_ref(), "acme", 1).await;
    a.publish(three).await.unwrap();
    a.publish(two).await.unwrap();
    a.publish(one).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 5 {
        match tokio::time::timeout(DEADLINE, on_b.recv()).await.unwrap() {
            Ok(BusEvent { event, .. }) => got.push(event.id),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, [1, 2, 3, 4, 5]);
}

/// Redis restarts: the bus reports it down, then up again, and what was
/// committed meanwhile reaches the subscribers of every node, in order.
#[tokio::test]
async fn redis_restart_loses_nothing() {
    let test = "redis_restart_loses_nothing";
    let Some(mut redis) = Redis::start_or_skip(test).await else {
        return;
    };
    let (_dir, store) = sqlite_store().await;
    let t = "restart";
    let a = bus::open(&redis.url(), store.clone()).await.unwrap();
    let b = bus::open(&redis.url(), store.clone()).await.unwrap();
    let mut on_b = b.subscribe();
    let _watch = b.watch(tenant(t)).await.unwrap();
    let before = append(store.as_ref(), t, 2).await;
    let mut want = ids(&before);
    a.publish(before).await.unwrap();
    assert_eq!(receive(&mut on_b, t, 2).await, want);

    redis.stop().await;
    wait_for(|| matches!(b.state(), BusState::Down { .. })).await;
    let during = append(store.as_ref(), t, 3).await;
    want = ids(&during);
    // Fails or is skipped: the events are stored either way.
    let _ = a.publish(during).await;
    assert_eq!(
        receive(&mut on_b, t, 3).await,
        want,
        "delivered from the store"
    );

    redis.restart_stopped().await;
    wait_for(|| b.state() == BusState::Up).await;
    let after = append(store.as_ref(), t, 2).await;
    want = ids(&after);
    a.publish(after).await.unwrap_or_else(|e| {
        // The publisher may not have noticed the restart yet: the
        // reconciler still delivers.
        eprintln!("publish after restart: {e}");
    });
    assert_eq!(receive(&mut on_b, t, 2).await, want);
    nothing_more(&mut on_b, t).await;
}

/// Waits for a condition the bus's task sets, with the usual deadline.
async fn wait_for(condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "condition not met");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A bad URL is a usage error listing the schemes; an unreachable Redis
/// is an error naming where it was looked for.
#[tokio::test]
async fn bad_bus_urls_say_what_is_wrong() {
    assert!(bus::check_url("kafka://x")
        .unwrap_err()
        .contains("memory, redis://HOST:PORT"));
    let (_dir, store) = sqlite_store().await;
    let error = match bus::open("redis://:hunter2@127.0.0.1:1", store).await {
        Ok(_) => panic!("opened a bus on port 1"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("127.0.0.1:1"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
}
