//! The end of a connection: the closing handshake and the close codes
//! RFC 6455 gives read failures. Shared by the gateway's connections and
//! the conformance echo, so what Autobahn tests is what clients meet.

use std::future::poll_fn;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::connection::{Exit, Socket, CLOSE_GRACE};
use super::stats;
use super::wire::Wire;
use crate::protocol::{close, ServerFrame};

impl Exit {
    /// How `/metrics` counts this end ([`super::stats::CLOSE_KINDS`]).
    pub(super) fn close_kind(&self) -> usize {
        match self {
            Exit::Gone => stats::CONNECTION_LOST,
            Exit::PeerClosed => stats::CLIENT_CLOSED,
            Exit::Close(code, _) => stats::close_kind(*code),
            Exit::Slow(_) => stats::close_kind(close::SLOW_CONSUMER),
        }
    }
}

/// Ends a connection the way `exit` says: nothing for a peer that is gone;
/// for one that sent Close, its echo; otherwise `error` (if any), our
/// Close, and the client's reply, so it reads our close code instead of a
/// connection reset. A peer that reads nothing is dropped after
/// [`CLOSE_GRACE`]. Shared by every endpoint built on the gateway's
/// connection code.
pub(super) async fn finish(
    socket: &mut Socket,
    wire: &Wire,
    exit: Exit,
    error: Option<ServerFrame>,
) {
    wire.close();
    let (code, reason) = match exit {
        Exit::Gone => return,
        Exit::PeerClosed => {
            // tungstenite hands the echo to the wire but, the handshake
            // being over, does not flush the wire itself: a backed-up
            // socket would keep the echo queued while the task ends.
            let _ = tokio::time::timeout(
                CLOSE_GRACE,
                Box::pin(async {
                    let _ = socket.flush().await;
                    let _ = poll_fn(|cx| wire.poll_drain(cx)).await;
                }),
            )
            .await;
            return;
        }
        Exit::Close(code, reason) => (code, reason),
        Exit::Slow(slow) => (close::SLOW_CONSUMER, slow.reason().to_string()),
    };
    if let Some(error) = error {
        let text = Message::Text(Utf8Bytes::from(error.to_text()));
        let _ = tokio::time::timeout(CLOSE_GRACE, socket.send(text)).await;
    }
    let frame = Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from(close_reason(reason)),
    }));
    let _ = tokio::time::timeout(
        CLOSE_GRACE,
        Box::pin(async {
            if socket.send(frame).await.is_ok() {
                while let Some(Ok(msg)) = socket.next().await {
                    if matches!(msg, Message::Close(_)) {
                        break;
                    }
                }
            }
        }),
    )
    .await;
}

/// A close reason fits the 123 bytes a control frame leaves it; a longer
/// one is cut at a character boundary.
fn close_reason(mut reason: String) -> String {
    const MAX: usize = 123;
    if reason.len() > MAX {
        let mut end = MAX;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

/// A read failure, failed the way RFC 6455 asks: an oversized frame gets
/// 1009, text that is not UTF-8 1007 (tungstenite checks fragments as they
/// arrive, so a bad byte fails the message before it completes), a framing
/// violation 1002; a peer that vanished gets nothing.
pub(super) fn read_error(e: WsError) -> Exit {
    match e {
        WsError::Capacity(_) => Exit::Close(close::TOO_BIG, "frame too large".into()),
        WsError::Utf8(_) => Exit::Close(close::INVALID_PAYLOAD, "text is not valid UTF-8".into()),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Exit::Gone,
        WsError::Protocol(violation) => Exit::Close(
            close::PROTOCOL_ERROR,
            format!("protocol error: {violation}"),
        ),
        _ => Exit::Gone,
    }
}
