//! One WebSocket connection: a single `select!` loop over the hub's
//! verdict, frames queued on the wire, the socket and timers. Fatal problems
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

use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::close::{finish, read_error};
use super::hub::{ConnHandle, Membership, Verdict};
use super::stats::CountedIo;
use super::wire::WireStream;
use super::Target;
use crate::protocol::{close, Claims, ErrorCode, Room, Scope, ServerFrame, TenantId};
use crate::server::bus::Interest;
use crate::server::caps::Admission;
use crate::server::state::AppState;

/// The WebSocket over the connection's shared wire.
pub(super) type Socket = WebSocketStream<WireStream>;

/// How long a closing connection waits to send its Close and read the
/// client's reply (and, before that, to send its last `Error`).
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Why the loop ends.
pub(super) enum Exit {
    /// The peer went away or the socket failed: nothing left to say.
    Gone,
    /// The peer sent Close: tungstenite has queued the echo of its code
    /// (RFC 6455 §5.5.1 says the endpoint MUST reply), which only needs
    /// flushing.
    PeerClosed,
    /// Close with this code and reason.
    Close(u16, String),
    /// The peer does not read fast enough: `Error slow_consumer`, then
    /// close 4009, to resume with `since`.
    Slow(Slow),
}

/// How a peer was found too slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slow {
    /// Its outbound queue filled (the hub counted it).
    QueueFull,
    /// A write made no progress for the `write_stall` setting.
    Stalled,
}

impl Slow {
    /// The close frame's reason.
    pub(super) fn reason(self) -> &'static str {
        match self {
            Slow::QueueFull => "slow consumer",
            Slow::Stalled => "write stalled",
        }
    }

    /// The `Error` frame's message: what happened and what to do.
    fn advice(self, write_stall: Duration) -> String {
        let why = match self {
            Slow::QueueFull => "outbound queue full".to_string(),
            Slow::Stalled => format!(
                "no write progress for {}",
                humantime::format_duration(write_stall)
            ),
        };
        format!("{why}: reconnect and resume with `since`")
    }
}

pub(super) type Step = Result<(), Exit>;

pub(super) struct Connection {
    pub state: AppState,
    pub handle: Arc<ConnHandle>,
    pub claims: Option<Claims>,
    /// Its place under the caps; moves to the tenant's count at `Auth`.
    pub admission: Admission,
    pub memberships: HashMap<(Scope<TenantId>, Scope<Room>), Membership>,
    /// The bus interests of the tenants this connection has rooms in.
    pub watches: HashMap<Scope<TenantId>, Interest>,
    pub(super) limiter: DefaultDirectRateLimiter,
    pub(super) strikes: u32,
    pub(super) strike_window: Instant,
    last_seen: Instant,
    pub(super) presence: super::presence::PresenceSession,
}

/// Keeps the connection counters right however the task ends.
struct Counted<'a> {
    state: &'a AppState,
    conn: u64,
    deflate: bool,
    authenticated: bool,
    tenant: Option<String>,
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.state.hub.disconnect(self.conn);
        let stats = &self.state.hub.stats;
        stats.connections.fetch_sub(1, Ordering::Relaxed);
        if self.deflate {
            stats.compressed.fetch_sub(1, Ordering::Relaxed);
        }
        if self.authenticated {
            stats.authenticated.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(tenant) = &self.tenant {
            stats.tenant_disconnected(tenant);
        }
    }
}

/// What ends a connection from outside (shutdown, slow consumer) and the
/// write-stall timer, kept for its lifetime: creating cancellation futures
/// and timers for every frame costs locks on the hot path (it showed in
/// profiles).
struct Signals {
    handle: Arc<ConnHandle>,
    /// The `write_stall` setting.
    stall_after: Duration,
    /// Fires `stall_after` once a write began; reset lazily.
    stall: Pin<Box<Sleep>>,
}

fn exit_for(verdict: Verdict) -> Exit {
    match verdict {
        Verdict::Shutdown => Exit::Close(close::GOING_AWAY, "server shutting down".into()),
        Verdict::SlowConsumer => Exit::Slow(Slow::QueueFull),
    }
}

impl Signals {
    fn new(handle: Arc<ConnHandle>, stall_after: Duration) -> Signals {
        Signals {
            handle,
            stall_after,
            stall: Box::pin(tokio::time::sleep(stall_after)),
        }
    }

    /// Runs `fut` unless a verdict or (with `stall`) a write stuck for
    /// `stall_after` comes first.
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
            stall_after,
            stall: timer,
        } = self;
        let stall_after = *stall_after;
        if stall && timer.deadline() < started + stall_after / 2 {
            timer.as_mut().reset(started + stall_after);
        }
        loop {
            tokio::select! {
                biased;
                step = &mut fut => return step,
                verdict = poll_fn(|cx| handle.poll_verdict(cx)) => return Err(exit_for(verdict)),
                _ = timer.as_mut(), if stall => {
                    if started.elapsed() >= stall_after {
                        return Err(Exit::Slow(Slow::Stalled));
                    }
                    timer.as_mut().reset(started + stall_after);
                }
            }
        }
    }
}

/// tungstenite's settings for every connection.
pub(super) fn socket_config(max_frame_bytes: usize) -> WebSocketConfig {
    // Small buffers keep an idle connection cheap; tungstenite's default
    // 128 KiB read buffer (zero-filled on every read) would dominate its
    // memory and CPU. Client frames are small; big ones take more reads.
    // Writes pass straight to the wire, which queues what the socket
    // cannot take.
    WebSocketConfig::default()
        .max_message_size(Some(max_frame_bytes))
        .max_frame_size(Some(max_frame_bytes))
        .read_buffer_size(1024)
        .write_buffer_size(0)
}

/// Serves one upgraded connection until it closes; `deflate`: it
/// negotiated permessage-deflate.
///
/// `admission` is the connection's place under the caps; it is given back
/// when the connection ends, however it ends.
pub async fn run(
    io: TokioIo<Upgraded>,
    state: AppState,
    target: Target,
    token: Option<String>,
    deflate: bool,
    admission: Admission,
) {
    let stats = &state.hub.stats;
    stats.connections.fetch_add(1, Ordering::Relaxed);
    stats.opened.fetch_add(1, Ordering::Relaxed);
    if deflate {
        stats.compressed.fetch_add(1, Ordering::Relaxed);
    }
    let io = CountedIo::new(io, stats.bytes_sent.clone());
    let handle = state
        .hub
        .connect(Box::new(io), state.gateway.outbound_queue);
    let config = socket_config(state.gateway.max_frame_bytes);
    let stream = match deflate {
        true => WireStream::deflating(handle.wire.clone(), state.gateway.max_frame_bytes),
        false => WireStream::new(handle.wire.clone()),
    };
    let mut socket = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await;
    let mut counted = Counted {
        state: &state,
        conn: handle.id,
        deflate,
        authenticated: false,
        tenant: None,
    };
    let per_minute = NonZeroU32::new(state.gateway.rate_limit).unwrap_or(NonZeroU32::MIN);
    let mut conn = Connection {
        state: state.clone(),
        handle: handle.clone(),
        claims: None,
        admission,
        memberships: HashMap::new(),
        watches: HashMap::new(),
        limiter: RateLimiter::direct(Quota::per_minute(per_minute)),
        strikes: 0,
        strike_window: Instant::now(),
        last_seen: Instant::now(),
        presence: super::presence::PresenceSession::new(state.presence.clone(), handle.id),
    };
    let mut signals = Signals::new(handle.clone(), state.gateway.write_stall);
    let exit = match token {
        Some(token) => {
            let auth = Box::pin(conn.authenticate(&mut socket, &token, &target));
            signals.guard(auth, true).await
        }
        None => Ok(()),
    };
    let exit = match exit {
        Ok(()) => {
            conn.serve(&mut socket, &target, &mut counted, &mut signals)
                .await
        }
        Err(exit) => exit,
    };
    let error = match &exit {
        Exit::Slow(slow) => {
            if *slow == Slow::Stalled {
                // The hub counts the full queues it finds; stalls show here.
                state
                    .hub
                    .stats
                    .slow_consumers
                    .fetch_add(1, Ordering::Relaxed);
            }
            Some(ServerFrame::error(
                ErrorCode::SlowConsumer,
                slow.advice(state.gateway.write_stall),
            ))
        }
        _ => None,
    };
    tracing::debug!(conn = handle.id, "closing");
    state.hub.stats.closed(exit.close_kind());
    finish(&mut socket, &handle.wire, exit, error).await;
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
        socket: &mut Socket,
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
                let stats = &self.state.hub.stats;
                stats.authenticated.fetch_add(1, Ordering::Relaxed);
                if let Some(tenant) = &claims.tenant_id {
                    stats.tenant_connected(tenant);
                    counted.tenant = Some(tenant.clone());
                }
                let at = expiry(claims.exp);
                expires = Some(at);
                if at < timer.deadline() {
                    timer.as_mut().reset(at);
                }
                self.track_presence();
            }
            let step: Step = tokio::select! {
                biased;
                verdict = poll_fn(|cx| self.handle.poll_verdict(cx)) => Err(exit_for(verdict)),
                // Frames the hub could not write at once.
                _ = poll_fn(|cx| match self.handle.wire.poll_pending(cx) {
                    true => Poll::Ready(()),
                    false => Poll::Pending,
                }) => {
                    let wire = &self.handle.wire;
                    let drain = poll_fn(|cx| wire.poll_drain(cx).map_err(|_| Exit::Gone));
                    signals.guard(drain, true).await
                }
                msg = socket.next() => match msg {
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

    pub(super) async fn send(&self, socket: &mut Socket, frame: &ServerFrame) -> Step {
        socket
            .send(Message::Text(Utf8Bytes::from(frame.to_text())))
            .await
            .map_err(|_| Exit::Gone)?;
        let replies = &self.state.hub.stats.replies;
        replies.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub(super) async fn send_error(
        &self,
        socket: &mut Socket,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> Step {
        self.send(socket, &ServerFrame::error(code, message)).await
    }
}
