//! An echo endpoint built from the gateway's own connection code (upgrade,
//! wire, tungstenite settings, read-error mapping and closing handshake),
//! so the Autobahn testsuite, which needs a peer that echoes, tests the
//! code browsers meet. Compiled only with the `conformance` feature and
//! served only by `examples/autobahn_echo.rs`: `pytake serve` never routes
//! to it.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::close::{finish, read_error};
use super::connection::{socket_config, Exit};
use super::upgrade::WsUpgrade;
use super::wire::{Wire, WireStream};

/// Frames the echo's own writes may queue; the task writes one message at
/// a time, so this only bounds a burst of pongs and echoes.
const ECHO_QUEUE: usize = 64;

/// Serves the echo endpoint on `/` until the listener fails. Messages up
/// to `max_message_bytes` are echoed (Autobahn's 9.x cases send 16 MiB).
pub async fn serve(listener: TcpListener, max_message_bytes: usize) -> std::io::Result<()> {
    let app = Router::new().route(
        "/",
        get(move |mut ws: WsUpgrade| async move {
            let deflate = ws.negotiate_deflate(true);
            ws.on_upgrade(move |io| echo(io, max_message_bytes, deflate))
        }),
    );
    axum::serve(listener, app).await
}

/// Echoes every text and binary message back until the peer closes or
/// breaks the protocol; pings are answered by tungstenite as it reads.
/// With permessage-deflate negotiated (`deflate`), messages are read and
/// echoed through the gateway's inflater and compressor (Autobahn's 12.x
/// and 13.x cases).
async fn echo(io: TokioIo<Upgraded>, max_message_bytes: usize, deflate: bool) {
    let wire = Arc::new(Wire::new(Box::new(io), ECHO_QUEUE));
    let stream = match deflate {
        true => WireStream::deflating(wire.clone(), max_message_bytes),
        false => WireStream::new(wire.clone()),
    };
    let mut socket = WebSocketStream::from_raw_socket(
        stream,
        Role::Server,
        Some(socket_config(max_message_bytes)),
    )
    .await;
    let exit = loop {
        match socket.next().await {
            None => break Exit::Gone,
            Some(Err(e)) => break read_error(e),
            Some(Ok(Message::Close(_))) => break Exit::PeerClosed,
            Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                if socket.send(message).await.is_err() {
                    break Exit::Gone;
                }
            }
            Some(Ok(_)) => {}
        }
    };
    finish(&mut socket, &wire, exit, None).await;
}
