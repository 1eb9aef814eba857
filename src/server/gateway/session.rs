//! What a connection's requests do: authenticate, subscribe (with replay),
//! publish.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::connection::{Connection, Exit, Slow, Socket, Step};
use super::Target;
use crate::protocol::events::validate_event_types;
use crate::protocol::frames::{Limits, Subscribed, Welcome};
use crate::protocol::limits::{
    MAX_EVENT_TYPES, MAX_ROOMS_PER_CONNECTION, MAX_ROOMS_PER_SUBSCRIPTION,
};
use crate::protocol::{
    close, ErrorCode, NewEvent, Room, Scope, ServerFrame, Subscription, TenantId,
};
use crate::server::replay::{Replay, Seam};
use crate::server::storage::AppendRequest;

/// Close code for "the server cannot serve history now; reconnect".
const INTERNAL_ERROR: u16 = 1011;

impl Connection {
    /// Checks a token, joins what the endpoint names and sends `Welcome`.
    pub(super) async fn authenticate(
        &mut self,
        socket: &mut Socket,
        token: &str,
        target: &Target,
    ) -> Step {
        // Live events wait until `Welcome` is out.
        let parked = self.handle.wire.park();
        self.welcome(socket, token, target).await?;
        parked.release();
        Ok(())
    }

    async fn welcome(&mut self, socket: &mut Socket, token: &str, target: &Target) -> Step {
        let claims = match self.state.keys.verify(token) {
            Ok(claims) => claims,
            Err(e) => {
                self.send_error(socket, ErrorCode::Unauthorized, e.to_string())
                    .await?;
                return Err(Exit::Close(close::UNAUTHORIZED, "unauthorized".into()));
            }
        };
        // Before anything is joined: a tenant at its cap gets nothing.
        if let Err(refusal) = self.admission.authenticate(&claims) {
            self.send_error(socket, ErrorCode::Unavailable, refusal.to_string())
                .await?;
            return Err(Exit::Close(
                close::TRY_AGAIN_LATER,
                "try again later".into(),
            ));
        }
        let rooms = match target {
            Target::Nothing => Vec::new(),
            Target::Room(name) => {
                let room = match Room::parse(name) {
                    Ok(room) => room,
                    Err(problem) => {
                        self.send_error(socket, ErrorCode::BadMessage, problem)
                            .await?;
                        return Err(Exit::Close(close::BAD_MESSAGE, "unknown room".into()));
                    }
                };
                self.join(claims.scope(), Scope::Only(room), None).await?;
                vec![name.clone()]
            }
            Target::Tenant(tenant) => {
                let tenant = match TenantId::parse(tenant) {
                    Ok(id) if claims.may_see(tenant) => id,
                    _ => {
                        let message = format!("this token may not see tenant `{tenant}`");
                        self.send_error(socket, ErrorCode::Forbidden, message)
                            .await?;
                        return Err(Exit::Close(close::FORBIDDEN, "forbidden".into()));
                    }
                };
                self.join(Scope::Only(tenant), Scope::All, None).await?;
                // The protocol's word for every room.
                vec!["*".to_string()]
            }
        };
        let g = &self.state.gateway;
        let welcome = ServerFrame::Welcome(Welcome {
            connection_id: self.handle.id.to_string(),
            tenant_id: claims.tenant_id.clone(),
            role: claims.role.to_string(),
            rooms,
            limits: Limits {
                rate_limit_per_minute: g.rate_limit,
                max_frame_bytes: g.max_frame_bytes,
                ping_interval_seconds: g.ping_interval.as_secs(),
                idle_timeout_seconds: g.idle_timeout.as_secs(),
            },
        });
        tracing::debug!(conn = self.handle.id, sub = %claims.sub, role = %claims.role, "authenticated");
        self.claims = Some(claims);
        self.send(socket, &welcome).await
    }

    /// Joins a room, or changes the event-type filter of a room already
    /// joined (replacing the membership would leave the room on drop).
    /// The first room of a tenant makes the node watch the tenant on the
    /// bus, and returns once its events flow here.
    async fn join(
        &mut self,
        tenant: Scope<TenantId>,
        room: Scope<Room>,
        types: Option<Arc<[String]>>,
    ) -> Step {
        self.watch(tenant.clone()).await?;
        if self.watches.len() > 1 {
            // Rooms of two tenants (an admin's): the bus orders each
            // tenant's events, but only watching every tenant orders them
            // across tenants, which this connection would see.
            self.watch(Scope::All).await?;
        }
        let key = (tenant, room);
        match self.memberships.get(&key) {
            Some(membership) => self.state.hub.set_types(membership, types),
            None => {
                let membership = self.state.hub.join(&self.handle, &key.0, &key.1, types);
                self.memberships.insert(key, membership);
            }
        }
        Ok(())
    }

    async fn watch(&mut self, tenant: Scope<TenantId>) -> Step {
        if self.watches.contains_key(&tenant) {
            return Ok(());
        }
        match self.state.bus.watch(tenant.clone()).await {
            Ok(interest) => {
                self.watches.insert(tenant, interest);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "watching a tenant on the bus failed");
                Err(Exit::Close(INTERNAL_ERROR, "bus unavailable".into()))
            }
        }
    }

    pub(super) async fn subscribe(&mut self, socket: &mut Socket, sub: Subscription) -> Step {
        // Live events wait until `Subscribed` and the replay are out.
        let parked = self.handle.wire.park();
        self.subscribed(socket, sub).await?;
        parked.release();
        Ok(())
    }

    async fn subscribed(&mut self, socket: &mut Socket, sub: Subscription) -> Step {
        let claims = self.claims.as_ref().expect("checked by caller");
        let tenant = match &sub.tenant_id {
            Some(t) => {
                let id = match TenantId::parse(t) {
                    Ok(id) => id,
                    Err(problem) => {
                        let message = format!("payload.tenant_id: {problem}");
                        return self
                            .send_error(socket, ErrorCode::BadMessage, message)
                            .await;
                    }
                };
                if !claims.may_see(t) {
                    let message = format!("this token may not see tenant `{t}`");
                    return self.send_error(socket, ErrorCode::Forbidden, message).await;
                }
                Scope::Only(id)
            }
            None => claims.scope(),
        };
        let rooms = match self.check_subscription(&sub, &tenant) {
            Ok(rooms) => rooms,
            Err(problem) => {
                return self
                    .send_error(socket, ErrorCode::BadMessage, problem)
                    .await
            }
        };
        let types = validate_event_types(sub.event_types.clone()).expect("checked above");
        let seam = Seam {
            floor: sub.since.unwrap_or(0),
            tenant: tenant.clone(),
            rooms: rooms.clone(),
            types: types.clone(),
        };
        if sub.since.is_some() {
            // Before joining: from the first live event on, copies of what
            // the replay sends are dropped, not parked.
            self.handle.wire.begin_replay(seam.clone());
        }
        let shared_types: Option<Arc<[String]>> = types.clone().map(Arc::from);
        let joined: Vec<Scope<Room>> = match &rooms {
            Scope::All => vec![Scope::All],
            Scope::Only(rooms) => rooms.iter().cloned().map(Scope::Only).collect(),
        };
        for room in joined {
            self.join(tenant.clone(), room, shared_types.clone())
                .await?;
        }
        let head = match self.state.store.last_event_id().await {
            Ok(head) => head,
            Err(e) => return self.history_failed(socket, e).await,
        };
        self.handle.wire.replaying_to(head);
        let subscribed = ServerFrame::Subscribed(Subscribed {
            rooms: sub.rooms.clone(),
            tenant_id: tenant.to_wire(),
            event_types: types.clone(),
            since: sub.since,
            head,
        });
        self.send(socket, &subscribed).await?;
        match sub.since {
            Some(since) => self.replay(socket, Replay::new(&seam, since)).await,
            None => Ok(()),
        }
    }

    /// The rules a subscription must follow; the error names the field.
    /// Returns its rooms, each once.
    fn check_subscription(
        &self,
        sub: &Subscription,
        tenant: &Scope<TenantId>,
    ) -> Result<Scope<Vec<Room>>, String> {
        if sub.rooms.len() > MAX_ROOMS_PER_SUBSCRIPTION {
            return Err(format!(
                "payload.rooms: at most {MAX_ROOMS_PER_SUBSCRIPTION} rooms per subscription"
            ));
        }
        let mut rooms: Vec<Room> = Vec::with_capacity(sub.rooms.len());
        for (i, name) in sub.rooms.iter().enumerate() {
            let room =
                Room::parse(name).map_err(|problem| format!("payload.rooms[{i}]: {problem}"))?;
            if !rooms.contains(&room) {
                rooms.push(room);
            }
        }
        let new_rooms = rooms
            .iter()
            .filter(|r| {
                !self
                    .memberships
                    .contains_key(&(tenant.clone(), Scope::Only((*r).clone())))
            })
            .count();
        if self.memberships.len() + new_rooms > MAX_ROOMS_PER_CONNECTION {
            return Err(format!(
                "payload.rooms: a connection may join at most {MAX_ROOMS_PER_CONNECTION} rooms; unsubscribe first"
            ));
        }
        if sub
            .event_types
            .as_ref()
            .is_some_and(|t| t.len() > MAX_EVENT_TYPES)
        {
            return Err(format!(
                "payload.event_types: at most {MAX_EVENT_TYPES} types"
            ));
        }
        validate_event_types(sub.event_types.clone())
            .map_err(|problem| format!("payload.{problem}"))?;
        if sub.since.is_some_and(|s| s < 0) {
            return Err("payload.since: must be 0 or a positive event id".into());
        }
        Ok(Scope::rooms(rooms))
    }

    /// Sends the stored events of a replay, page by page (see
    /// [`crate::server::replay`]). The wire drops live copies of what the
    /// replay sends, during it and after it, so the seam has no duplicate.
    async fn replay(&mut self, socket: &mut Socket, mut replay: Replay) -> Step {
        loop {
            let page = match replay.next_page(&*self.state.store).await {
                Ok(page) => page,
                Err(e) => return self.history_failed(socket, e).await,
            };
            self.handle.wire.replaying_to(replay.floor());
            let write = async {
                for event in &page.events {
                    let frame = Utf8Bytes::from(ServerFrame::event_text(event));
                    socket.feed(Message::Text(frame)).await?;
                }
                socket.flush().await
            };
            match tokio::time::timeout(self.state.gateway.write_stall, write).await {
                Ok(Ok(())) => {
                    let replies = &self.state.hub.stats.replies;
                    replies.fetch_add(page.events.len() as u64, Ordering::Relaxed);
                }
                Ok(Err(_)) => return Err(Exit::Gone),
                Err(_) => return Err(Exit::Slow(Slow::Stalled)),
            }
            if page.last {
                break;
            }
        }
        self.handle.wire.end_replay();
        Ok(())
    }

    async fn history_failed(&self, socket: &mut Socket, e: impl std::fmt::Display) -> Step {
        tracing::error!(error = %e, "reading history failed");
        let message = "history is unavailable; reconnect and resume with `since`";
        self.send_error(socket, ErrorCode::Unavailable, message)
            .await?;
        Err(Exit::Close(INTERNAL_ERROR, "history unavailable".into()))
    }

    pub(super) async fn publish(
        &mut self,
        socket: &mut Socket,
        room: String,
        event_type: String,
        data: serde_json::Value,
    ) -> Step {
        let claims = self.claims.as_ref().expect("checked by caller");
        if !claims.role.can_publish() {
            let message = format!("role {} may not publish", claims.role);
            return self.send_error(socket, ErrorCode::Forbidden, message).await;
        }
        let Some(tenant) = claims.tenant_id.clone() else {
            let message = "Publish needs a tenant: admin tokens publish with POST /api/v1/events and tenant_id";
            return self
                .send_error(socket, ErrorCode::BadMessage, message)
                .await;
        };
        let event = NewEvent {
            event_type,
            data,
            rooms: Some(vec![room]),
            ..NewEvent::default()
        };
        let valid = match event.validate_at(tenant.clone(), self.state.clock.now()) {
            Ok(valid) => valid,
            Err(e) => {
                let field = if e.field.starts_with("rooms") {
                    "room".to_string()
                } else {
                    e.field
                };
                let message = format!("payload.{field}: {}", e.problem);
                return self
                    .send_error(socket, ErrorCode::BadMessage, message)
                    .await;
            }
        };
        let request = AppendRequest {
            idempotency_key: None,
            key_scope: claims.scope(),
            fingerprint: None,
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
