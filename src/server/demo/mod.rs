//! `pytake serve --demo`: synthetic traffic of three tenants, shaped like the
//! seeds' platforms (messages, conversations, tickets, campaigns, calls, AI,
//! ERP), fed through ingest like any producer's events, and their agents
//! ([`agents`]): presence, typing and transfers.

mod agents;

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::protocol::NewEvent;
use crate::protocol::{Scope, TenantId};
use crate::server::state::AppState;
use crate::server::storage::AppendRequest;

/// The demo tenants.
pub const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

const CUSTOMERS: [&str; 8] = [
    "Ana Souza",
    "Bruno Lima",
    "Carla Dias",
    "Diego Alves",
    "Elisa Rocha",
    "Fábio Melo",
    "Gabi Nunes",
    "Hugo Reis",
];
const ERP: [(&str, &str); 4] = [
    ("sap", "/sap/opu/odata/orders"),
    ("totvs", "/api/v1/clientes"),
    ("omie", "/api/v1/produtos/consultar"),
    ("bling", "/Api/v3/pedidos/vendas"),
];
const ERRORS: [&str; 3] = [
    "131026 message undeliverable",
    "131047 re-engagement required",
    "130429 rate limit hit",
];

/// Per-tenant state, so ids and progress look like one real platform.
struct Tenant {
    name: &'static str,
    next_message: u64,
    next_conversation: u64,
    open_conversations: Vec<u64>,
    next_ticket: u64,
    campaign: u64,
    campaign_sent: u64,
    campaign_errors: u64,
    /// Whether the current campaign's `campaign_created` went out.
    campaign_created: bool,
    /// In a delivery outage: most sends fail, so seed 000's failure-rate
    /// rule fires, and resolves a few minutes after the outage ends.
    outage: bool,
}

/// The first outage starts this long after the demo, so a newcomer sees
/// an alert within minutes; then one tenant after another has one.
const FIRST_OUTAGE: Duration = Duration::from_secs(30);
/// How long an outage lasts: past the default rule's one-minute pending
/// duration, so it fires.
const OUTAGE: Duration = Duration::from_secs(120);
/// From one outage's start to the next's: the last one has resolved by
/// then (its failures leave the 5-minute window).
const OUTAGE_EVERY: Duration = Duration::from_secs(600);

const CAMPAIGN_SIZE: u64 = 200;

/// The chance that an agent acts along with an event: with an event every
/// 180 ms on average, about one agent action a second.
const AGENT_ACTION_ODDS: f64 = 0.2;

impl Tenant {
    fn new(name: &'static str, index: u64) -> Tenant {
        Tenant {
            name,
            next_message: 1000 * (index + 1),
            next_conversation: 1,
            open_conversations: Vec::new(),
            next_ticket: 1,
            campaign: index * 100 + 1,
            campaign_sent: 0,
            campaign_errors: 0,
            campaign_created: false,
            outage: false,
        }
    }

    fn phone(rng: &mut StdRng) -> String {
        format!("+5511{:09}", rng.random_range(900_000_000u64..999_999_999))
    }

    /// One event, picked with rough real-world weights.
    fn next_event(&mut self, rng: &mut StdRng) -> (&'static str, Value) {
        let customer = CUSTOMERS[rng.random_range(0..CUSTOMERS.len())];
        let roll = rng.random_range(0..100);
        if roll < 8 || self.open_conversations.is_empty() {
            let id = self.next_conversation;
            self.next_conversation += 1;
            self.open_conversations.push(id);
            return (
                "ConversationStarted",
                json!({"conversation_id": format!("c{id}"), "customer": customer}),
            );
        }
        let conversation =
            self.open_conversations[rng.random_range(0..self.open_conversations.len())];
        // Normally about 1 % of sends fail (a quarter of 56's), well under
        // seed 000's 5 % even over a few dozen sends; in an outage, over
        // half.
        let roll = match roll {
            53..=55 if !self.outage => 8,
            56 if !self.outage && rng.random_bool(0.75) => 8,
            8..=30 if self.outage && rng.random_bool(0.5) => 53,
            roll => roll,
        };
        match roll {
            8..=30 => {
                self.next_message += 1;
                (
                    "MessageSent",
                    json!({
                    "message_id": format!("wamid.{}", self.next_message), "to": Self::phone(rng),
                    "status": "sent", "conversation_id": format!("c{conversation}")}),
                )
            }
            31..=52 => (
                "MessageReceived",
                json!({
                "from": Self::phone(rng), "message": "Olá, qual o status do meu pedido?",
                "conversation_id": format!("c{conversation}")}),
            ),
            53..=56 => {
                self.next_message += 1;
                (
                    "MessageFailed",
                    json!({
                    "message_id": format!("wamid.{}", self.next_message),
                    "error": ERRORS[rng.random_range(0..ERRORS.len())],
                    "conversation_id": format!("c{conversation}")}),
                )
            }
            57..=61 => {
                self.open_conversations.retain(|c| *c != conversation);
                (
                    "ConversationEnded",
                    json!({"conversation_id": format!("c{conversation}"),
                    "duration_seconds": rng.random_range(30..1800)}),
                )
            }
            62..=64 => {
                self.next_ticket += 1;
                (
                    "TicketCreated",
                    json!({"ticket_id": format!("T-{}", self.next_ticket), "customer": customer,
                    "issue": "pedido atrasado", "conversation_id": format!("c{conversation}")}),
                )
            }
            65..=76 => self.campaign_event(rng),
            77..=81 => {
                const OUTCOMES: [&str; 5] = ["answered", "busy", "failed", "converted", "opt_out"];
                (
                    "CallEvent",
                    json!({"call_id": format!("call-{}", rng.random_range(1..99999)),
                    "campaign_id": format!("CAMP-{}", self.campaign),
                    "outcome": OUTCOMES[rng.random_range(0..OUTCOMES.len())]}),
                )
            }
            82..=89 => {
                let tokens = rng.random_range(80..1600);
                (
                    "AIInteraction",
                    json!({"user": customer, "prompt": "Resuma a conversa",
                    "response": "Cliente quer saber do pedido 4411.", "tokens": tokens,
                    "model": "gpt-4o-mini"}),
                )
            }
            _ => {
                let (provider, endpoint) = ERP[rng.random_range(0..ERP.len())];
                let success = rng.random_bool(0.93);
                let latency = if success {
                    rng.random_range(40..600)
                } else {
                    rng.random_range(2000..10000)
                };
                (
                    "ERPCall",
                    json!({"provider": provider, "endpoint": endpoint,
                    "response_time": latency, "success": success}),
                )
            }
        }
    }

    fn campaign_event(&mut self, rng: &mut StdRng) -> (&'static str, Value) {
        let id = format!("CAMP-{}", self.campaign);
        if !self.campaign_created {
            self.campaign_created = true;
            const NAMES: [&str; 4] = [
                "Black Friday",
                "Natal",
                "Reativação de clientes",
                "Pesquisa de satisfação",
            ];
            return (
                "CampaignUpdate",
                json!({"campaign_id": id, "event": "campaign_created",
                "name": NAMES[(self.campaign % NAMES.len() as u64) as usize],
                "total_contacts": CAMPAIGN_SIZE}),
            );
        }
        if self.campaign_sent + self.campaign_errors == 0 {
            self.campaign_sent = 1;
            return (
                "CampaignUpdate",
                json!({"campaign_id": id, "event": "campaign_started",
                "total_contacts": CAMPAIGN_SIZE}),
            );
        }
        let done = self.campaign_sent + self.campaign_errors;
        if done >= CAMPAIGN_SIZE {
            let event = json!({"campaign_id": id, "event": "campaign_complete",
                "totalSent": self.campaign_sent, "totalErrors": self.campaign_errors});
            self.campaign += 1;
            self.campaign_sent = 0;
            self.campaign_errors = 0;
            self.campaign_created = false;
            return ("CampaignUpdate", event);
        }
        if done.is_multiple_of(10) {
            self.campaign_sent += 1;
            return (
                "CampaignUpdate",
                json!({"campaign_id": id, "event": "progress",
                "currentPosition": done, "totalContacts": CAMPAIGN_SIZE,
                "progressPercentage": done * 100 / CAMPAIGN_SIZE}),
            );
        }
        if rng.random_bool(0.05) {
            self.campaign_errors += 1;
            (
                "CampaignUpdate",
                json!({"campaign_id": id, "event": "message_failed", "phone": Self::phone(rng),
                "error": ERRORS[rng.random_range(0..ERRORS.len())]}),
            )
        } else {
            self.campaign_sent += 1;
            (
                "CampaignUpdate",
                json!({"campaign_id": id, "event": "message_sent", "phone": Self::phone(rng)}),
            )
        }
    }
}

/// Publishes demo events until shutdown: a few per second per tenant.
pub async fn run(state: AppState) {
    let mut rng = StdRng::from_os_rng();
    let mut tenants: Vec<Tenant> = TENANTS
        .iter()
        .enumerate()
        .map(|(i, t)| Tenant::new(t, i as u64))
        .collect();
    tracing::info!(tenants = ?TENANTS, "demo traffic started");
    let started = tokio::time::Instant::now();
    let mut outages = 0usize;
    let mut agents = agents::Agents::default();
    loop {
        let pause = Duration::from_millis(rng.random_range(60..300));
        tokio::select! {
            _ = state.shutdown.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
        let elapsed = started.elapsed();
        if let Some(since) = elapsed.checked_sub(FIRST_OUTAGE) {
            let current = (since.as_secs() / OUTAGE_EVERY.as_secs()) as usize;
            let within = since.as_secs() % OUTAGE_EVERY.as_secs() < OUTAGE.as_secs();
            for (i, tenant) in tenants.iter_mut().enumerate() {
                let outage = within && current % TENANTS.len() == i;
                if outage && !tenant.outage {
                    outages += 1;
                    tracing::info!(
                        tenant = tenant.name,
                        outage = outages,
                        "demo delivery outage starts: sends fail until it ends"
                    );
                }
                tenant.outage = outage;
            }
        }
        let tenant = &mut tenants[rng.random_range(0..TENANTS.len())];
        // About one agent action every second or two across the tenants.
        if rng.random_bool(AGENT_ACTION_ODDS) {
            agents
                .act(&state, tenant.name, &tenant.open_conversations, &mut rng)
                .await;
        }
        let (event_type, data) = tenant.next_event(&mut rng);
        let event = NewEvent {
            event_type: event_type.into(),
            data,
            ..NewEvent::default()
        };
        let valid = match event.validate_at(tenant.name.to_string(), state.clock.now()) {
            Ok(valid) => valid,
            Err(e) => {
                tracing::error!(error = %e, event_type, "demo produced an invalid event");
                continue;
            }
        };
        let request = AppendRequest {
            idempotency_key: None,
            key_scope: Scope::Only(TenantId::checked(tenant.name)),
            fingerprint: None,
            events: vec![valid],
        };
        if let Err(e) = state.ingest.submit(request).await {
            tracing::warn!(error = %e, "demo event not stored");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_event_is_valid() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut tenant = Tenant::new("acme", 0);
        for _ in 0..5000 {
            let (event_type, data) = tenant.next_event(&mut rng);
            let event = NewEvent {
                event_type: event_type.into(),
                data,
                ..NewEvent::default()
            };
            event.validate("acme".into()).unwrap();
        }
    }

    /// Failed / (sent + failed) over many events.
    fn failure_rate(outage: bool) -> f64 {
        let mut rng = StdRng::seed_from_u64(11);
        let mut tenant = Tenant::new("acme", 0);
        tenant.outage = outage;
        let (mut sent, mut failed) = (0, 0);
        for _ in 0..20_000 {
            match tenant.next_event(&mut rng).0 {
                "MessageSent" => sent += 1,
                "MessageFailed" => failed += 1,
                _ => {}
            }
        }
        failed as f64 * 100.0 / (sent + failed) as f64
    }

    #[test]
    fn outages_take_the_failure_rate_over_the_default_rule_and_back() {
        let (normal, outage) = (failure_rate(false), failure_rate(true));
        assert!(normal < 1.5, "{normal}");
        assert!(outage > 40.0, "{outage}");
    }
}
