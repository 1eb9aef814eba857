//! A client's messages: the per-connection rate limit, then each frame
//! type to its handler (the handlers live by topic: session, presence,
//! transfer).

use std::sync::atomic::Ordering;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::connection::{Connection, Exit, Socket, Step};
use super::Target;
use crate::protocol::frames::{now_rfc3339, ErrorPayload};
use crate::protocol::limits::RATE_LIMIT_STRIKES;
use crate::protocol::{close, ClientFrame, ErrorCode, Scope, ServerFrame};

/// Window in which [`RATE_LIMIT_STRIKES`] rejected messages close a flood.
const STRIKE_WINDOW: Duration = Duration::from_secs(60);

impl Connection {
    /// One message from the client: counted against the rate limit, then
    /// parsed and answered. A bad message gets an `Error` naming what was
    /// wrong, and the connection stays.
    pub(super) async fn on_message(
        &mut self,
        socket: &mut Socket,
        msg: Message,
        target: &Target,
    ) -> Step {
        let text = match msg {
            Message::Text(text) => Some(text),
            Message::Binary(_) => None,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Ok(()),
            Message::Close(_) => return Err(Exit::PeerClosed),
        };
        let stats = &self.state.hub.stats;
        stats.client_messages.fetch_add(1, Ordering::Relaxed);
        if !self.check_rate(socket).await? {
            return Ok(());
        }
        let Some(text) = text else {
            return self
                .send_error(
                    socket,
                    ErrorCode::BadMessage,
                    "binary frames are not supported: send JSON text frames",
                )
                .await;
        };
        let frame = match ClientFrame::parse(text.as_str()) {
            Ok(frame) => frame,
            Err(problem) => {
                return self
                    .send_error(socket, ErrorCode::BadMessage, problem)
                    .await
            }
        };
        match frame {
            ClientFrame::Heartbeat => {
                let ack = ServerFrame::HeartbeatAck {
                    server_time: now_rfc3339(),
                };
                self.send(socket, &ack).await
            }
            ClientFrame::Auth { token } => {
                if self.claims.is_some() {
                    return self
                        .send_error(socket, ErrorCode::BadMessage, "already authenticated")
                        .await;
                }
                self.authenticate(socket, &token, target).await
            }
            _ if self.claims.is_none() => {
                self.send_error(socket, ErrorCode::Unauthorized, "send Auth first")
                    .await
            }
            ClientFrame::Subscription(sub) => self.subscribe(socket, sub).await,
            ClientFrame::Unsubscribe { rooms } => {
                self.memberships.retain(|(_, room), _| {
                    let named = match room {
                        Scope::All => rooms.iter().any(|r| r == "*"),
                        Scope::Only(room) => rooms.iter().any(|r| room == r.as_str()),
                    };
                    !(rooms.is_empty() || named)
                });
                let memberships = &self.memberships;
                let tenants = memberships
                    .keys()
                    .map(|(t, _)| t)
                    .collect::<std::collections::HashSet<_>>();
                // Every tenant stays watched while rooms of two remain.
                self.watches.retain(|tenant, _| {
                    tenants.contains(tenant) || (tenant.is_all() && tenants.len() > 1)
                });
                self.send(socket, &ServerFrame::Unsubscribed { rooms })
                    .await
            }
            ClientFrame::Publish {
                room,
                event_type,
                data,
            } => self.publish(socket, room, event_type, data).await,
            ClientFrame::Transfer {
                conversation_id,
                to_user,
                note,
                tenant_id,
            } => {
                self.transfer(socket, conversation_id, to_user, note, tenant_id)
                    .await
            }
            ClientFrame::Typing {
                conversation_id,
                typing,
            } => self.typing(socket, conversation_id, typing).await,
            ClientFrame::Presence { status } => self.set_presence(socket, status).await,
        }
    }

    /// Counts a client message against the rate limit; false when the
    /// message must be dropped. A connection that keeps getting refused
    /// within a minute is closed.
    async fn check_rate(&mut self, socket: &mut Socket) -> Result<bool, Exit> {
        let Err(not_until) = self.limiter.check() else {
            return Ok(true);
        };
        if self.strike_window.elapsed() > STRIKE_WINDOW {
            self.strikes = 0;
            self.strike_window = Instant::now();
        }
        self.strikes += 1;
        if self.strikes >= RATE_LIMIT_STRIKES {
            return Err(Exit::Close(
                close::RATE_LIMITED,
                "rate limit exceeded".into(),
            ));
        }
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let retry_after = ((wait.as_secs_f64() * 10.0).ceil() / 10.0).max(0.1);
        let frame = ServerFrame::Error(ErrorPayload {
            code: ErrorCode::RateLimited,
            message: format!(
                "more than {} messages per minute; slow down",
                self.state.gateway.rate_limit
            ),
            retry_after: Some(retry_after),
        });
        self.send(socket, &frame).await?;
        Ok(false)
    }
}
