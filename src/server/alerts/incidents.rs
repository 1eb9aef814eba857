//! Incidents: which open incident a fired alert joins, when an incident
//! resolves, and when it is notified (once when it opens, every repeat
//! interval until acknowledged, once when it resolves).

use std::collections::{BTreeMap, BTreeSet};

use super::evaluate::{new_id, parse_time, stamp, Run};
use super::notification::{Notification, Reason, Window, NOTIFY_KIND};
use crate::protocol::alerts::{Alert, AlertState, Channel, Incident};
use crate::server::storage::StoreError;

impl Run<'_> {
    /// The open incident of the alert's tenant whose latest alert fired
    /// within the group window, or a new one; the alert joins it.
    pub(super) fn join_incident(&mut self, alert: &Alert) -> String {
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

    /// Resolves incidents whose alerts all ended and decides every
    /// incident's notification: once when it opens, again every repeat
    /// interval while it fires unacknowledged, once when it resolves.
    /// Silenced alerts are left out; an incident of silenced alerts only
    /// is not notified.
    pub(super) async fn settle_incidents(&mut self) -> Result<(), StoreError> {
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
