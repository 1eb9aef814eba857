use std::future::poll_fn;

use super::*;
use crate::protocol::{Room, Scope, TenantId};
use crate::server::gateway::hub::tests::{connect, event, read_ids};
use crate::server::gateway::hub::Hub;

fn delivery(id: EventId, tenant: &str, room: &str, event_type: &str) -> Arc<Delivery> {
    Arc::new(Delivery::event(event(id, tenant, &[room], event_type)))
}

/// Event `id` in acme's `erp` room.
fn erp(id: EventId) -> Arc<Delivery> {
    delivery(id, "acme", "erp", "X")
}

/// A replay of acme's `erp` room from the start.
fn erp_replay() -> Seam {
    Seam {
        floor: 0,
        tenant: Scope::Only(TenantId::parse("acme").unwrap()),
        rooms: Scope::Only(vec![Room::parse("erp").unwrap()]),
        types: None,
    }
}

#[test]
fn a_seam_covers_only_what_its_replay_sent() {
    let seam = Seam {
        floor: 10,
        tenant: Scope::Only(TenantId::parse("acme").unwrap()),
        rooms: Scope::Only(vec![Room::parse("erp").unwrap()]),
        types: Some(vec!["ERPCall".into()]),
    };
    let covers = |id, tenant, room, event_type| {
        seam.covers_delivery(&delivery(id, tenant, room, event_type))
    };
    assert!(covers(9, "acme", "erp", "ERPCall"));
    assert!(!covers(11, "acme", "erp", "ERPCall"), "above the floor");
    assert!(!covers(9, "globex", "erp", "ERPCall"), "other tenant");
    assert!(!covers(9, "acme", "ai", "ERPCall"), "other room");
    assert!(
        !covers(9, "acme", "erp", "Other"),
        "filtered out of the replay"
    );
    let everything = Seam {
        floor: 10,
        tenant: Scope::All,
        rooms: Scope::All,
        types: None,
    };
    assert!(everything.covers_delivery(&delivery(3, "globex", "ai", "Other")));
}

#[tokio::test]
async fn a_full_socket_queues_whole_frames_in_order() {
    let hub = Hub::new(0);
    // Smaller than one frame: the hub's first write is partial.
    let (conn, mut pipe) = connect(&hub, 100, 8);
    let wire = &conn.wire;
    for id in 1..=3 {
        assert_eq!(wire.offer(&erp(id), true), Offer::Queued);
    }
    assert_eq!(wire.lock().queue.len(), 3, "nothing written past a queue");
    let drain = tokio::spawn({
        let wire = wire.clone();
        async move { poll_fn(|cx| wire.poll_drain(cx)).await }
    });
    assert_eq!(read_ids(&mut pipe).await, [1, 2, 3]);
    drain.await.unwrap().unwrap();
    assert_eq!(wire.lock().events, 0);
}

#[tokio::test]
async fn parked_events_follow_the_reply_and_replayed_ones_are_dropped() {
    let hub = Hub::new(0);
    let (conn, mut pipe) = connect(&hub, 64 * 1024, 8);
    let wire = &conn.wire;
    let parked = wire.park();
    wire.begin_replay(erp_replay());
    // Live while the replay runs, before it read the head: 5 is in the
    // replay, 6 is not.
    assert_eq!(wire.offer(&erp(5), true), Offer::Queued);
    assert_eq!(wire.offer(&erp(6), true), Offer::Queued);
    // The replay, written by the task before the parked events.
    wire.replaying_to(5);
    let replayed = erp(5);
    let mut stream = WireStream::new(wire.clone());
    tokio::io::AsyncWriteExt::write_all(&mut stream, &replayed.frame)
        .await
        .unwrap();
    wire.end_replay();
    parked.release();
    assert_eq!(wire.lock().events, 1, "the parked copy of 5 is dropped");
    poll_fn(|cx| wire.poll_drain(cx)).await.unwrap();
    assert_eq!(read_ids(&mut pipe).await, [5, 6]);
    // Past the floor, the seam is gone and the hub writes directly.
    assert_eq!(wire.offer(&erp(7), true), Offer::Written);
    assert_eq!(read_ids(&mut pipe).await, [7]);
}

#[tokio::test]
async fn copies_of_replayed_events_never_fill_the_queue() {
    let hub = Hub::new(0);
    let (conn, mut pipe) = connect(&hub, 64 * 1024, 2);
    let wire = &conn.wire;
    let parked = wire.park();
    wire.begin_replay(erp_replay());
    // A hub behind the bus offers what the replay sends: more copies
    // than the queue holds, before the replay read the head, during
    // the replay and after it.
    for id in 1..=2 {
        assert_eq!(wire.offer(&erp(id), false), Offer::Queued);
    }
    wire.replaying_to(10);
    assert_eq!(wire.lock().events, 0, "parked copies stop counting");
    let mut stream = WireStream::new(wire.clone());
    for id in 1..=5 {
        if id > 2 {
            assert_eq!(wire.offer(&erp(id), false), Offer::Replayed);
        }
        let frame = erp(id).frame.clone();
        tokio::io::AsyncWriteExt::write_all(&mut stream, &frame)
            .await
            .unwrap();
    }
    wire.end_replay();
    parked.release();
    for id in 6..=10 {
        assert_eq!(wire.offer(&erp(id), false), Offer::Replayed);
    }
    // Other scopes are not covered, and neither is anything past 10.
    assert_eq!(
        wire.offer(&delivery(7, "acme", "ai", "X"), false),
        Offer::Queued
    );
    assert_eq!(wire.offer(&erp(11), false), Offer::Queued);
    assert_eq!(wire.offer(&erp(12), false), Offer::Full);
    poll_fn(|cx| wire.poll_drain(cx)).await.unwrap();
    assert_eq!(read_ids(&mut pipe).await, [1, 2, 3, 4, 5, 7, 11]);
}

#[tokio::test]
async fn a_replay_that_does_not_end_vouches_for_nothing() {
    let hub = Hub::new(0);
    let (conn, mut pipe) = connect(&hub, 64 * 1024, 8);
    let wire = &conn.wire;
    let parked = wire.park();
    wire.begin_replay(erp_replay());
    wire.replaying_to(10);
    parked.release();
    assert_eq!(wire.offer(&erp(3), true), Offer::Written);
    assert_eq!(read_ids(&mut pipe).await, [3]);
}

#[tokio::test]
async fn an_abandoned_answer_closes_the_wire() {
    let hub = Hub::new(0);
    let (conn, _pipe) = connect(&hub, 64 * 1024, 8);
    let wire = &conn.wire;
    let parked = wire.park();
    assert_eq!(wire.offer(&erp(1), true), Offer::Queued);
    // A replay failed half-way: nothing live may follow it.
    drop(parked);
    assert_eq!(wire.lock().events, 0);
    assert_eq!(wire.offer(&erp(2), true), Offer::Closed);
}

#[tokio::test]
async fn a_closing_wire_drops_its_backlog_and_takes_no_events() {
    let hub = Hub::new(0);
    // Smaller than a frame: event 1 is begun, event 2 waits behind it.
    let (conn, mut pipe) = connect(&hub, 16, 8);
    let wire = &conn.wire;
    assert_eq!(wire.offer(&erp(1), true), Offer::Queued);
    assert_eq!(wire.offer(&erp(2), true), Offer::Queued);
    let _parked = wire.park();
    assert_eq!(wire.offer(&erp(3), true), Offer::Queued);
    wire.close();
    assert_eq!(wire.lock().events, 1, "only the begun frame is kept");
    assert_eq!(wire.offer(&erp(4), true), Offer::Closed);
    let drain = tokio::spawn({
        let wire = wire.clone();
        async move { poll_fn(|cx| wire.poll_drain(cx)).await }
    });
    assert_eq!(read_ids(&mut pipe).await, [1]);
    drain.await.unwrap().unwrap();
}
