//! The demo's agents (seed 002's multi-agent inbox): they come online in
//! their tenant's `presence` room, go away and come back, type in open
//! conversations and hand conversations to each other, through the same
//! presence registry and `transfer()` the WebSocket and the REST API use,
//! so `pytake presence --watch` and `pytake tail --room presence` show
//! life at once.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::Rng;

use crate::protocol::presence::Status;
use crate::protocol::{Claims, Role, TenantId};
use crate::server::conversations::{self, TransferError};
use crate::server::presence::{PresenceGuard, TypingKey};
use crate::server::state::AppState;

/// Each demo tenant's agents.
pub const AGENTS: [&str; 4] = ["ana", "bruno", "carla", "diego"];

/// Token lifetime of the agents' made-up claims: `transfer()` checks the
/// role and tenant, not the expiry, so any span works.
const CLAIMS_TTL_SECS: u64 = 3600;

/// One agent of one tenant: its connection while online, and the
/// conversation it is typing in.
#[derive(Default)]
struct Agent {
    online: Option<PresenceGuard>,
    typing_in: Option<String>,
}

/// The agents of every tenant.
#[derive(Default)]
pub struct Agents {
    agents: HashMap<(String, &'static str), Agent>,
}

impl Agents {
    /// One agent does one thing; `open` are the tenant's open
    /// conversations. A new agent comes online first, so a newcomer sees
    /// agents join within seconds of start.
    pub async fn act(
        &mut self,
        state: &AppState,
        tenant: &'static str,
        open: &[u64],
        rng: &mut StdRng,
    ) {
        let name = AGENTS[rng.random_range(0..AGENTS.len())];
        let tenant_id = TenantId::checked(tenant);
        let agent = self.agents.entry((tenant.to_string(), name)).or_default();
        let Some(guard) = &agent.online else {
            agent.online = Some(state.presence.connect(&tenant_id, name));
            return;
        };
        // Whoever was typing stops first: a typing burst lasts one turn.
        if let Some(conversation) = agent.typing_in.take() {
            let key = typing_key(&tenant_id, &conversation, name);
            state.presence.typing(&key, false).await;
            return;
        }
        match rng.random_range(0..100) {
            0..=14 => {
                let status = [Status::Online, Status::Away, Status::Busy][rng.random_range(0..3)];
                if let Err(e) = guard.set_status(status) {
                    tracing::warn!(error = %e, "demo agent status refused");
                }
            }
            15..=24 => agent.online = None,
            25..=74 if !open.is_empty() => {
                let conversation = format!("c{}", open[rng.random_range(0..open.len())]);
                let key = typing_key(&tenant_id, &conversation, name);
                state.presence.typing(&key, true).await;
                agent.typing_in = Some(conversation);
            }
            75..=99 if !open.is_empty() => {
                let conversation = format!("c{}", open[rng.random_range(0..open.len())]);
                // Another agent: nobody hands a conversation to themselves.
                let others: Vec<&str> = AGENTS.iter().copied().filter(|a| *a != name).collect();
                let to = others[rng.random_range(0..others.len())];
                transfer(state, &tenant_id, name, &conversation, to).await;
            }
            _ => {}
        }
    }
}

fn typing_key(tenant: &TenantId, conversation: &str, user: &str) -> TypingKey {
    TypingKey {
        tenant: tenant.clone(),
        conversation: conversation.to_string(),
        user: user.to_string(),
        conn: None,
    }
}

/// `by` hands `conversation` to `to` as an operator would; a transfer to
/// the current assignee is the API's 409, which the demo simply skips.
async fn transfer(state: &AppState, tenant: &TenantId, by: &str, conversation: &str, to: &str) {
    let now = state.clock.now().timestamp().max(0) as u64;
    let claims = Claims::new(
        by,
        Some(tenant.as_str()),
        Role::Operator,
        now,
        now + CLAIMS_TTL_SECS,
    );
    let note = format!("{by} hands over to {to}");
    match conversations::transfer(state, &claims, tenant, conversation, to, Some(&note)).await {
        Ok(_) | Err(TransferError::Conflict(_)) => {}
        Err(e) => tracing::warn!(error = %e, conversation, "demo transfer failed"),
    }
}
