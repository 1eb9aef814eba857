//! One evaluation: every enabled rule measured for every tenant it
//! covers, each (rule, tenant) stepped through the state machine, fired
//! alerts grouped into incidents, and what changed gathered into one
//! [`AlertWrite`] with the jobs that publish and notify it.
//!
//! Reads come from the store each time rather than from this node's
//! memory, so a node that takes the lease over carries on exactly where
//! the last holder's final commit left off.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::machine::{step, Step};
use super::values::{measure, Sources};
use super::EVENT_KIND;
use crate::config::AlertsSettings;
use crate::protocol::alerts::{Alert, AlertRule, AlertState, Channel, Incident, Silence};
use crate::protocol::Scope;
use crate::server::queue::DEFAULT_QUEUE;
use crate::server::storage::alerts::{AlertWrite, RuleState};
use crate::server::storage::jobs::NewJob;
use crate::server::storage::StoreError;

/// Attempts of a job that stores a `SystemAlert` event: more than a
/// notification's, since only a store outage fails it and the record
/// must not be lost (2 s doubling to the cap: about 17 minutes).
const EVENT_ATTEMPTS: u32 = 10;

/// What an evaluation reads besides the values.
pub struct Context<'a> {
    pub sources: &'a Sources,
    pub settings: &'a AlertsSettings,
    /// `[queue] max_attempts`, for notifications.
    pub max_attempts: u32,
    /// Where this node can notify ([`super::configured_channels`]).
    pub channels: &'a BTreeSet<Channel>,
}

pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A fresh id: a prefix, the time and random bits, sortable by creation.
pub(super) fn new_id(prefix: &str, now: DateTime<Utc>) -> String {
    format!(
        "{prefix}_{}{:08x}",
        now.format("%Y%m%d%H%M%S"),
        rand::random::<u32>()
    )
}

/// Runs one evaluation at `now`; an empty write when nothing changed.
pub async fn evaluate(ctx: &Context<'_>, now: DateTime<Utc>) -> Result<AlertWrite, StoreError> {
    let store = &ctx.sources.alerts;
    let rules: BTreeMap<String, AlertRule> = store
        .rules(&Scope::All)
        .await?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let states: HashMap<(String, String), RuleState> = store
        .rule_states()
        .await?
        .into_iter()
        .map(|s| ((s.rule_id.clone(), s.tenant_id.clone()), s))
        .collect();
    let silences = store.silences(&Scope::All, Some(now)).await?;
    let mut run = Run {
        ctx,
        now,
        rules: &rules,
        silences: &silences,
        write: AlertWrite::default(),
        incidents: store
            .open_incidents()
            .await?
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect(),
        changed: BTreeSet::new(),
        alerts: HashMap::new(),
        states: &states,
        latest: HashMap::new(),
    };
    let mut measured: BTreeSet<(String, String)> = BTreeSet::new();
    for rule in rules.values().filter(|r| r.enabled) {
        let tenants: Vec<String> = states
            .keys()
            .filter(|(r, _)| *r == rule.id)
            .map(|(_, t)| t.clone())
            .collect();
        for (tenant, value) in measure(ctx.sources, rule, &tenants, now).await? {
            measured.insert((rule.id.clone(), tenant.clone()));
            let state = states.get(&(rule.id.clone(), tenant.clone()));
            if let (Some(s), Some(v)) = (state, value) {
                run.latest.insert(s.alert_id.clone(), v);
            }
            let step = step(rule, state, value, now);
            run.apply(rule, &tenant, state, value, step).await?;
        }
    }
    // The alerts no rule measured this round end: pending ones are
    // forgotten, firing ones resolve. Their rule was disabled or deleted,
    // or changed so that it no longer covers their tenant.
    for (key, state) in &states {
        if measured.contains(key) {
            continue;
        }
        let rule_id = &key.0;
        let tenant = &key.1;
        let step = match state.state {
            AlertState::Firing => Step::Resolve,
            _ => Step::Forget,
        };
        match rules.get(rule_id) {
            Some(rule) => run.apply(rule, tenant, Some(state), None, step).await?,
            None => run.orphan(state).await?,
        }
    }
    run.settle_incidents().await?;
    Ok(run.write)
}

pub(super) struct Run<'a> {
    pub(super) ctx: &'a Context<'a>,
    pub(super) now: DateTime<Utc>,
    pub(super) rules: &'a BTreeMap<String, AlertRule>,
    pub(super) silences: &'a [Silence],
    pub(super) write: AlertWrite,
    /// Open incidents by id, as this evaluation leaves them.
    pub(super) incidents: BTreeMap<String, Incident>,
    /// Incidents this evaluation changed (to write).
    pub(super) changed: BTreeSet<String>,
    /// Alerts read or written in this evaluation, by id.
    pub(super) alerts: HashMap<String, Alert>,
    /// The stored states this evaluation started from.
    pub(super) states: &'a HashMap<(String, String), RuleState>,
    /// The value measured this round for each pending or firing alert.
    pub(super) latest: HashMap<String, f64>,
}

impl Run<'_> {
    pub(super) async fn alert(&mut self, id: &str) -> Result<Option<Alert>, StoreError> {
        if let Some(alert) = self.alerts.get(id) {
            return Ok(Some(alert.clone()));
        }
        let store = &self.ctx.sources.alerts;
        match store.alert(id, &Scope::All).await {
            Ok(alert) => {
                self.alerts.insert(id.to_string(), alert.clone());
                Ok(Some(alert))
            }
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) fn put_alert(&mut self, alert: Alert) {
        self.write.alerts.retain(|a| a.id != alert.id);
        self.write.alerts.push(alert.clone());
        self.alerts.insert(alert.id.clone(), alert);
    }

    async fn apply(
        &mut self,
        rule: &AlertRule,
        tenant: &str,
        state: Option<&RuleState>,
        value: Option<f64>,
        step: Step,
    ) -> Result<(), StoreError> {
        let now = self.now;
        let key = (rule.id.clone(), tenant.to_string());
        match step {
            Step::Stay => {}
            Step::Pend => {
                let alert = self.new_alert(rule, tenant, value.unwrap_or_default());
                self.write.states.push(RuleState {
                    rule_id: key.0,
                    tenant_id: key.1,
                    state: AlertState::Pending,
                    alert_id: alert.id.clone(),
                    since: Some(now),
                });
                self.put_alert(alert);
            }
            Step::Forget => {
                self.write.cleared.push(key);
                if let Some(state) = state {
                    self.write.dropped.push(state.alert_id.clone());
                }
            }
            Step::Fire => {
                let existing = match state {
                    Some(s) => self.alert(&s.alert_id).await?,
                    None => None,
                };
                let mut alert = existing
                    .unwrap_or_else(|| self.new_alert(rule, tenant, value.unwrap_or_default()));
                alert.state = AlertState::Firing;
                alert.fired_at = Some(stamp(now));
                alert.current_value = value.unwrap_or(alert.current_value);
                alert.silenced = self.silences.iter().any(|s| s.covers(&rule.id, tenant));
                alert.incident_id = Some(self.join_incident(&alert));
                self.write.states.push(RuleState {
                    rule_id: key.0,
                    tenant_id: key.1,
                    state: AlertState::Firing,
                    alert_id: alert.id.clone(),
                    since: None,
                });
                self.publish(&alert);
                self.put_alert(alert);
            }
            Step::Clearing(since) => {
                if let Some(state) = state {
                    self.write.states.push(RuleState {
                        since,
                        ..state.clone()
                    });
                }
            }
            Step::Resolve => {
                self.write.cleared.push(key);
                if let Some(state) = state {
                    self.resolve(&state.alert_id, value).await?;
                }
            }
        }
        Ok(())
    }

    /// Whether a state (stored and not cleared this round, or written this
    /// round) holds `alert`.
    pub(super) fn held(&self, alert: &Alert) -> bool {
        let key = (alert.rule_id.clone(), alert.tenant_id.clone());
        let written = self.write.states.iter().any(|s| s.alert_id == alert.id);
        let stored = self
            .states
            .get(&key)
            .is_some_and(|s| s.alert_id == alert.id)
            && !self.write.cleared.contains(&key);
        written || stored
    }

    /// A state whose rule is gone: its alert ends.
    async fn orphan(&mut self, state: &RuleState) -> Result<(), StoreError> {
        self.write
            .cleared
            .push((state.rule_id.clone(), state.tenant_id.clone()));
        match state.state {
            AlertState::Firing => self.resolve(&state.alert_id, None).await,
            _ => {
                self.write.dropped.push(state.alert_id.clone());
                Ok(())
            }
        }
    }

    pub(super) async fn resolve(
        &mut self,
        alert_id: &str,
        value: Option<f64>,
    ) -> Result<(), StoreError> {
        let Some(mut alert) = self.alert(alert_id).await? else {
            return Ok(());
        };
        if alert.state != AlertState::Firing {
            return Ok(());
        }
        alert.state = AlertState::Resolved;
        alert.resolved_at = Some(stamp(self.now));
        if let Some(v) = value {
            alert.current_value = v;
        }
        self.publish(&alert);
        self.put_alert(alert);
        Ok(())
    }

    fn new_alert(&self, rule: &AlertRule, tenant: &str, value: f64) -> Alert {
        Alert {
            id: new_id("alt", self.now),
            rule_id: rule.id.clone(),
            rule_name: rule.name.clone(),
            condition: rule.condition,
            metric: rule.metric.clone(),
            comparator: rule.comparator,
            threshold: rule.threshold,
            severity: rule.severity,
            tenant_id: tenant.to_string(),
            state: AlertState::Pending,
            current_value: value,
            pending_since: stamp(self.now),
            fired_at: None,
            resolved_at: None,
            incident_id: None,
            acknowledged_at: None,
            acknowledged_by: None,
            silenced: false,
        }
    }

    /// The `SystemAlert` event of a transition, as a job in the same
    /// commit: stored once through intake (its key makes a repeated run
    /// a no-op), to the tenant's `alerts` room.
    fn publish(&mut self, alert: &Alert) {
        let incident = alert
            .incident_id
            .as_ref()
            .and_then(|id| self.incidents.get(id));
        let payload = json!({
            "tenant_id": alert.tenant_id,
            "timestamp": stamp(self.now),
            "idempotency_key": format!("{}:{}", alert.id, alert.state.name()),
            "data": {
                "alert_id": alert.id,
                "rule_id": alert.rule_id,
                "rule_name": alert.rule_name,
                "condition": alert.condition,
                "metric": alert.metric,
                "comparator": alert.comparator,
                "threshold": alert.threshold,
                "current_value": alert.current_value,
                "severity": alert.severity,
                "state": alert.state,
                "incident_id": alert.incident_id,
                "correlation_id": incident.map(|i| i.correlation_id.clone()),
                "silenced": alert.silenced,
            },
        });
        let job = self.job(
            EVENT_KIND,
            payload,
            EVENT_ATTEMPTS,
            incident,
            &alert.tenant_id,
        );
        self.write.jobs.push(job);
    }

    pub(super) fn job(
        &self,
        kind: &str,
        payload: serde_json::Value,
        max_attempts: u32,
        incident: Option<&Incident>,
        tenant: &str,
    ) -> NewJob {
        NewJob {
            queue: DEFAULT_QUEUE.into(),
            kind: kind.into(),
            payload,
            // Ahead of webhooks and deliveries: an alert is what an
            // operator watches while the queue is backed up.
            priority: 10,
            run_at: self.now,
            max_attempts,
            correlation_id: incident.map(|i| i.correlation_id.clone()),
            tenant_id: (tenant != self.ctx.settings.system_tenant).then(|| tenant.to_string()),
        }
    }
}
