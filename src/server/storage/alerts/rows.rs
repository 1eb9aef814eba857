//! The alerting rows as every backend reads them, and the protocol types
//! made from them. Times are Unix milliseconds in both schemas (see
//! [`super::columns`]) and come back in the API's RFC 3339 form,
//! `2026-03-01T12:00:00.000Z`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::RuleState;
use crate::protocol::alerts::{
    Alert, AlertRule, AlertState, Comparator, Condition, Incident, Severity, Silence,
};
use crate::server::storage::StoreError;

/// The columns [`RuleRow`] reads.
pub const RULE_COLUMNS: &str = "id, rule";
/// The columns [`StateRow`] reads.
pub const STATE_COLUMNS: &str = "rule_id, tenant_id, state, alert_id, since";
/// The columns [`AlertRow`] reads.
pub const ALERT_COLUMNS: &str = "id, rule_id, tenant_id, state, pending_since, fired_at, \
     resolved_at, incident_id, acknowledged_at, acknowledged_by, body";
/// The columns [`IncidentRow`] reads.
pub const INCIDENT_COLUMNS: &str =
    "id, tenant_id, state, opened_at, resolved_at, acknowledged_at, acknowledged_by, body";
/// The columns [`SilenceRow`] reads.
pub const SILENCE_COLUMNS: &str = "id, rule_id, tenant_id, starts_at, ends_at, reason, created_by";

/// Milliseconds as the API's time text.
pub(super) fn time_text(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn state_of(text: &str) -> Option<AlertState> {
    [
        AlertState::Pending,
        AlertState::Firing,
        AlertState::Resolved,
    ]
    .into_iter()
    .find(|s| s.name() == text)
}

/// Reads one stored row's fields, naming the row in every error.
struct Reader<'a> {
    what: &'static str,
    id: &'a str,
}

impl Reader<'_> {
    fn corrupt(&self, message: String) -> StoreError {
        StoreError::CorruptRow {
            what: self.what,
            id: self.id.to_string(),
            message,
        }
    }

    fn time(&self, ms: i64) -> Result<String, StoreError> {
        time_text(ms).ok_or_else(|| self.corrupt(format!("time {ms} is out of range")))
    }

    fn opt_time(&self, ms: Option<i64>) -> Result<Option<String>, StoreError> {
        ms.map(|ms| self.time(ms)).transpose()
    }

    fn state(&self, text: &str) -> Result<AlertState, StoreError> {
        state_of(text).ok_or_else(|| self.corrupt(format!("unknown state `{text}`")))
    }

    fn json<T: for<'de> Deserialize<'de>>(&self, text: &str) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|e| self.corrupt(format!("not the stored JSON: {e}")))
    }
}

/// An `alert_rules` row as both backends return it.
#[derive(Debug, sqlx::FromRow)]
pub struct RuleRow {
    pub id: String,
    pub rule: String,
}

impl RuleRow {
    pub fn into_rule(self) -> Result<AlertRule, StoreError> {
        Reader {
            what: "alert rule",
            id: &self.id,
        }
        .json(&self.rule)
    }
}

/// An `alert_states` row as both backends return it.
#[derive(Debug, sqlx::FromRow)]
pub struct StateRow {
    pub rule_id: String,
    pub tenant_id: String,
    pub state: String,
    pub alert_id: String,
    pub since: Option<i64>,
}

impl StateRow {
    pub fn into_state(self) -> Result<RuleState, StoreError> {
        let id = format!("{}/{}", self.rule_id, self.tenant_id);
        let r = Reader {
            what: "alert state",
            id: &id,
        };
        let since = self
            .since
            .map(|ms| {
                DateTime::<Utc>::from_timestamp_millis(ms)
                    .ok_or_else(|| r.corrupt(format!("time {ms} is out of range")))
            })
            .transpose()?;
        Ok(RuleState {
            state: r.state(&self.state)?,
            since,
            rule_id: self.rule_id,
            tenant_id: self.tenant_id,
            alert_id: self.alert_id,
        })
    }
}

/// What an alert keeps besides its columns (`body`).
#[derive(Serialize, Deserialize)]
pub(super) struct AlertBody {
    pub rule_name: String,
    pub condition: Condition,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    pub comparator: Comparator,
    pub threshold: f64,
    pub severity: Severity,
    pub current_value: f64,
    pub silenced: bool,
}

/// An `alerts` row as both backends return it.
#[derive(Debug, sqlx::FromRow)]
pub struct AlertRow {
    pub id: String,
    pub rule_id: String,
    pub tenant_id: String,
    pub state: String,
    pub pending_since: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub incident_id: Option<String>,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub body: String,
}

impl AlertRow {
    pub fn into_alert(self) -> Result<Alert, StoreError> {
        let r = Reader {
            what: "alert",
            id: &self.id,
        };
        let body: AlertBody = r.json(&self.body)?;
        Ok(Alert {
            state: r.state(&self.state)?,
            pending_since: r.time(self.pending_since)?,
            fired_at: r.opt_time(self.fired_at)?,
            resolved_at: r.opt_time(self.resolved_at)?,
            acknowledged_at: r.opt_time(self.acknowledged_at)?,
            id: self.id,
            rule_id: self.rule_id,
            rule_name: body.rule_name,
            condition: body.condition,
            metric: body.metric,
            comparator: body.comparator,
            threshold: body.threshold,
            severity: body.severity,
            tenant_id: self.tenant_id,
            current_value: body.current_value,
            incident_id: self.incident_id,
            acknowledged_by: self.acknowledged_by,
            silenced: body.silenced,
        })
    }
}

/// What an incident keeps besides its columns; its times in milliseconds
/// like the columns', so they come back in one form.
#[derive(Serialize, Deserialize)]
pub(super) struct IncidentBody {
    pub correlation_id: String,
    pub last_fired_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_notified_at: Option<i64>,
    pub notifications: u32,
    pub alert_ids: Vec<String>,
}

/// An `incidents` row as both backends return it.
#[derive(Debug, sqlx::FromRow)]
pub struct IncidentRow {
    pub id: String,
    pub tenant_id: String,
    pub state: String,
    pub opened_at: i64,
    pub resolved_at: Option<i64>,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub body: String,
}

impl IncidentRow {
    pub fn into_incident(self) -> Result<Incident, StoreError> {
        let r = Reader {
            what: "incident",
            id: &self.id,
        };
        let body: IncidentBody = r.json(&self.body)?;
        Ok(Incident {
            state: r.state(&self.state)?,
            opened_at: r.time(self.opened_at)?,
            last_fired_at: r.time(body.last_fired_at)?,
            resolved_at: r.opt_time(self.resolved_at)?,
            acknowledged_at: r.opt_time(self.acknowledged_at)?,
            last_notified_at: r.opt_time(body.last_notified_at)?,
            id: self.id,
            correlation_id: body.correlation_id,
            tenant_id: self.tenant_id,
            acknowledged_by: self.acknowledged_by,
            notifications: body.notifications,
            alert_ids: body.alert_ids,
        })
    }
}

/// A `silences` row as both backends return it.
#[derive(Debug, sqlx::FromRow)]
pub struct SilenceRow {
    pub id: String,
    pub rule_id: Option<String>,
    pub tenant_id: Option<String>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub reason: Option<String>,
    pub created_by: String,
}

impl SilenceRow {
    pub fn into_silence(self) -> Result<Silence, StoreError> {
        let r = Reader {
            what: "silence",
            id: &self.id,
        };
        Ok(Silence {
            starts_at: r.time(self.starts_at)?,
            ends_at: r.time(self.ends_at)?,
            id: self.id,
            rule_id: self.rule_id,
            tenant_id: self.tenant_id,
            reason: self.reason,
            created_by: self.created_by,
        })
    }
}

/// A rule, alert, incident or silence that is not stored, or not one the
/// caller may see: the same answer for both, so ids of other tenants
/// reveal nothing.
pub fn not_found(what: &'static str, id: &str) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_string(),
    }
}

/// The answer to acknowledging an alert that has not fired.
pub fn pending_conflict(id: &str) -> StoreError {
    StoreError::Conflict(format!(
        "alert `{id}` is pending: it has no incident to acknowledge until it fires"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_by_name_only() {
        assert_eq!(state_of("firing"), Some(AlertState::Firing));
        assert_eq!(state_of("Firing"), None);
    }

    #[test]
    fn a_time_out_of_range_names_the_row() {
        let r = Reader {
            what: "incident",
            id: "i1",
        };
        assert_eq!(r.time(0).unwrap(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            r.time(i64::MAX).unwrap_err().to_string(),
            format!(
                "stored incident `i1` is corrupt: time {} is out of range",
                i64::MAX
            )
        );
    }
}
