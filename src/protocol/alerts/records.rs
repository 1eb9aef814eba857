//! What alerting records: alerts from pending to resolved, the incidents
//! that group them, and silences.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Comparator, Condition, Severity};

/// A rule's state for one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition holds, not yet for the rule's `for`.
    Pending,
    Firing,
    Resolved,
}

impl AlertState {
    pub fn name(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// One alert: a rule firing for a tenant, from firing until resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub rule_id: String,
    pub rule_name: String,
    pub condition: Condition,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    pub comparator: Comparator,
    pub threshold: f64,
    pub severity: Severity,
    /// The tenant, or the `[alerts] system_tenant` for the machine's.
    pub tenant_id: String,
    pub state: AlertState,
    /// The value when it began to hold, when it fired, then when it
    /// resolved.
    pub current_value: f64,
    /// When the condition began to hold.
    pub pending_since: String,
    /// None while pending (an alert cleared before it fired is deleted,
    /// so history holds only alerts that fired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// Set when it fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    /// Matched a silence when it fired: recorded, not notified.
    #[serde(default)]
    pub silenced: bool,
}

/// Alerts of one tenant that fired within `[alerts] group_window` of
/// each other: notified together, acknowledged together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    /// Carried by every notification and `SystemAlert` of the incident.
    pub correlation_id: String,
    pub tenant_id: String,
    /// Firing while any of its alerts fires.
    pub state: AlertState,
    pub opened_at: String,
    /// The latest time one of its alerts fired: the group window runs
    /// from here.
    pub last_fired_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    /// When the latest notification was queued (the repeat interval runs
    /// from here); none while every alert of it is silenced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_notified_at: Option<String>,
    /// Notifications queued so far (first, repeats, resolved).
    pub notifications: u32,
    pub alert_ids: Vec<String>,
}

/// No notifications for a rule, a tenant, or a rule of a tenant, until
/// `ends_at`. Alerts still fire and are recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_by: String,
}

impl Silence {
    /// Whether it covers `rule_id` of `tenant_id`.
    pub fn covers(&self, rule_id: &str, tenant_id: &str) -> bool {
        self.rule_id.as_deref().is_none_or(|r| r == rule_id)
            && self.tenant_id.as_deref().is_none_or(|t| t == tenant_id)
    }
}

/// The body of `POST /api/v1/alerts/silences`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    #[serde(default)]
    pub rule_id: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// How long from now (`1h`).
    #[serde(rename = "for", with = "crate::config::duration")]
    pub for_: Duration,
    #[serde(default)]
    pub reason: Option<String>,
}
