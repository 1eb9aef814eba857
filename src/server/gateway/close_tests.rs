//! The closing handshake when the socket is backed up: the echo of a
//! client's Close must follow the bytes already on their way, not be
//! dropped with them.

use std::sync::Arc;

use chrono::Utc;
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::close::finish;
use super::connection::{socket_config, Exit};
use super::wire::{Delivery, Offer, Wire, WireStream};
use crate::protocol::Event;

#[tokio::test]
async fn a_client_close_is_echoed_behind_a_partly_written_frame() {
    // A pipe of 64 bytes: a 2 KB event is partly written, the rest queued.
    let (server_io, mut client) = tokio::io::duplex(64);
    let wire = Arc::new(Wire::new(Box::new(server_io), 16));
    let event = Arc::new(Event {
        id: 1,
        event_type: "Filler".into(),
        tenant_id: "acme".into(),
        room: "erp".into(),
        rooms: vec!["erp".into()],
        data: json!({"pad": "x".repeat(2048)}),
        timestamp: Utc::now(),
    });
    let delivery = Arc::new(Delivery::event(event));
    assert_eq!(wire.offer(&delivery, true), Offer::Queued);

    // The client's Close (code 1000, masked with a zero key).
    client
        .write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8])
        .await
        .unwrap();
    let server = tokio::spawn({
        let wire = wire.clone();
        async move {
            let mut socket = WebSocketStream::from_raw_socket(
                WireStream::new(wire.clone()),
                Role::Server,
                Some(socket_config(65536)),
            )
            .await;
            let message = socket.next().await.unwrap().unwrap();
            assert!(matches!(message, Message::Close(_)));
            finish(&mut socket, &wire, Exit::PeerClosed, None).await;
        }
    });
    // Read until the server is done and the wire goes away.
    let reading = tokio::spawn(async move {
        let mut received = Vec::new();
        let mut chunk = [0u8; 256];
        loop {
            match tokio::time::timeout(std::time::Duration::from_secs(5), client.read(&mut chunk))
                .await
            {
                Ok(Ok(n)) if n > 0 => received.extend_from_slice(&chunk[..n]),
                _ => return received,
            }
        }
    });
    server.await.unwrap();
    drop(wire);
    let received = reading.await.unwrap();
    assert_eq!(
        received.len(),
        delivery.frame.len() + 4,
        "the event, then the Close"
    );
    assert_eq!(&received[..delivery.frame.len()], &delivery.frame[..]);
    assert_eq!(&received[delivery.frame.len()..], &[0x88, 0x02, 0x03, 0xe8]);
}
