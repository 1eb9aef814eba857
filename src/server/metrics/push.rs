//! The pushes: a `Metrics` message to `dashboard` subscribers every
//! `push_interval` when their figures changed, and throttled campaign
//! figures to `campaigns` and `campaign:{id}` subscribers.
//!
//! Each node pushes to its own connections from its own aggregator, whose
//! figures are every node's: nothing goes over the bus.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::aggregator::Aggregator;
use super::campaign;
use super::throttle::CampaignKey;
use crate::protocol::metrics::Kpis;
use crate::protocol::{Room, Scope, ServerFrame, TenantId};
use crate::server::state::AppState;

/// A scope whose counts did not change is pushed again after this many
/// intervals anyway (30 s by default), so the machine's CPU and memory,
/// which move all the time, stay current without a push every interval.
pub const REFRESH_TICKS: u32 = 15;

/// Whether two KPIs differ only in what moves all the time (the time,
/// CPU and memory): no reason to push on their own.
fn same_counts(a: &Kpis, b: &Kpis) -> bool {
    let strip = |k: &Kpis| Kpis {
        timestamp: String::new(),
        system_cpu_usage: 0.0,
        system_memory_usage: 0.0,
        ..k.clone()
    };
    strip(a) == strip(b)
}

/// Pushes `Metrics` to `dashboard` subscribers until shutdown: when
/// their scope's counts changed, else every [`REFRESH_TICKS`] intervals.
pub async fn dashboard(state: AppState, shutdown: CancellationToken) {
    let aggregator = state.metrics.clone();
    let room = Room::checked("dashboard");
    let mut tick = tokio::time::interval(aggregator.settings.push_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // What each scope was sent last, and how many ticks ago.
    let mut sent: HashMap<Scope<TenantId>, (Kpis, u32)> = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !aggregator.caught_up() {
            continue;
        }
        let scopes = state.hub.scopes_in(room.as_str());
        sent.retain(|scope, _| scopes.contains(scope));
        for scope in scopes {
            let kpis = aggregator.kpis(&scope);
            if let Some((last, ticks)) = sent.get_mut(&scope) {
                *ticks += 1;
                if *ticks < REFRESH_TICKS && same_counts(last, &kpis) {
                    continue;
                }
            }
            let frame = ServerFrame::Metrics(serde_json::to_value(&kpis).expect("kpis serialize"));
            state.hub.deliver_to_scope(&scope, &room, &frame);
            sent.insert(scope, (kpis, 0));
        }
    }
}

/// Pushes campaigns' figures as the throttle lets them, until shutdown.
pub async fn campaigns(state: AppState, shutdown: CancellationToken) {
    let aggregator: Arc<Aggregator> = state.metrics.clone();
    loop {
        let next = aggregator
            .throttle
            .lock()
            .expect("throttle lock")
            .next_due();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = aggregator.throttle_wake.notified() => {}
            _ = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
        let due = aggregator
            .throttle
            .lock()
            .expect("throttle lock")
            .take_due(tokio::time::Instant::now());
        for key in due {
            push_campaign(&state, &key).await;
        }
    }
}

/// Reads a campaign's figures as stored now and sends them; the store
/// holds every event the bus delivered, so this is the latest state.
async fn push_campaign(state: &AppState, (tenant, id): &CampaignKey) {
    let tenant = TenantId::checked(tenant);
    let row = match state.stores.metrics.campaign(&tenant, id).await {
        Ok(Some(row)) => row,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, campaign = %id, "campaign figures not pushed: the store failed");
            return;
        }
    };
    let metrics = campaign::metrics(&row, state.clock.now());
    let mut value = serde_json::to_value(&metrics).expect("campaign metrics serialize");
    value["kind"] = "campaign".into();
    let frame = ServerFrame::Metrics(value);
    for room in ["campaigns".to_string(), format!("campaign:{id}")] {
        // An id that cannot name a room has no subscribers to push to.
        if let Ok(room) = Room::parse(&room) {
            state.hub.deliver_frame(&tenant, &room, &frame);
        }
    }
}
