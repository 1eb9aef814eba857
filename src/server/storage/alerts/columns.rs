//! The alerting rows as every backend writes them: each value checked and
//! converted before a statement runs, so a write that cannot be stored
//! faithfully is refused whole ([`StoreError::Unstorable`]). Times become
//! Unix milliseconds, as in the queue's schema, so both backends compare
//! and round them alike.

use std::collections::HashSet;

use chrono::DateTime;
use serde::Serialize;

use super::rows::{AlertBody, IncidentBody};
use super::{AlertWrite, RuleState};
use crate::protocol::alerts::{Alert, AlertRule, Incident, Silence};
use crate::server::storage::jobs::NewJob;
use crate::server::storage::StoreError;

/// The SQL that sets an upserted row's acknowledgement (the stored table
/// is `table`, the new row `excluded`): a stored one is kept, time and
/// author together, since the API may acknowledge between the
/// evaluator's read and its commit.
pub fn keep_acknowledgement(table: &str) -> String {
    format!(
        "acknowledged_at = COALESCE({table}.acknowledged_at, excluded.acknowledged_at), \
         acknowledged_by = CASE WHEN {table}.acknowledged_at IS NULL \
           THEN excluded.acknowledged_by ELSE {table}.acknowledged_by END"
    )
}

/// Checks one row's fields before it is written, naming the row in every
/// error.
struct Writer<'a> {
    what: &'static str,
    id: &'a str,
}

impl Writer<'_> {
    fn refuse(&self, message: String) -> StoreError {
        StoreError::Unstorable {
            what: self.what,
            id: self.id.to_string(),
            message,
        }
    }

    fn time(&self, field: &str, text: &str) -> Result<i64, StoreError> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.timestamp_millis())
            .map_err(|e| self.refuse(format!("{field} `{text}` is not an RFC 3339 time: {e}")))
    }

    fn opt_time(&self, field: &str, text: Option<&str>) -> Result<Option<i64>, StoreError> {
        text.map(|t| self.time(field, t)).transpose()
    }

    /// JSON writes a number that is not finite as `null`, which would not
    /// read back.
    fn finite(&self, field: &str, value: f64) -> Result<(), StoreError> {
        if value.is_finite() {
            Ok(())
        } else {
            Err(self.refuse(format!("{field} {value} is not a finite number")))
        }
    }

    fn json<T: Serialize>(&self, value: &T) -> Result<String, StoreError> {
        serde_json::to_string(value).map_err(|e| self.refuse(e.to_string()))
    }
}

/// A rule as written.
pub struct RuleColumns<'a> {
    pub id: &'a str,
    pub tenant_id: Option<&'a str>,
    pub rule: String,
}

impl RuleColumns<'_> {
    pub fn of(rule: &AlertRule) -> Result<RuleColumns<'_>, StoreError> {
        let w = Writer {
            what: "alert rule",
            id: &rule.id,
        };
        w.finite("threshold", rule.threshold)?;
        Ok(RuleColumns {
            id: &rule.id,
            tenant_id: rule.tenant_id.as_deref(),
            rule: w.json(rule)?,
        })
    }
}

/// A rule state as written.
pub struct StateColumns<'a> {
    pub rule_id: &'a str,
    pub tenant_id: &'a str,
    pub state: &'static str,
    pub alert_id: &'a str,
    pub since: Option<i64>,
}

impl StateColumns<'_> {
    pub fn of(state: &RuleState) -> StateColumns<'_> {
        StateColumns {
            rule_id: &state.rule_id,
            tenant_id: &state.tenant_id,
            state: state.state.name(),
            alert_id: &state.alert_id,
            since: state.since.map(|t| t.timestamp_millis()),
        }
    }
}

/// An alert as written; the acknowledgement only where none is stored
/// ([`keep_acknowledgement`]).
pub struct AlertColumns<'a> {
    pub id: &'a str,
    pub rule_id: &'a str,
    pub tenant_id: &'a str,
    pub state: &'static str,
    pub pending_since: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub incident_id: Option<&'a str>,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<&'a str>,
    pub body: String,
}

impl AlertColumns<'_> {
    pub fn of(alert: &Alert) -> Result<AlertColumns<'_>, StoreError> {
        let w = Writer {
            what: "alert",
            id: &alert.id,
        };
        w.finite("threshold", alert.threshold)?;
        w.finite("current_value", alert.current_value)?;
        Ok(AlertColumns {
            id: &alert.id,
            rule_id: &alert.rule_id,
            tenant_id: &alert.tenant_id,
            state: alert.state.name(),
            pending_since: w.time("pending_since", &alert.pending_since)?,
            fired_at: w.opt_time("fired_at", alert.fired_at.as_deref())?,
            resolved_at: w.opt_time("resolved_at", alert.resolved_at.as_deref())?,
            incident_id: alert.incident_id.as_deref(),
            acknowledged_at: w.opt_time("acknowledged_at", alert.acknowledged_at.as_deref())?,
            acknowledged_by: alert.acknowledged_by.as_deref(),
            body: w.json(&AlertBody {
                rule_name: alert.rule_name.clone(),
                condition: alert.condition,
                metric: alert.metric.clone(),
                comparator: alert.comparator,
                threshold: alert.threshold,
                severity: alert.severity,
                current_value: alert.current_value,
                silenced: alert.silenced,
            })?,
        })
    }
}

/// An incident as written.
pub struct IncidentColumns<'a> {
    pub id: &'a str,
    pub tenant_id: &'a str,
    pub state: &'static str,
    pub opened_at: i64,
    pub resolved_at: Option<i64>,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<&'a str>,
    pub body: String,
}

impl IncidentColumns<'_> {
    pub fn of(incident: &Incident) -> Result<IncidentColumns<'_>, StoreError> {
        let w = Writer {
            what: "incident",
            id: &incident.id,
        };
        Ok(IncidentColumns {
            id: &incident.id,
            tenant_id: &incident.tenant_id,
            state: incident.state.name(),
            opened_at: w.time("opened_at", &incident.opened_at)?,
            resolved_at: w.opt_time("resolved_at", incident.resolved_at.as_deref())?,
            acknowledged_at: w.opt_time("acknowledged_at", incident.acknowledged_at.as_deref())?,
            acknowledged_by: incident.acknowledged_by.as_deref(),
            body: w.json(&IncidentBody {
                correlation_id: incident.correlation_id.clone(),
                last_fired_at: w.time("last_fired_at", &incident.last_fired_at)?,
                last_notified_at: w
                    .opt_time("last_notified_at", incident.last_notified_at.as_deref())?,
                notifications: incident.notifications,
                alert_ids: incident.alert_ids.clone(),
            })?,
        })
    }
}

/// A silence as written.
pub struct SilenceColumns<'a> {
    pub id: &'a str,
    pub rule_id: Option<&'a str>,
    pub tenant_id: Option<&'a str>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub reason: Option<&'a str>,
    pub created_by: &'a str,
}

impl SilenceColumns<'_> {
    pub fn of(silence: &Silence) -> Result<SilenceColumns<'_>, StoreError> {
        let w = Writer {
            what: "silence",
            id: &silence.id,
        };
        Ok(SilenceColumns {
            id: &silence.id,
            rule_id: silence.rule_id.as_deref(),
            tenant_id: silence.tenant_id.as_deref(),
            starts_at: w.time("starts_at", &silence.starts_at)?,
            ends_at: w.time("ends_at", &silence.ends_at)?,
            reason: silence.reason.as_deref(),
            created_by: &silence.created_by,
        })
    }
}

/// A whole [`AlertWrite`] as written, every row checked first. A row
/// given twice (by id, or by rule and tenant) is written once, as given
/// last: "inserted or replaced" in list order, and one upsert statement
/// may not touch a row twice.
pub struct CommitColumns<'a> {
    pub states: Vec<StateColumns<'a>>,
    pub cleared: &'a [(String, String)],
    pub alerts: Vec<AlertColumns<'a>>,
    pub dropped: &'a [String],
    pub incidents: Vec<IncidentColumns<'a>>,
    /// Enqueued in the same transaction.
    pub jobs: &'a [NewJob],
}

impl CommitColumns<'_> {
    pub fn of(write: &AlertWrite) -> Result<CommitColumns<'_>, StoreError> {
        Ok(CommitColumns {
            states: last_of_each(write.states.iter().map(StateColumns::of), |s| {
                (s.rule_id, s.tenant_id)
            }),
            cleared: &write.cleared,
            alerts: last_of_each(
                write
                    .alerts
                    .iter()
                    .map(AlertColumns::of)
                    .collect::<Result<Vec<_>, _>>()?,
                |a| a.id,
            ),
            dropped: &write.dropped,
            incidents: last_of_each(
                write
                    .incidents
                    .iter()
                    .map(IncidentColumns::of)
                    .collect::<Result<Vec<_>, _>>()?,
                |i| i.id,
            ),
            jobs: &write.jobs,
        })
    }
}

/// `rows` without those a later row of the same key replaces, in order.
fn last_of_each<T, K: Eq + std::hash::Hash>(
    rows: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> K,
) -> Vec<T> {
    let rows: Vec<T> = rows.into_iter().collect();
    let mut seen = HashSet::new();
    let mut kept: Vec<T> = Vec::with_capacity(rows.len());
    for row in rows.into_iter().rev() {
        if seen.insert(key(&row)) {
            kept.push(row);
        }
    }
    kept.reverse();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::alerts::AlertState;

    #[test]
    fn times_are_kept_in_milliseconds_whatever_form_they_were_given_in() {
        let w = Writer {
            what: "alert",
            id: "a1",
        };
        let ms = w
            .time("fired_at", "2026-03-01T13:00:00.123456+01:00")
            .unwrap();
        assert_eq!(
            super::super::rows::time_text(ms).as_deref(),
            Some("2026-03-01T12:00:00.123Z")
        );
        let e = w.time("fired_at", "yesterday").unwrap_err().to_string();
        assert!(
            e.starts_with("cannot store alert `a1`: fired_at `yesterday` is not an RFC 3339 time"),
            "{e}"
        );
        assert_eq!(
            w.finite("current_value", f64::NAN).unwrap_err().to_string(),
            "cannot store alert `a1`: current_value NaN is not a finite number"
        );
    }

    #[test]
    fn a_row_given_twice_is_written_once_as_given_last() {
        let state = |rule: &str, alert: &str| RuleState {
            rule_id: rule.into(),
            tenant_id: "acme".into(),
            state: AlertState::Pending,
            alert_id: alert.into(),
            since: None,
        };
        let write = AlertWrite {
            states: vec![state("r1", "a1"), state("r2", "a2"), state("r1", "a3")],
            ..AlertWrite::default()
        };
        let c = CommitColumns::of(&write).unwrap();
        let kept: Vec<(&str, &str)> = c.states.iter().map(|s| (s.rule_id, s.alert_id)).collect();
        assert_eq!(kept, [("r2", "a2"), ("r1", "a3")]);
    }
}
