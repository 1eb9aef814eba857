//! The hub's fan-out, membership and slow-consumer cases; helpers shared
//! with the wire's tests.

use super::*;
use chrono::Utc;
use serde_json::json;
use std::io::Cursor;
use tokio::io::{AsyncReadExt, DuplexStream};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

pub fn event(id: EventId, tenant: &str, rooms: &[&str], event_type: &str) -> Arc<Event> {
    Arc::new(Event {
        id,
        event_type: event_type.into(),
        tenant_id: tenant.into(),
        room: rooms[0].into(),
        rooms: rooms.iter().map(|r| r.to_string()).collect(),
        data: json!({}),
        timestamp: Utc::now(),
    })
}

pub fn tenant(id: &str) -> Scope<TenantId> {
    Scope::Only(TenantId::parse(id).unwrap())
}

pub fn room(name: &str) -> Scope<Room> {
    Scope::Only(Room::parse(name).unwrap())
}

/// A connection on an in-memory pipe of `pipe` bytes; the other end
/// reads what the hub wrote.
pub fn connect(hub: &Hub, pipe: usize, queue: usize) -> (Arc<ConnHandle>, DuplexStream) {
    let (server, client) = tokio::io::duplex(pipe);
    (hub.connect(Box::new(server), queue), client)
}

/// The ids of the event frames readable now on `client`.
pub async fn read_ids(client: &mut DuplexStream) -> Vec<EventId> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        client.read(&mut chunk),
    )
    .await
    {
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
    let mut cursor = Cursor::new(&bytes[..]);
    let mut ids = Vec::new();
    while let Some((header, len)) = FrameHeader::parse(&mut cursor).unwrap() {
        assert!(header.mask.is_none(), "server frames are not masked");
        let at = cursor.position() as usize;
        let text = std::str::from_utf8(&bytes[at..at + len as usize]).unwrap();
        match ServerFrame::parse(text).unwrap() {
            ServerFrame::Event(e) => ids.push(e.id),
            other => panic!("not an event: {other:?}"),
        }
        cursor.set_position((at + len as usize) as u64);
    }
    assert_eq!(cursor.position() as usize, bytes.len(), "a partial frame");
    ids
}

#[tokio::test]
async fn delivers_once_per_connection_and_respects_tenants() {
    let hub = Hub::new(0);
    let (a, mut pipe_a) = connect(&hub, 64 * 1024, 8);
    let (b, mut pipe_b) = connect(&hub, 64 * 1024, 8);
    let _m1 = hub.join(&a, &tenant("acme"), &room("dashboard"), None);
    let _m2 = hub.join(&a, &tenant("acme"), &room("conversations"), None);
    let _m3 = hub.join(&b, &tenant("globex"), &room("dashboard"), None);
    hub.deliver(
        event(1, "acme", &["dashboard", "conversations"], "MessageSent"),
        true,
    );
    assert_eq!(
        read_ids(&mut pipe_a).await,
        [1],
        "once, straight to the socket"
    );
    assert_eq!(read_ids(&mut pipe_b).await, [0; 0], "crossed tenants");
    assert_eq!(*hub.head().borrow(), 1);
}

#[tokio::test]
async fn filters_by_type_and_leaves_on_drop() {
    let hub = Hub::new(0);
    let (a, mut pipe) = connect(&hub, 64 * 1024, 8);
    let types: Arc<[String]> = Arc::from(vec!["ERPCall".to_string()]);
    let m = hub.join(&a, &Scope::All, &room("erp"), Some(types));
    hub.deliver(event(1, "acme", &["erp"], "Other"), true);
    hub.deliver(event(2, "globex", &["erp"], "ERPCall"), true);
    assert_eq!(read_ids(&mut pipe).await, [2]);
    drop(m);
    assert_eq!(hub.room_count(), 0);
    hub.deliver(event(3, "acme", &["erp"], "ERPCall"), true);
    assert_eq!(read_ids(&mut pipe).await, [0; 0]);
}

#[tokio::test]
async fn a_full_queue_kills_the_connection() {
    // A pipe too small for one frame: everything queues.
    let hub = Hub::new(0);
    let (a, _pipe) = connect(&hub, 16, 1);
    let _m = hub.join(&a, &tenant("acme"), &Scope::All, None);
    hub.deliver(event(1, "acme", &["erp"], "X"), true);
    assert_eq!(a.verdict(), None);
    hub.deliver(event(2, "acme", &["erp"], "X"), true);
    assert_eq!(a.verdict(), Some(Verdict::SlowConsumer));
    assert_eq!(hub.stats.slow_consumers.load(Ordering::Relaxed), 1);
}

#[test]
fn close_all_reaches_every_connection_and_later_ones() {
    let hub = Hub::new(0);
    let (a, _pipe) = connect(&hub, 1024, 1);
    hub.close_all();
    assert_eq!(a.verdict(), Some(Verdict::Shutdown));
    let (b, _pipe) = connect(&hub, 1024, 1);
    assert_eq!(b.verdict(), Some(Verdict::Shutdown));
}
