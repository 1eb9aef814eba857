//! `pytake alerts list|incidents|rules|silences --output csv`: a row per
//! item, its fields as the API names them and in its order, each value
//! as the API writes it (times as sent, numbers as JSON writes them,
//! durations as `5m`), so a script can join CSV and JSON. Lists (an
//! incident's alerts, a rule's channels) are space-separated in one cell;
//! empty cells are values the item does not have.

use crate::config::duration;
use crate::protocol::alerts::{Alert, AlertRule, Incident, Silence};

/// Writes `header`, then `rows`.
fn write(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header).expect("write to memory");
    for row in rows {
        w.write_record(row).expect("write to memory");
    }
    w.into_inner().expect("flush to memory")
}

/// A number as the API's JSON writes it (`5.0`, `12.5`).
fn number(v: f64) -> String {
    serde_json::Value::from(v).to_string()
}

fn text(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

/// One row per alert, newest first.
pub fn alerts(list: &[Alert]) -> Vec<u8> {
    write(
        &[
            "id",
            "rule_id",
            "rule_name",
            "condition",
            "metric",
            "comparator",
            "threshold",
            "severity",
            "tenant_id",
            "state",
            "current_value",
            "pending_since",
            "fired_at",
            "resolved_at",
            "incident_id",
            "acknowledged_at",
            "acknowledged_by",
            "silenced",
        ],
        list.iter().map(|a| {
            vec![
                a.id.clone(),
                a.rule_id.clone(),
                a.rule_name.clone(),
                a.condition.to_string(),
                text(&a.metric),
                a.comparator.symbol().to_string(),
                number(a.threshold),
                a.severity.name().to_string(),
                a.tenant_id.clone(),
                a.state.name().to_string(),
                number(a.current_value),
                a.pending_since.clone(),
                text(&a.fired_at),
                text(&a.resolved_at),
                text(&a.incident_id),
                text(&a.acknowledged_at),
                text(&a.acknowledged_by),
                a.silenced.to_string(),
            ]
        }),
    )
}

/// One row per incident, newest first.
pub fn incidents(list: &[Incident]) -> Vec<u8> {
    write(
        &[
            "id",
            "correlation_id",
            "tenant_id",
            "state",
            "opened_at",
            "last_fired_at",
            "resolved_at",
            "acknowledged_at",
            "acknowledged_by",
            "last_notified_at",
            "notifications",
            "alert_ids",
        ],
        list.iter().map(|i| {
            vec![
                i.id.clone(),
                i.correlation_id.clone(),
                i.tenant_id.clone(),
                i.state.name().to_string(),
                i.opened_at.clone(),
                i.last_fired_at.clone(),
                text(&i.resolved_at),
                text(&i.acknowledged_at),
                text(&i.acknowledged_by),
                text(&i.last_notified_at),
                i.notifications.to_string(),
                i.alert_ids.join(" "),
            ]
        }),
    )
}

/// One row per rule, by id.
pub fn rules(list: &[AlertRule]) -> Vec<u8> {
    write(
        &[
            "id",
            "name",
            "condition",
            "metric",
            "comparator",
            "threshold",
            "window",
            "for",
            "severity",
            "enabled",
            "tenant_id",
            "channels",
        ],
        list.iter().map(|r| {
            vec![
                r.id.clone(),
                r.name.clone(),
                r.condition.to_string(),
                text(&r.metric),
                r.comparator.symbol().to_string(),
                number(r.threshold),
                duration::format(r.window),
                duration::format(r.for_),
                r.severity.name().to_string(),
                r.enabled.to_string(),
                text(&r.tenant_id),
                r.channels
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        }),
    )
}

/// One row per silence, by end.
pub fn silences(list: &[Silence]) -> Vec<u8> {
    write(
        &[
            "id",
            "rule_id",
            "tenant_id",
            "starts_at",
            "ends_at",
            "reason",
            "created_by",
        ],
        list.iter().map(|s| {
            vec![
                s.id.clone(),
                text(&s.rule_id),
                text(&s.tenant_id),
                s.starts_at.clone(),
                s.ends_at.clone(),
                text(&s.reason),
                s.created_by.clone(),
            ]
        }),
    )
}
