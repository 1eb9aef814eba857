//! A connection's presence and typing: it counts toward its user's
//! presence once authenticated, and `Presence` and `Typing` messages go to
//! [`crate::server::presence`].
//!
//! # Who counts, and which conversations a connection types in
//!
//! A connection counts toward presence when its token names a tenant and
//! is not a service token (a platform service is not a person); its user
//! is the token's `sub`. An admin token without a tenant is nobody's
//! colleague: its `Presence` is refused.
//!
//! A tenant owns `conversation:{id}` when the store holds an event of the
//! tenant in that room (every message of a conversation is one). A tenant
//! token types only in its tenant's conversations; an admin token without
//! a tenant types in the conversation's tenant when exactly one tenant
//! has it. Anything else is `Error bad_message` naming `conversation_id`,
//! and the connection stays open.

use std::collections::HashMap;

use super::connection::{Connection, Socket, Step};
use super::hub::ConnId;
use crate::protocol::presence::Status;
use crate::protocol::{ErrorCode, Role, Room, Scope, TenantId};
use crate::server::presence::{Presence, PresenceGuard, TypingKey};
use crate::server::storage::EventQuery;

/// Conversations a connection remembers the tenant of; past this the
/// memory is cleared (and the store asked again).
const OWNED_CONVERSATIONS: usize = 256;

/// A connection's part in presence; ends its typing states when dropped.
pub(super) struct PresenceSession {
    presence: Presence,
    conn: ConnId,
    guard: Option<PresenceGuard>,
    owned: HashMap<String, TenantId>,
}

impl PresenceSession {
    pub(super) fn new(presence: Presence, conn: ConnId) -> PresenceSession {
        PresenceSession {
            presence,
            conn,
            guard: None,
            owned: HashMap::new(),
        }
    }
}

impl Drop for PresenceSession {
    fn drop(&mut self) {
        self.presence.end_typing(self.conn);
    }
}

impl Connection {
    /// Called once the connection is authenticated: counts it toward its
    /// user's presence (see the module's rules).
    pub(super) fn track_presence(&mut self) {
        let Some(claims) = &self.claims else {
            return;
        };
        let (Some(tenant), false) = (&claims.tenant_id, claims.role == Role::Service) else {
            return;
        };
        let tenant = TenantId::checked(tenant);
        self.presence.guard = Some(self.state.presence.connect(&tenant, &claims.sub));
    }

    /// `Presence {status}`.
    pub(super) async fn set_presence(&mut self, socket: &mut Socket, status: String) -> Step {
        let status = match Status::settable(&status) {
            Ok(status) => status,
            Err(problem) => {
                return self
                    .send_error(socket, ErrorCode::BadMessage, problem)
                    .await
            }
        };
        let Some(guard) = &self.presence.guard else {
            let message = "payload.status: this token has no presence: admin tokens without a tenant and service tokens are not users of a tenant";
            return self.send_error(socket, ErrorCode::Forbidden, message).await;
        };
        match guard.set_status(status) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.send_error(
                    socket,
                    ErrorCode::BadMessage,
                    format!("payload.status: {e}"),
                )
                .await
            }
        }
    }

    /// `Typing {conversation_id, typing}`.
    pub(super) async fn typing(
        &mut self,
        socket: &mut Socket,
        conversation: String,
        typing: bool,
    ) -> Step {
        let tenant = match self.conversation_tenant(&conversation).await {
            Ok(tenant) => tenant,
            Err((code, problem)) => {
                let message = format!("payload.conversation_id: {problem}");
                return self.send_error(socket, code, message).await;
            }
        };
        let claims = self.claims.as_ref().expect("checked by caller");
        let key = TypingKey {
            tenant,
            conversation,
            user: claims.sub.clone(),
            conn: Some(self.handle.id),
        };
        self.state.presence.typing(&key, typing).await;
        Ok(())
    }

    /// The tenant that owns a conversation, as this connection may type in
    /// it (see the module's rules).
    async fn conversation_tenant(
        &mut self,
        conversation: &str,
    ) -> Result<TenantId, (ErrorCode, String)> {
        if let Some(tenant) = self.presence.owned.get(conversation) {
            return Ok(tenant.clone());
        }
        let room = Room::parse(&format!("conversation:{conversation}"))
            .map_err(|problem| (ErrorCode::BadMessage, problem))?;
        let claims = self.claims.as_ref().expect("checked by caller");
        let scope = claims.scope();
        let unavailable = |e: crate::server::storage::StoreError| {
            tracing::error!(error = %e, "reading a conversation's tenant failed");
            (
                ErrorCode::Unavailable,
                "cannot check the conversation now; try again".to_string(),
            )
        };
        let tenants: Vec<TenantId> = match &scope {
            // Does the tenant have an event in the room?
            Scope::Only(tenant) => {
                let query = EventQuery {
                    tenant: scope.clone(),
                    rooms: Scope::Only(vec![room]),
                    event_types: None,
                    since: 0,
                    before: None,
                    limit: 1,
                };
                let events = self.state.store.events(&query).await.map_err(unavailable)?;
                events.first().map(|_| tenant.clone()).into_iter().collect()
            }
            // Whose room is it? Two answers: ambiguous.
            Scope::All => self
                .state
                .store
                .room_tenants(&room, 2)
                .await
                .map_err(unavailable)?,
        };
        let tenants: Vec<&str> = tenants.iter().map(TenantId::as_str).collect();
        let tenant = match (tenants.as_slice(), &scope) {
            ([only], _) => TenantId::checked(only),
            ([], Scope::Only(tenant)) => {
                return Err((
                    ErrorCode::BadMessage,
                    format!("tenant `{tenant}` has no conversation `{conversation}`"),
                ))
            }
            ([], Scope::All) => {
                return Err((
                    ErrorCode::BadMessage,
                    format!("no tenant has a conversation `{conversation}`"),
                ))
            }
            (_, _) => {
                return Err((
                    ErrorCode::BadMessage,
                    format!("several tenants have a conversation `{conversation}`: type with a token of the tenant"),
                ))
            }
        };
        if self.presence.owned.len() >= OWNED_CONVERSATIONS {
            self.presence.owned.clear();
        }
        self.presence
            .owned
            .insert(conversation.to_string(), tenant.clone());
        Ok(tenant)
    }
}
