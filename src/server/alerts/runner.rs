//! The evaluator's loop on every node: each `evaluation_interval`, take
//! or renew the lease; the holder evaluates and commits, the others stand
//! by and take over once the holder's lease expires (a dead node's within
//! [`lease_ttl`]).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::evaluate::{evaluate, Context};
use super::values::Sources;
use super::LEASE;
use crate::config::AlertsSettings;
use crate::protocol::alerts::{default_rules, AlertRule};
use crate::server::clock::Clock;
use crate::server::storage::StoreError;

/// How long a holder's lease lasts without renewal: three evaluations,
/// so one slow evaluation or store hiccup does not hand it over, and a
/// dead holder's rules are evaluated again within this.
pub fn lease_ttl(settings: &AlertsSettings) -> Duration {
    settings.evaluation_interval * 3
}

pub struct Evaluator {
    pub sources: Sources,
    pub settings: AlertsSettings,
    pub max_attempts: u32,
    pub clock: Clock,
    /// This node's name as the lease's holder.
    pub node: String,
    /// Where this node can notify.
    pub channels: std::collections::BTreeSet<crate::protocol::alerts::Channel>,
    /// What `/health` shows of this node's part.
    pub status: Arc<super::status::Status>,
}

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Another node holds the lease.
    Standby,
    /// Evaluated; nothing changed.
    Unchanged,
    /// Evaluated and committed changes.
    Committed,
    /// Evaluated, but the lease was lost before the commit: nothing
    /// written.
    LostLease,
}

impl Evaluator {
    /// Stores the configured rules and seed 000's defaults that are not
    /// stored yet (a rule changed over the API keeps its change).
    pub async fn seed(&self) -> Result<u64, StoreError> {
        let mut rules: Vec<AlertRule> = self.settings.rules.clone();
        for rule in default_rules() {
            if !rules.iter().any(|r| r.id == rule.id) {
                rules.push(rule);
            }
        }
        self.sources
            .alerts
            .seed_rules(&rules, self.clock.now())
            .await
    }

    /// One round at the clock's now.
    pub async fn round(&self) -> Result<Round, StoreError> {
        let store = &self.sources.alerts;
        let now = self.clock.now();
        let Some(token) = store
            .lease(LEASE, &self.node, lease_ttl(&self.settings), now)
            .await?
        else {
            return Ok(Round::Standby);
        };
        let ctx = Context {
            sources: &self.sources,
            settings: &self.settings,
            max_attempts: self.max_attempts,
            channels: &self.channels,
        };
        let write = evaluate(&ctx, now).await?;
        if write.is_empty() {
            return Ok(Round::Unchanged);
        }
        let transitions = write.alerts.len();
        // Renewed right before the commit, so an evaluation longer than
        // the lease's time is not thrown away every round; a holder that
        // lost it meanwhile gets another token, and the commit is refused.
        let renewed = store
            .lease(
                LEASE,
                &self.node,
                lease_ttl(&self.settings),
                self.clock.now(),
            )
            .await?;
        if renewed == Some(token) && store.commit(LEASE, token, write, self.clock.now()).await? {
            tracing::debug!(transitions, "alert evaluation committed");
            Ok(Round::Committed)
        } else {
            tracing::warn!(
                node = %self.node,
                "lost the alert evaluator's lease during an evaluation; nothing of it was written"
            );
            Ok(Round::LostLease)
        }
    }

    /// Seeds the rules, then evaluates every interval until shutdown.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            match self.seed().await {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot store the alert rules yet; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(self.settings.evaluation_interval) => {}
                    }
                }
            }
        }
        let mut tick = tokio::time::interval(self.settings.evaluation_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut standby_logged = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let round = self.round().await;
            if let Ok(round) = &round {
                self.status.record(*round, self.clock.now());
            }
            match round {
                Ok(Round::Standby) if !standby_logged => {
                    tracing::info!(node = %self.node, "another node evaluates the alert rules");
                    standby_logged = true;
                }
                Ok(Round::Standby) => {}
                Ok(_) => standby_logged = false,
                Err(e) => {
                    tracing::warn!(error = %e, "alert evaluation failed; next try in one interval")
                }
            }
        }
    }
}
