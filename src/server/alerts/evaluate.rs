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
use super::notification::{Notification, Reason, Window, NOTIFY_KIND};
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

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A fresh id: a prefix, the time and random bits, sortable by creation.
fn new_id(prefix: &str, now: DateTime<Utc>) -> String {
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

struct Run<'a> {
    ctx: &'a Context<'a>,
    now: DateTime<Utc>,
    rules: &'a BTreeMap<String, AlertRule>,
    silences: &'a [Silence],
    write: AlertWrite,
    /// Open incidents by id, as this evaluation leaves them.
    incidents: BTreeMap<String, Incident>,
    /// Incidents this evaluation changed (to write).
    changed: BTreeSet<String>,
    /// Alerts read or written in this evaluation, by id.
    alerts: HashMap<String, Alert>,
    /// The stored states this evaluation started from.
    states: &'a HashMap<(String, String), RuleState>,
    /// The value measured this round for each pending or firing alert.
    latest: HashMap<String, f64>,
}

impl Run<'_> {
    async fn alert(&mut self, id: &str) -> Result<Option<Alert>, StoreError> {
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

    fn put_alert(&mut self, alert: Alert) {
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
    fn held(&self, alert: &Alert) -> bool {
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

    async fn resolve(&mut self, alert_id: &str, value: Option<f64>) -> Result<(), StoreError> {
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

    /// The open incident of the alert's tenant whose latest alert fired
    /// within the group window, or a new one; the alert joins it.
    fn join_incident(&mut self, alert: &Alert) -> String {
        let window = chrono::Duration::from_std(self.ctx.settings.group_window).unwrap_or_default();
        let now = self.now;
        let joined = self
            .incidents
            .values_mut()
            // An acknowledged incident is not paged again: a new alert
            // there would never be notified.
            .filter(|i| i.tenant_id == alert.tenant_id && i.state == AlertState::Firing)
            .filter(|i| i.acknowledged_at.is_none())
            .filter(|i| parse_time(&i.last_fired_at).is_some_and(|t| now - t <= window))
            .max_by(|a, b| a.last_fired_at.cmp(&b.last_fired_at));
        let id = match joined {
            Some(incident) => {
                incident.alert_ids.push(alert.id.clone());
                incident.last_fired_at = stamp(now);
                incident.id.clone()
            }
            None => {
                let id = new_id("inc", now);
                self.incidents.insert(
                    id.clone(),
                    Incident {
                        id: id.clone(),
                        correlation_id: new_id("cor", now),
                        tenant_id: alert.tenant_id.clone(),
                        state: AlertState::Firing,
                        opened_at: stamp(now),
                        last_fired_at: stamp(now),
                        resolved_at: None,
                        acknowledged_at: None,
                        acknowledged_by: None,
                        last_notified_at: None,
                        notifications: 0,
                        alert_ids: vec![alert.id.clone()],
                    },
                );
                id
            }
        };
        self.changed.insert(id.clone());
        id
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

    fn job(
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

    /// Resolves incidents whose alerts all ended and decides every
    /// incident's notification: once when it opens, again every repeat
    /// interval while it fires unacknowledged, once when it resolves.
    /// Silenced alerts are left out; an incident of silenced alerts only
    /// is not notified.
    async fn settle_incidents(&mut self) -> Result<(), StoreError> {
        let ids: Vec<String> = self.incidents.keys().cloned().collect();
        for id in ids {
            let mut incident = self.incidents[&id].clone();
            let mut alerts = Vec::with_capacity(incident.alert_ids.len());
            for alert_id in &incident.alert_ids {
                let Some(alert) = self.alert(alert_id).await? else {
                    continue;
                };
                // No state holds it (its rule was deleted with its states,
                // perhaps made again under the same id): nothing would
                // ever resolve it otherwise.
                if alert.state == AlertState::Firing && !self.held(&alert) {
                    self.resolve(alert_id, None).await?;
                }
                // Silences are read every round: one set on a firing alert
                // stops its repeats, one that ended lets them go on.
                if let Some(mut alert) = self.alert(alert_id).await? {
                    let silenced = self
                        .silences
                        .iter()
                        .any(|s| s.covers(&alert.rule_id, &alert.tenant_id));
                    if alert.state == AlertState::Firing && alert.silenced != silenced {
                        alert.silenced = silenced;
                        self.put_alert(alert);
                    }
                }
                if let Some(alert) = self.alert(alert_id).await? {
                    alerts.push(alert);
                }
            }
            let firing = alerts.iter().any(|a| a.state == AlertState::Firing);
            let mut reason = None;
            if !firing {
                incident.state = AlertState::Resolved;
                incident.resolved_at = Some(stamp(self.now));
                self.changed.insert(id.clone());
                if incident.notifications > 0 {
                    reason = Some(Reason::Resolved);
                }
            } else if incident.last_notified_at.is_none() {
                reason = Some(Reason::Firing);
            } else if incident.acknowledged_at.is_none() {
                let last = incident.last_notified_at.as_deref().and_then(parse_time);
                let repeat = chrono::Duration::from_std(self.ctx.settings.repeat_interval)
                    .unwrap_or_default();
                if last.is_some_and(|t| self.now - t >= repeat) {
                    reason = Some(Reason::Repeat);
                }
            }
            if let Some(reason) = reason {
                if self.notify(&mut incident, alerts, reason) {
                    self.changed.insert(id.clone());
                }
            }
            self.incidents.insert(id, incident);
        }
        for id in &self.changed {
            self.write.incidents.push(self.incidents[id].clone());
        }
        Ok(())
    }

    /// Queues one notification job per channel of the incident's
    /// unsilenced alerts; whether any was queued.
    fn notify(&mut self, incident: &mut Incident, mut alerts: Vec<Alert>, reason: Reason) -> bool {
        alerts.retain(|a| !a.silenced);
        // A repeat tells what the value is now, not when it fired.
        for alert in alerts.iter_mut().filter(|a| a.state == AlertState::Firing) {
            if let Some(v) = self.latest.get(&alert.id).copied() {
                if v != alert.current_value {
                    alert.current_value = v;
                    self.put_alert(alert.clone());
                }
            }
        }
        let channels: BTreeSet<Channel> = alerts
            .iter()
            .filter_map(|a| self.rules.get(&a.rule_id))
            .flat_map(|r| r.channels.iter().copied())
            .filter(|c| *c != Channel::Websocket && self.ctx.channels.contains(c))
            .collect();
        if alerts.is_empty() {
            return false;
        }
        alerts.sort_by(|a, b| {
            (b.state == AlertState::Firing, b.severity)
                .cmp(&(a.state == AlertState::Firing, a.severity))
        });
        let windows: BTreeMap<String, Window> = alerts
            .iter()
            .filter_map(|a| self.rules.get(&a.rule_id))
            .map(|r| (r.id.clone(), Window(r.window)))
            .collect();
        incident.last_notified_at = Some(stamp(self.now));
        incident.notifications += 1;
        for channel in channels {
            let payload = Notification {
                channel,
                reason,
                incident: incident.clone(),
                alerts: alerts.clone(),
                windows: windows.clone(),
            };
            let payload = serde_json::to_value(&payload).expect("a notification serializes");
            let tenant = incident.tenant_id.clone();
            let job = self.job(
                NOTIFY_KIND,
                payload,
                self.ctx.max_attempts,
                Some(incident),
                &tenant,
            );
            self.write.jobs.push(job);
        }
        true
    }
}
