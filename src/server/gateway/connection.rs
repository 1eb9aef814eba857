//! One WebSocket connection: a single `select!` loop over shutdown, the
//! hub's verdict, timers, the outbound queue and the socket. Fatal problems
//! end in a close code; everything else in an `Error` frame. Every write
//! races the shutdown and slow-consumer signals, so a peer that stops
//! reading cannot pin the task.

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::{Instant, Sleep};

use super::hub::{ConnHandle, Membership, Outbound, Outbox, Verdict, ANY};
use super::Target;
use crate::protocol::frames::{now_rfc3339, ErrorPayload};
use crate::protocol::limits::RATE_LIMIT_STRIKES;
use crate::protocol::{close, Claims, ClientFrame, ErrorCode, EventId, ServerFrame};
use crate::server::state::AppState;

/// Frames written before one flush when a subscriber is behind.
const WRITE_BATCH: usize = 64;

/// A write that makes no progress for this long means the peer stopped
/// reading: the connection is dropped as a slow consumer.
pub(super) const WRITE_STALL: Duration = Duration::from_secs(10);

/// How long a closing connection waits to send its Close and read the
/// client's reply.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Window in which [`RATE_LIMIT_STRIKES`] rejected messages close a flood.
const STRIKE_WINDOW: Duration = Duration::from_secs(60);

/// Why the loop ends.
pub(super) enum Exit {
    /// The peer went away or the socket failed: nothing left to say.
    Gone,
    /// Close with this code and reason.
    Close(u16, String),
}

pub(super) type Step = Result<(), Exit>;

/// Events up to `floor` in this scope were replayed: the same ones arriving
/// live from the queue are dropped, so the seam has no duplicate.
pub(super) struct Seam {
    pub floor: EventId,
    pub tenant: String,
    pub rooms: Vec<String>,
    pub types: Option<Vec<String>>,
}

impl Seam {
    fn covers(&self, out: &Outbound) -> bool {
        let e = &out.event;
        e.id <= self.floor
            && (self.tenant == ANY || self.tenant == e.tenant_id)
            && (self.rooms.iter().any(|r| r == ANY)
                || e.rooms.iter().any(|r| self.rooms.contains(r)))
            && self
                .types
                .as_ref()
                .is_none_or(|t| t.contains(&e.event_type))
    }
}

pub(super) struct Connection {
    pub state: AppState,
    pub handle: Arc<ConnHandle>,
    pub claims: Option<Claims>,
    pub memberships: HashMap<(String, String), Membership>,
    pub seams: Vec<Seam>,
    limiter: DefaultDirectRateLimiter,
    strikes: u32,
    strike_window: Instant,
    last_seen: Instant,
}

/// Keeps the connection counters right however the task ends.
struct Counted<'a> {
    state: &'a AppState,
    conn: u64,
    authenticated: bool,
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.state.hub.disconnect(self.conn);
        let stats = &self.state.hub.stats;
        stats.connections.fetch_sub(1, Ordering::Relaxed);
        if self.authenticated {
            stats.authenticated.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// What ends a connection from outside (shutdown, slow consumer) and the
/// write-stall timer, kept for its lifetime: creating cancellation futures
/// and timers for every frame costs locks on the hot path (it showed in
/// profiles).
struct Signals {
    handle: Arc<ConnHandle>,
    /// Fires [`WRITE_STALL`] after a write began; reset lazily.
    stall: Pin<Box<Sleep>>,
}

fn exit_for(verdict: Verdict) -> Exit {
    match verdict {
        Verdict::Shutdown => Exit::Close(close::GOING_AWAY, "server shutting down".into()),
        Verdict::SlowConsumer => Exit::Close(close::SLOW_CONSUMER, "slow consumer".into()),
    }
}

impl Signals {
    fn new(handle: Arc<ConnHandle>) -> Signals {
        Signals {
            handle,
            stall: Box::pin(tokio::time::sleep(WRITE_STALL)),
        }
    }

    /// Runs `fut` unless a verdict or (with `stall`) a write stuck for
    /// [`WRITE_STALL`] comes first.
    async fn guard(&mut self, fut: impl Future<Output = Step>, stall: bool) -> Step {
        tokio::pin!(fut);
        // Most writes finish on their first poll; those need neither the
        // clock nor the timers (each showed in profiles of the fan-out).
        if let Poll::Ready(step) = poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
            return step;
        }
        let started = Instant::now();
        let Signals {
            handle,
            stall: timer,
        } = self;
        if stall && timer.deadline() < started + WRITE_STALL / 2 {
            timer.as_mut().reset(started + WRITE_STALL);
        }
        loop {
            tokio::select! {
                biased;
                step = &mut fut => return step,
                verdict = poll_fn(|cx| handle.poll_verdict(cx)) => return Err(exit_for(verdict)),
                _ = timer.as_mut(), if stall => {
                    if started.elapsed() >= WRITE_STALL {
                        return Err(Exit::Close(close::SLOW_CONSUMER, "write stalled".into()));
                    }
                    timer.as_mut().reset(started + WRITE_STALL);
                }
            }
        }
    }
}

/// Serves one upgraded socket until it closes.
pub async fn run(mut socket: WebSocket, state: AppState, target: Target, token: Option<String>) {
    state.hub.stats.connections.fetch_add(1, Ordering::Relaxed);
    let (handle, mut rx) = state.hub.connect(state.gateway.outbound_queue);
    let mut counted = Counted {
        state: &state,
        conn: handle.id,
        authenticated: false,
    };
    let per_minute =
        NonZeroU32::new(state.gateway.rate_limit_per_minute).unwrap_or(NonZeroU32::MIN);
    let mut conn = Connection {
        state: state.clone(),
        handle: handle.clone(),
        claims: None,
        memberships: HashMap::new(),
        seams: Vec::new(),
        limiter: RateLimiter::direct(Quota::per_minute(per_minute)),
        strikes: 0,
        strike_window: Instant::now(),
        last_seen: Instant::now(),
    };
    let mut signals = Signals::new(handle.clone());
    let exit = match token {
        Some(token) => {
            let auth = Box::pin(conn.authenticate(&mut socket, &token, &target));
            signals.guard(auth, true).await
        }
        None => Ok(()),
    };
    let exit = match exit {
        Ok(()) => {
            conn.serve(&mut socket, &mut rx, &target, &mut counted, &mut signals)
                .await
        }
        Err(exit) => exit,
    };
    if let Exit::Close(code, reason) = exit {
        tracing::debug!(conn = handle.id, code, %reason, "closing");
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        }));
        // Finish the closing handshake: read (and drop) what the client
        // still sends until its Close, so it reads our close code instead of
        // a connection reset. A peer that reads nothing gets dropped.
        let _ = tokio::time::timeout(
            CLOSE_GRACE,
            Box::pin(async {
                if socket.send(frame).await.is_ok() {
                    while let Some(Ok(msg)) = socket.recv().await {
                        if matches!(msg, Message::Close(_)) {
                            break;
                        }
                    }
                }
            }),
        )
        .await;
    }
    // Memberships leave their rooms as `conn` drops.
}

/// The instant a token's `exp` (Unix seconds) falls due.
fn expiry(exp: u64) -> Instant {
    let now_unix = crate::auth::unix_now();
    Instant::now() + Duration::from_secs(exp.saturating_sub(now_unix).min(10 * 365 * 86_400))
}

impl Connection {
    async fn serve(
        &mut self,
        socket: &mut WebSocket,
        rx: &mut Outbox,
        target: &Target,
        counted: &mut Counted<'_>,
        signals: &mut Signals,
    ) -> Exit {
        let g = self.state.gateway.clone();
        // One timer for every deadline (authentication, token expiry,
        // idle, next ping): one timer poll per wake instead of four.
        let auth_deadline = Instant::now() + g.auth_timeout;
        let mut expires: Option<Instant> = None;
        let mut next_ping = Instant::now() + g.ping_interval;
        let timer = tokio::time::sleep_until(
            auth_deadline
                .min(next_ping)
                .min(self.last_seen + g.idle_timeout),
        );
        tokio::pin!(timer);
        loop {
            if let (Some(claims), false) = (&self.claims, counted.authenticated) {
                counted.authenticated = true;
                self.state
                    .hub
                    .stats
                    .authenticated
                    .fetch_add(1, Ordering::Relaxed);
                let at = expiry(claims.exp);
                expires = Some(at);
                if at < timer.deadline() {
                    timer.as_mut().reset(at);
                }
            }
            let step: Step = tokio::select! {
                biased;
                verdict = poll_fn(|cx| self.handle.poll_verdict(cx)) => {
                    if verdict == Verdict::SlowConsumer {
                        let frame = ServerFrame::error(
                            ErrorCode::SlowConsumer,
                            "outbound queue full: reconnect and resume with `since`",
                        );
                        let _ = tokio::time::timeout(CLOSE_GRACE, Box::pin(self.send(socket, &frame))).await;
                    }
                    Err(exit_for(verdict))
                }
                Some(out) = rx.recv() => signals.guard(self.forward(socket, rx, out), true).await,
                msg = socket.recv() => match msg {
                    None => Err(Exit::Gone),
                    Some(Err(e)) => Err(read_error(e)),
                    Some(Ok(msg)) => {
                        self.last_seen = Instant::now();
                        // Boxed: messages are rare, and the futures of subscribe,
                        // replay and publish would otherwise sit in every
                        // connection's task for its whole life.
                        signals.guard(Box::pin(self.on_message(socket, msg, target)), false).await
                    }
                },
                _ = &mut timer => {
                    let now = Instant::now();
                    let step = if self.claims.is_none() && now >= auth_deadline {
                        let message = format!("no Auth within {}", humantime::format_duration(g.auth_timeout));
                        let frame = ServerFrame::error(ErrorCode::Unauthorized, message);
                        let _ = tokio::time::timeout(CLOSE_GRACE, Box::pin(self.send(socket, &frame))).await;
                        Err(Exit::Close(close::UNAUTHORIZED, "authentication timeout".into()))
                    } else if expires.is_some_and(|at| now >= at) {
                        let frame = ServerFrame::error(ErrorCode::Unauthorized, "token expired: reconnect with a fresh token");
                        let _ = tokio::time::timeout(CLOSE_GRACE, Box::pin(self.send(socket, &frame))).await;
                        Err(Exit::Close(close::UNAUTHORIZED, "token expired".into()))
                    } else if now >= self.last_seen + g.idle_timeout {
                        Err(Exit::Close(close::GOING_AWAY, "idle timeout".into()))
                    } else if now >= next_ping {
                        next_ping = now + g.ping_interval;
                        let ping = async { socket.send(Message::Ping(Default::default())).await.map_err(|_| Exit::Gone) };
                        signals.guard(Box::pin(ping), true).await
                    } else {
                        Ok(())
                    };
                    let mut next = (self.last_seen + g.idle_timeout).min(next_ping);
                    if self.claims.is_none() {
                        next = next.min(auth_deadline);
                    }
                    if let Some(at) = expires {
                        next = next.min(at);
                    }
                    timer.as_mut().reset(next.max(now + Duration::from_millis(1)));
                    step
                }
            };
            if let Err(exit) = step {
                return exit;
            }
        }
    }

    /// Writes a queued frame and whatever else is waiting, then flushes once.
    async fn forward(&mut self, socket: &mut WebSocket, rx: &mut Outbox, first: Outbound) -> Step {
        let mut next = Some(first);
        let mut written = 0;
        while let Some(out) = next.take() {
            if !self.seams.is_empty() {
                self.seams.retain(|s| s.floor >= out.event.id);
                if self.seams.iter().any(|s| s.covers(&out)) {
                    next = rx.try_recv();
                    continue;
                }
            }
            socket
                .feed(Message::Text(out.frame))
                .await
                .map_err(|_| Exit::Gone)?;
            written += 1;
            if written < WRITE_BATCH {
                next = rx.try_recv();
            }
        }
        socket.flush().await.map_err(|_| Exit::Gone)
    }

    pub(super) async fn send(&self, socket: &mut WebSocket, frame: &ServerFrame) -> Step {
        socket
            .send(Message::Text(Utf8Bytes::from(frame.to_text())))
            .await
            .map_err(|_| Exit::Gone)
    }

    pub(super) async fn send_error(
        &self,
        socket: &mut WebSocket,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> Step {
        self.send(socket, &ServerFrame::error(code, message)).await
    }

    async fn on_message(&mut self, socket: &mut WebSocket, msg: Message, target: &Target) -> Step {
        let text = match msg {
            Message::Text(text) => Some(text),
            Message::Binary(_) => None,
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
            Message::Close(_) => return Err(Exit::Gone),
        };
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
                self.memberships
                    .retain(|(_, room), _| !(rooms.is_empty() || rooms.contains(room)));
                self.send(socket, &ServerFrame::Unsubscribed { rooms })
                    .await
            }
            ClientFrame::Publish {
                room,
                event_type,
                data,
            } => self.publish(socket, room, event_type, data).await,
            ClientFrame::Typing { .. } | ClientFrame::Presence { .. } => {
                self.send_error(
                    socket,
                    ErrorCode::Unsupported,
                    "Typing and Presence are not served by this version of pytake",
                )
                .await
            }
        }
    }

    /// Counts a client message against the rate limit; false when the
    /// message must be dropped. A connection that keeps getting refused
    /// within a minute is closed.
    async fn check_rate(&mut self, socket: &mut WebSocket) -> Result<bool, Exit> {
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
                self.state.gateway.rate_limit_per_minute
            ),
            retry_after: Some(retry_after),
        });
        self.send(socket, &frame).await?;
        Ok(false)
    }
}

/// A read failure: an oversized frame gets 1009, anything else just ends.
fn read_error(e: axum::Error) -> Exit {
    let text = e.to_string();
    if text.contains("too long") || text.contains("Space limit") || text.contains("too big") {
        Exit::Close(close::TOO_BIG, "frame too large".into())
    } else {
        Exit::Gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Event;

    fn out(id: EventId, tenant: &str, room: &str, event_type: &str) -> Outbound {
        let event = Arc::new(Event {
            id,
            event_type: event_type.into(),
            tenant_id: tenant.into(),
            room: room.into(),
            rooms: vec![room.into()],
            data: serde_json::json!({}),
            timestamp: chrono::Utc::now(),
        });
        Outbound {
            frame: Utf8Bytes::from(ServerFrame::event_text(&event)),
            event,
        }
    }

    #[test]
    fn a_seam_covers_only_what_its_replay_sent() {
        let seam = Seam {
            floor: 10,
            tenant: "acme".into(),
            rooms: vec!["erp".into()],
            types: Some(vec!["ERPCall".into()]),
        };
        assert!(seam.covers(&out(9, "acme", "erp", "ERPCall")));
        assert!(
            !seam.covers(&out(11, "acme", "erp", "ERPCall")),
            "above the floor"
        );
        assert!(
            !seam.covers(&out(9, "globex", "erp", "ERPCall")),
            "other tenant"
        );
        assert!(!seam.covers(&out(9, "acme", "ai", "ERPCall")), "other room");
        assert!(
            !seam.covers(&out(9, "acme", "erp", "Other")),
            "filtered out of the replay"
        );
        let everything = Seam {
            floor: 10,
            tenant: ANY.into(),
            rooms: vec![ANY.into()],
            types: None,
        };
        assert!(everything.covers(&out(3, "globex", "ai", "Other")));
    }
}
