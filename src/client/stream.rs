//! A WebSocket event stream that never loses an event: it reconnects with
//! backoff and subscribes again with `since` = the last id it delivered, and
//! drops anything at or below that id.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use url::Url;

use super::rest::root_cause;
use super::{Backoff, ClientError, TokenSource};
use crate::protocol::frames::ErrorPayload;
use crate::protocol::{close, ClientFrame, Event, EventId, ServerFrame, Subscription};

/// Events buffered between the stream task and its reader; the task waits
/// when the reader is slow, and the server's queue absorbs the rest.
const BUFFER: usize = 1024;

/// Client heartbeat period, under the server's 30 s idle timeout.
const HEARTBEAT: Duration = Duration::from_secs(20);

/// No frame at all for this long means the connection is dead (the server
/// pings every 25 s).
const SILENCE: Duration = Duration::from_secs(60);

/// What to subscribe to.
#[derive(Debug, Clone, Default)]
pub struct StreamOptions {
    /// Empty: every room.
    pub rooms: Vec<String>,
    pub event_types: Vec<String>,
    pub tenant_id: Option<String>,
    /// Replay events after this id on the first connection.
    pub since: Option<EventId>,
    /// Exit with `Unreachable` if the very first connection fails (rather
    /// than retrying forever).
    pub fail_fast: bool,
}

/// What the stream reports.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// Subscribed; replayed events, then live ones, follow.
    Connected {
        connection_id: String,
        /// On a reconnection, the id the stream resumed after (the last
        /// event it delivered, or the head when it last subscribed): what
        /// happened since is replayed. `None` on the first connection.
        resumed_from: Option<EventId>,
    },
    Event(Event),
    /// A join, leave or status change in a `presence` room (not stored:
    /// a reconnection does not replay them).
    Presence(crate::protocol::presence::PresenceChange),
    /// Someone started or stopped typing in a `conversation:{id}` room
    /// (not stored either).
    Typing(crate::protocol::presence::TypingChange),
    /// A non-fatal `Error` frame (e.g. `rate_limited`).
    ServerError(ErrorPayload),
    Disconnected {
        reason: String,
        retry_in: Duration,
    },
}

/// Why a session ended.
enum End {
    /// Reconnect after a delay.
    Retry(String),
    /// Stop: retrying cannot help.
    Fatal(ClientError),
    /// The reader went away.
    Stop,
}

/// Follows a server's events until the receiver is dropped or a fatal
/// error (bad credentials) is reported.
pub fn follow(
    server: &Url,
    tokens: TokenSource,
    options: StreamOptions,
) -> mpsc::Receiver<Result<StreamItem, ClientError>> {
    let (tx, rx) = mpsc::channel(BUFFER);
    let mut ws_url = server.clone();
    let scheme = if server.scheme() == "https" {
        "wss"
    } else {
        "ws"
    };
    ws_url.set_scheme(scheme).expect("ws schemes are valid");
    ws_url.set_path("/ws");
    tokio::spawn(run(ws_url, tokens, options, tx));
    rx
}

async fn run(
    url: Url,
    tokens: TokenSource,
    options: StreamOptions,
    tx: mpsc::Sender<Result<StreamItem, ClientError>>,
) {
    let mut last = options.since;
    let mut backoff = Backoff::default();
    let mut ever_connected = false;
    loop {
        let mut connected = false;
        let resuming = ever_connected.then_some(last).flatten();
        let end = session(
            &url,
            &tokens,
            &options,
            (&mut last, resuming),
            &tx,
            &mut connected,
        )
        .await;
        if connected {
            ever_connected = true;
            backoff.reset();
        }
        let reason = match end {
            End::Stop => return,
            // A minted token expired or the server restarted: mint again.
            End::Fatal(ClientError::Unauthorized(reason))
                if ever_connected && matches!(tokens, TokenSource::Local(_)) =>
            {
                reason
            }
            End::Fatal(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
            End::Retry(reason) if !ever_connected && options.fail_fast => {
                let _ = tx
                    .send(Err(ClientError::Unreachable {
                        url: url.to_string(),
                        reason,
                    }))
                    .await;
                return;
            }
            End::Retry(reason) => reason,
        };
        let retry_in = backoff.next_delay();
        if tx
            .send(Ok(StreamItem::Disconnected { reason, retry_in }))
            .await
            .is_err()
        {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(retry_in) => {}
            _ = tx.closed() => return,
        }
    }
}

/// One connection: authenticate, subscribe from `last`, deliver events.
/// `connected` turns true once subscribed; `resuming` is what
/// `Connected::resumed_from` reports.
async fn session(
    url: &Url,
    tokens: &TokenSource,
    options: &StreamOptions,
    (last, resuming): (&mut Option<EventId>, Option<EventId>),
    tx: &mpsc::Sender<Result<StreamItem, ClientError>>,
    connected: &mut bool,
) -> End {
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(16 << 20);
    let (mut ws, _) = match tokio_tungstenite::connect_async_with_config(
        url.as_str(),
        Some(config),
        true,
    )
    .await
    {
        Ok(pair) => pair,
        Err(e) => return End::Retry(root_cause(&e)),
    };
    let auth = ClientFrame::Auth {
        token: tokens.token(),
    };
    if let Err(e) = ws.send(Message::Text(auth.to_text().into())).await {
        return End::Retry(root_cause(&e));
    }
    let subscription = ClientFrame::Subscription(Subscription {
        rooms: options.rooms.clone(),
        event_types: (!options.event_types.is_empty()).then(|| options.event_types.clone()),
        tenant_id: options.tenant_id.clone(),
        since: *last,
    });
    let mut subscribed = false;
    let mut connection_id = String::new();
    let mut heartbeat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
    let mut heard = Instant::now();
    loop {
        let frame = tokio::select! {
            frame = ws.next() => frame,
            _ = heartbeat.tick() => {
                if heard.elapsed() > SILENCE {
                    return End::Retry(format!("no frame from the server for {}s", SILENCE.as_secs()));
                }
                if let Err(e) = ws.send(Message::Text(ClientFrame::Heartbeat.to_text().into())).await {
                    return End::Retry(root_cause(&e));
                }
                continue;
            }
            _ = tx.closed() => {
                let _ = ws.close(None).await;
                return End::Stop;
            }
        };
        heard = Instant::now();
        let text = match frame {
            None => return End::Retry("the server closed the connection".into()),
            Some(Err(e)) => return End::Retry(root_cause(&e)),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                return closed(frame.map(|f| (f.code, f.reason.to_string())))
            }
            Some(Ok(_)) => continue,
        };
        let Ok(frame) = ServerFrame::parse(text.as_str()) else {
            continue; // a newer server's frame type: skip it
        };
        let item = match frame {
            ServerFrame::Welcome(welcome) => {
                if !subscribed {
                    subscribed = true;
                    connection_id = welcome.connection_id;
                    if let Err(e) = ws.send(Message::Text(subscription.to_text().into())).await {
                        return End::Retry(root_cause(&e));
                    }
                }
                continue;
            }
            ServerFrame::Subscribed(subscribed) => {
                // From now on, a reconnect must resume from here even if no
                // event has arrived yet: what happens while we are away is
                // replayed.
                if last.is_none() {
                    *last = Some(subscribed.head);
                }
                *connected = true;
                StreamItem::Connected {
                    connection_id: std::mem::take(&mut connection_id),
                    resumed_from: resuming,
                }
            }
            ServerFrame::Event(event) => {
                if last.is_some_and(|l| event.id <= l) {
                    continue;
                }
                *last = Some(event.id);
                StreamItem::Event(event)
            }
            ServerFrame::Presence(change) => match serde_json::from_value(change) {
                Ok(change) => StreamItem::Presence(change),
                Err(_) => continue, // a newer server's shape: skip it
            },
            ServerFrame::Typing(change) => match serde_json::from_value(change) {
                Ok(change) => StreamItem::Typing(change),
                Err(_) => continue,
            },
            ServerFrame::Error(error) => {
                use crate::protocol::ErrorCode::*;
                match error.code {
                    Unauthorized => return End::Fatal(ClientError::Unauthorized(error.message)),
                    Forbidden => return End::Fatal(ClientError::Forbidden(error.message)),
                    BadMessage => {
                        return End::Fatal(ClientError::Api {
                            status: 400,
                            code: error.code.to_string(),
                            message: error.message,
                        })
                    }
                    _ => StreamItem::ServerError(error),
                }
            }
            _ => continue,
        };
        if tx.send(Ok(item)).await.is_err() {
            let _ = ws.close(None).await;
            return End::Stop;
        }
    }
}

fn closed(frame: Option<(CloseCode, String)>) -> End {
    let Some((code, reason)) = frame else {
        return End::Retry("the server closed the connection".into());
    };
    let code = u16::from(code);
    match code {
        close::UNAUTHORIZED => End::Fatal(ClientError::Unauthorized(reason)),
        close::FORBIDDEN => End::Fatal(ClientError::Forbidden(reason)),
        _ => End::Retry(format!("closed by the server ({code} {reason})")),
    }
}
