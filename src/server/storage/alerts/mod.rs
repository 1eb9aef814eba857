//! Alert rules, the evaluator's state, alerts, incidents and silences
//! (see [`crate::server::alerts`]).
//!
//! The evaluator runs on one node at a time, the holder of a lease kept
//! here ([`AlertStore::lease`]); everything it decides is written by one
//! fenced [`AlertStore::commit`], together with the jobs that publish and
//! notify it, so a transition is recorded and notified once however many
//! nodes run and whichever of them dies.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::jobs::NewJob;
use super::StoreError;
use crate::protocol::alerts::{Alert, AlertRule, AlertState, Incident, Silence};
use crate::protocol::{Scope, TenantId};

/// The evaluator's memory of one rule for one tenant, kept while the
/// condition holds or the alert fires (no row: inactive).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleState {
    pub rule_id: String,
    /// The tenant, or the system tenant for a machine-wide rule.
    pub tenant_id: String,
    /// Pending or firing (a resolved alert leaves no state).
    pub state: AlertState,
    /// The alert this state belongs to.
    pub alert_id: String,
    /// Pending: when the condition began to hold. Firing: when the value
    /// began to be clear of the threshold by the hysteresis band, if it
    /// is (the alert resolves once that has lasted the rule's `for`).
    pub since: Option<DateTime<Utc>>,
}

/// Everything one evaluation decided, written together or not at all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertWrite {
    /// Inserted or replaced, keyed by (rule, tenant).
    pub states: Vec<RuleState>,
    /// (rule, tenant) states to delete: the condition cleared.
    pub cleared: Vec<(String, String)>,
    /// Inserted or replaced by id. An acknowledgement already stored is
    /// kept whatever the row says (the API may acknowledge between the
    /// evaluator's read and its commit).
    pub alerts: Vec<Alert>,
    /// Ids of pending alerts that cleared before they fired: deleted, so
    /// history holds only alerts that fired.
    pub dropped: Vec<String>,
    /// Inserted or replaced by id, acknowledgements kept as for alerts.
    pub incidents: Vec<Incident>,
    /// Jobs to enqueue in the same transaction: the `SystemAlert` events
    /// and the notifications.
    pub jobs: Vec<NewJob>,
}

impl AlertWrite {
    pub fn is_empty(&self) -> bool {
        *self == AlertWrite::default()
    }
}

/// Which alerts a listing wants, newest first (by when they began).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertFilter {
    pub tenant: Scope<TenantId>,
    /// Alerts that were pending or firing at some time since then: begun
    /// after it, or not resolved before it.
    pub since: Option<DateTime<Utc>>,
    pub state: Option<AlertState>,
    pub limit: u32,
}

/// The alerting store.
///
/// # Contract (every backend; the conformance suite checks each point)
///
/// - **Rules** are keyed by id. A tenant scope sees the tenant's own rules
///   and the rules for every tenant (`tenant_id` none); only
///   [`Scope::All`] sees other tenants' rules. Scope checks on writes are
///   the caller's (the API reads the rule first).
/// - **One evaluator**: [`AlertStore::lease`] grants a named lease to one
///   holder at a time until it expires; the holder renews it, another
///   holder gets it only after expiry, with a new, greater token.
/// - **Fencing**: [`AlertStore::commit`] writes only while the token is
///   the lease's current one and unexpired at `now`; otherwise it writes
///   nothing (jobs included) and answers false. So a holder that lost the
///   lease (paused, partitioned) cannot record or notify a transition the
///   new holder also records.
/// - **Atomic**: a commit is one transaction: states, alerts, incidents
///   and jobs together, or nothing.
/// - **Acknowledgements stick**: a commit never clears an
///   acknowledgement stored by [`AlertStore::acknowledge`].
#[async_trait]
pub trait AlertStore: Send + Sync + 'static {
    /// The rules `tenant` may see, by id.
    async fn rules(&self, tenant: &Scope<TenantId>) -> Result<Vec<AlertRule>, StoreError>;

    /// One rule ([`StoreError::NotFound`]).
    async fn rule(&self, id: &str) -> Result<AlertRule, StoreError>;

    /// Stores a checked rule. `create`: [`StoreError::Conflict`] when the
    /// id exists; otherwise inserts or replaces.
    async fn put_rule(
        &self,
        rule: &AlertRule,
        create: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Inserts the rules whose ids are not stored (the configured and
    /// default rules at start: a rule changed over the API keeps its
    /// change); how many.
    async fn seed_rules(&self, rules: &[AlertRule], now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Deletes a rule, its states and its pending alerts (fired ones stay
    /// in history). [`StoreError::NotFound`] when absent.
    async fn delete_rule(&self, id: &str) -> Result<(), StoreError>;

    /// Takes or renews the lease `name` for `holder` until `now + ttl`:
    /// its token, or none while another holder's lease runs.
    async fn lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError>;

    /// Every stored rule state.
    async fn rule_states(&self) -> Result<Vec<RuleState>, StoreError>;

    /// Writes `write` if `token` still holds lease `name` at `now` (see
    /// the contract); whether it was written.
    async fn commit(
        &self,
        name: &str,
        token: i64,
        write: AlertWrite,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    async fn alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError>;

    /// One alert, if `tenant` may see it ([`StoreError::NotFound`]
    /// otherwise).
    async fn alert(&self, id: &str, tenant: &Scope<TenantId>) -> Result<Alert, StoreError>;

    /// Incidents not resolved, oldest first.
    async fn open_incidents(&self) -> Result<Vec<Incident>, StoreError>;

    /// Incidents `tenant` may see, newest first: the open ones and those
    /// resolved since `since`.
    async fn incidents(
        &self,
        tenant: &Scope<TenantId>,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Incident>, StoreError>;

    /// Acknowledges an incident, given its id or the id of one of its
    /// alerts: the incident and all its alerts, once (a second
    /// acknowledgement keeps the first's time and author). The incident.
    /// [`StoreError::NotFound`] for an id `tenant` may not see,
    /// [`StoreError::Conflict`] for a pending alert (no incident yet).
    async fn acknowledge(
        &self,
        id: &str,
        by: &str,
        tenant: &Scope<TenantId>,
        now: DateTime<Utc>,
    ) -> Result<Incident, StoreError>;

    /// Silences `tenant` may see (its own and those of every tenant), by
    /// end; with `active_at`, only those running then.
    async fn silences(
        &self,
        tenant: &Scope<TenantId>,
        active_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Silence>, StoreError>;

    async fn add_silence(&self, silence: &Silence) -> Result<(), StoreError>;

    /// Ends a silence now by deleting it ([`StoreError::NotFound`] for one
    /// `tenant` may not see).
    async fn delete_silence(&self, id: &str, tenant: &Scope<TenantId>) -> Result<(), StoreError>;
}

pub mod columns;
pub mod rows;
