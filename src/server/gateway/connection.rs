//! One WebSocket connection: a single `select!` loop over shutdown, the
//! hub's verdict, timers, the outbound queue and the socket. Fatal problems
//! end in a close code; everything else in an `Error` frame.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::hub::{ConnHandle, Membership, Outbound, ANY};
use super::Target;
use crate::protocol::events::validate_event_types;
use crate::protocol::frames::{now_rfc3339, ErrorPayload, Limits, Subscribed, Welcome};
use crate::protocol::limits::{MAX_PAGE, RATE_LIMIT_STRIKES};
use crate::protocol::rooms::{validate_room, validate_tenant};
use crate::protocol::{
    close, Claims, ClientFrame, ErrorCode, EventId, NewEvent, ServerFrame, Subscription,
};
use crate::server::state::AppState;
use crate::server::storage::{AppendRequest, EventQuery};

/// Frames written before one flush when a subscriber is behind.
const WRITE_BATCH: usize = 64;

/// How long a closing connection waits for the client's Close reply.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Why the loop ends.
enum Exit {
    /// The peer went away or the socket failed: nothing left to say.
    Gone,
    /// Close with this code and reason.
    Close(u16, String),
}

type Step = Result<(), Exit>;

/// Events up to `floor` in this scope were replayed: the same ones arriving
/// live from the queue are dropped, so the seam has no duplicate.
struct Seam {
    floor: EventId,
    tenant: String,
    rooms: Vec<String>,
}

impl Seam {
    fn covers(&self, out: &Outbound) -> bool {
        let e = &out.event;
        e.id <= self.floor
            && (self.tenant == ANY || self.tenant == e.tenant_id)
            && (self.rooms.iter().any(|r| r == ANY)
                || e.rooms.iter().any(|r| self.rooms.contains(r)))
    }
}

struct Connection {
    state: AppState,
    handle: Arc<ConnHandle>,
    claims: Option<Claims>,
    memberships: HashMap<(String, String), Membership>,
    seams: Vec<Seam>,
    limiter: DefaultDirectRateLimiter,
    strikes: u32,
    last_seen: Instant,
}

/// Keeps the connection counters right however the task ends.
struct Counted<'a> {
    state: &'a AppState,
    authenticated: bool,
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        let stats = &self.state.hub.stats;
        stats.connections.fetch_sub(1, Ordering::Relaxed);
        if self.authenticated {
            stats.authenticated.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Serves one upgraded socket until it closes.
pub async fn run(mut socket: WebSocket, state: AppState, target: Target, token: Option<String>) {
    state.hub.stats.connections.fetch_add(1, Ordering::Relaxed);
    let mut counted = Counted {
        state: &state,
        authenticated: false,
    };
    let (handle, mut rx) = state.hub.connect(state.gateway.outbound_queue);
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
        last_seen: Instant::now(),
    };
    let exit = match token {
        Some(token) => conn.authenticate(&mut socket, &token, &target).await,
        None => Ok(()),
    };
    let exit = match exit {
        Ok(()) => {
            conn.serve(&mut socket, &mut rx, &target, &mut counted)
                .await
        }
        Err(exit) => exit,
    };
    if let Exit::Close(code, reason) = exit {
        tracing::debug!(conn = handle.id, code, %reason, "closing");
        let sent = socket
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from(reason),
            })))
            .await;
        // Finish the closing handshake: read (and drop) what the client
        // still sends until its Close, so it reads our close code instead of
        // a connection reset.
        if sent.is_ok() {
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                while let Some(Ok(msg)) = socket.recv().await {
                    if matches!(msg, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
    }
    // Memberships leave their rooms as `conn` drops.
}

impl Connection {
    async fn serve(
        &mut self,
        socket: &mut WebSocket,
        rx: &mut mpsc::Receiver<Outbound>,
        target: &Target,
        counted: &mut Counted<'_>,
    ) -> Exit {
        let g = self.state.gateway.clone();
        let shutdown = self.state.shutdown.clone();
        let kill = self.handle.kill.clone();
        let auth_deadline = tokio::time::sleep(g.auth_timeout);
        tokio::pin!(auth_deadline);
        let idle = tokio::time::sleep(g.idle_timeout);
        tokio::pin!(idle);
        let mut ping = tokio::time::interval_at(Instant::now() + g.ping_interval, g.ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if self.claims.is_some() && !counted.authenticated {
                counted.authenticated = true;
                self.state
                    .hub
                    .stats
                    .authenticated
                    .fetch_add(1, Ordering::Relaxed);
            }
            let step: Step = tokio::select! {
                biased;
                _ = shutdown.cancelled() => Err(Exit::Close(close::GOING_AWAY, "server shutting down".into())),
                _ = kill.cancelled() => {
                    let _ = self.send(socket, &ServerFrame::error(
                        ErrorCode::SlowConsumer,
                        "outbound queue full: reconnect and resume with `since`",
                    )).await;
                    Err(Exit::Close(close::SLOW_CONSUMER, "slow consumer".into()))
                }
                _ = &mut auth_deadline, if self.claims.is_none() => {
                    let _ = self.send(socket, &ServerFrame::error(
                        ErrorCode::Unauthorized,
                        format!("no Auth within {}", humantime::format_duration(g.auth_timeout)),
                    )).await;
                    Err(Exit::Close(close::UNAUTHORIZED, "authentication timeout".into()))
                }
                _ = &mut idle => {
                    let quiet_until = self.last_seen + g.idle_timeout;
                    if Instant::now() >= quiet_until {
                        Err(Exit::Close(close::GOING_AWAY, "idle timeout".into()))
                    } else {
                        idle.as_mut().reset(quiet_until);
                        Ok(())
                    }
                }
                _ = ping.tick() => socket.send(Message::Ping(Default::default())).await.map_err(|_| Exit::Gone),
                Some(out) = rx.recv() => self.forward(socket, rx, out).await,
                msg = socket.recv() => match msg {
                    None => Err(Exit::Gone),
                    Some(Err(e)) => Err(read_error(e)),
                    Some(Ok(msg)) => {
                        self.last_seen = Instant::now();
                        self.on_message(socket, msg, target).await
                    }
                },
            };
            if let Err(exit) = step {
                return exit;
            }
        }
    }

    /// Writes a queued frame and whatever else is waiting, then flushes once.
    async fn forward(
        &mut self,
        socket: &mut WebSocket,
        rx: &mut mpsc::Receiver<Outbound>,
        first: Outbound,
    ) -> Step {
        let mut next = Some(first);
        let mut written = 0;
        while let Some(out) = next.take() {
            if !self.seams.is_empty() {
                self.seams.retain(|s| s.floor >= out.event.id);
                if self.seams.iter().any(|s| s.covers(&out)) {
                    next = rx.try_recv().ok();
                    continue;
                }
            }
            socket
                .feed(Message::Text(out.frame))
                .await
                .map_err(|_| Exit::Gone)?;
            written += 1;
            if written < WRITE_BATCH {
                next = rx.try_recv().ok();
            }
        }
        socket.flush().await.map_err(|_| Exit::Gone)
    }

    async fn send(&self, socket: &mut WebSocket, frame: &ServerFrame) -> Step {
        socket
            .send(Message::Text(Utf8Bytes::from(frame.to_text())))
            .await
            .map_err(|_| Exit::Gone)
    }

    async fn send_error(
        &self,
        socket: &mut WebSocket,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> Step {
        self.send(socket, &ServerFrame::error(code, message)).await
    }

    async fn on_message(&mut self, socket: &mut WebSocket, msg: Message, target: &Target) -> Step {
        let text = match msg {
            Message::Text(text) => text,
            Message::Binary(_) => {
                if !self.check_rate(socket).await? {
                    return Ok(());
                }
                return self
                    .send_error(
                        socket,
                        ErrorCode::BadMessage,
                        "binary frames are not supported: send JSON text frames",
                    )
                    .await;
            }
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
            Message::Close(_) => return Err(Exit::Gone),
        };
        if !self.check_rate(socket).await? {
            return Ok(());
        }
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
                self.send(
                    socket,
                    &ServerFrame::HeartbeatAck {
                        server_time: now_rfc3339(),
                    },
                )
                .await
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
    /// message must be dropped.
    async fn check_rate(&mut self, socket: &mut WebSocket) -> Result<bool, Exit> {
        match self.limiter.check() {
            Ok(()) => {
                self.strikes = 0;
                Ok(true)
            }
            Err(not_until) => {
                self.strikes += 1;
                if self.strikes >= RATE_LIMIT_STRIKES {
                    return Err(Exit::Close(
                        close::RATE_LIMITED,
                        "rate limit exceeded".into(),
                    ));
                }
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let retry_after = (wait.as_secs_f64() * 10.0).ceil() / 10.0;
                self.send(
                    socket,
                    &ServerFrame::Error(ErrorPayload {
                        code: ErrorCode::RateLimited,
                        message: format!(
                            "more than {} messages per minute; slow down",
                            self.state.gateway.rate_limit_per_minute
                        ),
                        retry_after: Some(retry_after.max(0.1)),
                    }),
                )
                .await?;
                // The message itself is dropped.
                Ok(false)
            }
        }
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

impl Connection {
    async fn authenticate(&mut self, socket: &mut WebSocket, token: &str, target: &Target) -> Step {
        let claims = match self.state.keys.verify(token) {
            Ok(claims) => claims,
            Err(e) => {
                self.send_error(socket, ErrorCode::Unauthorized, e.to_string())
                    .await?;
                return Err(Exit::Close(close::UNAUTHORIZED, "unauthorized".into()));
            }
        };
        let scope = claims.tenant_id.clone().unwrap_or_else(|| ANY.to_string());
        let rooms = match target {
            Target::Nothing => Vec::new(),
            Target::Room(room) => {
                if let Err(problem) = validate_room(room) {
                    self.send_error(socket, ErrorCode::BadMessage, problem)
                        .await?;
                    return Err(Exit::Close(close::BAD_MESSAGE, "unknown room".into()));
                }
                let m = self.state.hub.join(&self.handle, &scope, room, None);
                self.memberships.insert((scope.clone(), room.clone()), m);
                vec![room.clone()]
            }
            Target::Tenant(tenant) => {
                if validate_tenant(tenant).is_err() || !claims.may_see(tenant) {
                    self.send_error(
                        socket,
                        ErrorCode::Forbidden,
                        format!("this token may not see tenant `{tenant}`"),
                    )
                    .await?;
                    return Err(Exit::Close(close::FORBIDDEN, "forbidden".into()));
                }
                let m = self.state.hub.join(&self.handle, tenant, ANY, None);
                self.memberships
                    .insert((tenant.clone(), ANY.to_string()), m);
                vec![ANY.to_string()]
            }
        };
        let g = &self.state.gateway;
        let welcome = ServerFrame::Welcome(Welcome {
            connection_id: self.handle.id.to_string(),
            tenant_id: claims.tenant_id.clone(),
            role: claims.role.to_string(),
            rooms,
            limits: Limits {
                rate_limit_per_minute: g.rate_limit_per_minute,
                max_frame_bytes: g.max_frame_bytes,
                ping_interval_seconds: g.ping_interval.as_secs(),
                idle_timeout_seconds: g.idle_timeout.as_secs(),
            },
        });
        tracing::debug!(conn = self.handle.id, sub = %claims.sub, role = %claims.role, "authenticated");
        self.claims = Some(claims);
        self.send(socket, &welcome).await
    }

    async fn subscribe(&mut self, socket: &mut WebSocket, sub: Subscription) -> Step {
        let claims = self.claims.as_ref().expect("checked by caller");
        let tenant = match &sub.tenant_id {
            Some(t) => {
                if let Err(problem) = validate_tenant(t) {
                    return self
                        .send_error(
                            socket,
                            ErrorCode::BadMessage,
                            format!("payload.tenant_id: {problem}"),
                        )
                        .await;
                }
                if !claims.may_see(t) {
                    return self
                        .send_error(
                            socket,
                            ErrorCode::Forbidden,
                            format!("this token may not see tenant `{t}`"),
                        )
                        .await;
                }
                t.clone()
            }
            None => claims.tenant_id.clone().unwrap_or_else(|| ANY.to_string()),
        };
        for (i, room) in sub.rooms.iter().enumerate() {
            if let Err(problem) = validate_room(room) {
                return self
                    .send_error(
                        socket,
                        ErrorCode::BadMessage,
                        format!("payload.rooms[{i}]: {problem}"),
                    )
                    .await;
            }
        }
        let types = match validate_event_types(sub.event_types.clone()) {
            Ok(types) => types,
            Err(problem) => {
                return self
                    .send_error(socket, ErrorCode::BadMessage, format!("payload.{problem}"))
                    .await
            }
        };
        if sub.since.is_some_and(|s| s < 0) {
            return self
                .send_error(
                    socket,
                    ErrorCode::BadMessage,
                    "payload.since: must be 0 or a positive event id",
                )
                .await;
        }
        let rooms: Vec<String> = if sub.rooms.is_empty() {
            vec![ANY.to_string()]
        } else {
            sub.rooms.clone()
        };
        let shared_types: Option<Arc<[String]>> = types.clone().map(Arc::from);
        for room in &rooms {
            let m = self
                .state
                .hub
                .join(&self.handle, &tenant, room, shared_types.clone());
            self.memberships.insert((tenant.clone(), room.clone()), m);
        }
        let head = match self.state.store.last_event_id().await {
            Ok(head) => head,
            Err(e) => return self.history_failed(socket, e).await,
        };
        self.send(
            socket,
            &ServerFrame::Subscribed(Subscribed {
                rooms: sub.rooms.clone(),
                tenant_id: (tenant != ANY).then(|| tenant.clone()),
                event_types: types.clone(),
                since: sub.since,
                head,
            }),
        )
        .await?;
        if let Some(since) = sub.since {
            self.replay(socket, since, tenant, rooms, types).await?;
        }
        Ok(())
    }

    /// Sends the stored events after `since`, page by page, then records the
    /// seam so live duplicates are dropped.
    async fn replay(
        &mut self,
        socket: &mut WebSocket,
        since: EventId,
        tenant: String,
        rooms: Vec<String>,
        types: Option<Vec<String>>,
    ) -> Step {
        let mut query = EventQuery {
            tenant_id: (tenant != ANY).then(|| tenant.clone()),
            rooms: if rooms.iter().any(|r| r == ANY) {
                Vec::new()
            } else {
                rooms.clone()
            },
            event_types: types,
            since,
            limit: MAX_PAGE,
        };
        let mut floor = since;
        loop {
            // Read the head before the page: everything up to it is visible
            // to the query, so the seam may drop live copies up to it.
            let head = match self.state.store.last_event_id().await {
                Ok(head) => head,
                Err(e) => return self.history_failed(socket, e).await,
            };
            let page = match self.state.store.events(&query).await {
                Ok(page) => page,
                Err(e) => return self.history_failed(socket, e).await,
            };
            for event in &page {
                socket
                    .feed(Message::Text(Utf8Bytes::from(ServerFrame::event_text(
                        event,
                    ))))
                    .await
                    .map_err(|_| Exit::Gone)?;
            }
            socket.flush().await.map_err(|_| Exit::Gone)?;
            floor = floor.max(head);
            if let Some(last) = page.last() {
                floor = floor.max(last.id);
                query.since = last.id;
            }
            if page.len() < MAX_PAGE as usize {
                break;
            }
        }
        self.seams.push(Seam {
            floor,
            tenant,
            rooms,
        });
        Ok(())
    }

    async fn history_failed(&self, socket: &mut WebSocket, e: impl std::fmt::Display) -> Step {
        tracing::error!(error = %e, "reading history failed");
        self.send_error(
            socket,
            ErrorCode::Unavailable,
            "history is unavailable; reconnect and resume with `since`",
        )
        .await?;
        Err(Exit::Close(1011, "history unavailable".into()))
    }

    async fn publish(
        &mut self,
        socket: &mut WebSocket,
        room: String,
        event_type: String,
        data: serde_json::Value,
    ) -> Step {
        let claims = self.claims.as_ref().expect("checked by caller");
        if !claims.role.can_publish() {
            return self
                .send_error(
                    socket,
                    ErrorCode::Forbidden,
                    format!("role {} may not publish", claims.role),
                )
                .await;
        }
        let Some(tenant) = claims.tenant_id.clone() else {
            return self
                .send_error(
                    socket,
                    ErrorCode::BadMessage,
                    "Publish needs a tenant: admin tokens publish with POST /api/v1/events and tenant_id",
                )
                .await;
        };
        let event = NewEvent {
            event_type,
            data,
            rooms: Some(vec![room]),
            ..NewEvent::default()
        };
        let valid = match event.validate(tenant.clone()) {
            Ok(valid) => valid,
            Err(e) => {
                let field = if e.field.starts_with("rooms") {
                    "room".to_string()
                } else {
                    e.field
                };
                return self
                    .send_error(
                        socket,
                        ErrorCode::BadMessage,
                        format!("payload.{field}: {}", e.problem),
                    )
                    .await;
            }
        };
        let request = AppendRequest {
            idempotency_key: None,
            key_scope: tenant,
            events: vec![valid],
        };
        match self.state.ingest.submit(request).await {
            Ok(_) => Ok(()),
            Err(e) => {
                self.send_error(socket, ErrorCode::Unavailable, e.to_string())
                    .await
            }
        }
    }
}
