//! Exact output of the tables, lines and CSV, from fixed bodies: the
//! bodies here, the tables and lines in `tables`, CSV in `csv_rows`.

mod csv_rows;
mod tables;

use chrono::{DateTime, Utc};

use super::fetch::{AlertListing, AlertsPage, IncidentListing};
use crate::protocol::alerts::{
    Alert, AlertRule, AlertState, Channel, Comparator, Condition, Incident, Severity, Silence,
};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// The time every age is counted from.
fn now() -> DateTime<Utc> {
    t("2026-12-03T10:40:00Z")
}

/// acme's failure rate, firing for three minutes, acknowledged.
fn firing() -> Alert {
    Alert {
        id: "alt_20261203103600a1b2c3d4".into(),
        rule_id: "high_failure_rate".into(),
        rule_name: "High message failure rate".into(),
        condition: Condition::MessageFailureRate,
        metric: None,
        comparator: Comparator::Above,
        threshold: 5.0,
        severity: Severity::Warning,
        tenant_id: "acme".into(),
        state: AlertState::Firing,
        current_value: 12.5,
        pending_since: "2026-12-03T10:36:00.000Z".into(),
        fired_at: Some("2026-12-03T10:37:00.000Z".into()),
        resolved_at: None,
        incident_id: Some("inc_20261203103700e5f6a7b8".into()),
        acknowledged_at: Some("2026-12-03T10:38:30.000Z".into()),
        acknowledged_by: Some("alice".into()),
        silenced: false,
    }
}

/// globex's ERP latency, over the threshold for half a minute: not fired.
fn pending() -> Alert {
    Alert {
        id: "alt_20261203103930c9d0e1f2".into(),
        rule_id: "slow_erp".into(),
        rule_name: "Slow ERP".into(),
        condition: Condition::ErpLatency,
        metric: Some("p95".into()),
        comparator: Comparator::AtLeast,
        threshold: 2000.0,
        severity: Severity::Critical,
        tenant_id: "globex".into(),
        state: AlertState::Pending,
        current_value: 2450.25,
        pending_since: "2026-12-03T10:39:30.000Z".into(),
        fired_at: None,
        resolved_at: None,
        incident_id: None,
        acknowledged_at: None,
        acknowledged_by: None,
        silenced: false,
    }
}

/// Last night's queue backlog on the machine, silenced, resolved.
fn resolved() -> Alert {
    Alert {
        id: "alt_20261202220500aabbccdd".into(),
        rule_id: "queue_backlog".into(),
        rule_name: "Queue backlog".into(),
        condition: Condition::QueueDepth,
        metric: None,
        comparator: Comparator::Above,
        threshold: 500.0,
        severity: Severity::Info,
        tenant_id: "system".into(),
        state: AlertState::Resolved,
        current_value: 120.0,
        pending_since: "2026-12-02T22:05:00.000Z".into(),
        fired_at: Some("2026-12-02T22:10:00.000Z".into()),
        resolved_at: Some("2026-12-02T23:05:00.000Z".into()),
        incident_id: Some("inc_20261202221000deadbeef".into()),
        acknowledged_at: None,
        acknowledged_by: None,
        silenced: true,
    }
}

fn page() -> AlertsPage {
    AlertsPage {
        alerts: vec![pending(), firing(), resolved()],
        since: "2026-12-02T10:40:00.000Z".into(),
    }
}

fn listing() -> AlertListing {
    AlertListing {
        state: None,
        tenant: None,
        limit: 100,
    }
}

/// acme's open incident: the failure rate, acknowledged, notified twice.
fn open_incident() -> Incident {
    Incident {
        id: "inc_20261203103700e5f6a7b8".into(),
        correlation_id: "cor_20261203103700c9d0e1f2".into(),
        tenant_id: "acme".into(),
        state: AlertState::Firing,
        opened_at: "2026-12-03T10:37:00.000Z".into(),
        last_fired_at: "2026-12-03T10:39:00.000Z".into(),
        resolved_at: None,
        acknowledged_at: Some("2026-12-03T10:38:30.000Z".into()),
        acknowledged_by: Some("alice".into()),
        last_notified_at: Some("2026-12-03T10:37:00.000Z".into()),
        notifications: 2,
        alert_ids: vec![
            "alt_20261203103600a1b2c3d4".into(),
            "alt_20261203103900ffeeddcc".into(),
        ],
    }
}

/// Last night's silenced backlog: never notified.
fn resolved_incident() -> Incident {
    Incident {
        id: "inc_20261202221000deadbeef".into(),
        correlation_id: "cor_2026120222100012345678".into(),
        tenant_id: "system".into(),
        state: AlertState::Resolved,
        opened_at: "2026-12-02T22:10:00.000Z".into(),
        last_fired_at: "2026-12-02T22:10:00.000Z".into(),
        resolved_at: Some("2026-12-02T23:05:00.000Z".into()),
        acknowledged_at: None,
        acknowledged_by: None,
        last_notified_at: None,
        notifications: 0,
        alert_ids: vec!["alt_20261202220500aabbccdd".into()],
    }
}

fn incident_listing() -> IncidentListing {
    IncidentListing {
        tenant: None,
        since: None,
        limit: 100,
    }
}

/// Seed 000's failure-rate rule, to the dashboards only.
fn failure_rate() -> AlertRule {
    AlertRule {
        id: "high_failure_rate".into(),
        name: "High message failure rate".into(),
        condition: Condition::MessageFailureRate,
        metric: None,
        comparator: Comparator::Above,
        threshold: 5.0,
        window: std::time::Duration::from_secs(300),
        for_: std::time::Duration::from_secs(60),
        severity: Severity::Warning,
        enabled: true,
        tenant_id: None,
        channels: vec![Channel::Websocket],
    }
}

/// Seed 000's CPU rule, disabled, to every channel.
fn cpu() -> AlertRule {
    AlertRule {
        id: "cpu_usage".into(),
        name: "High CPU usage".into(),
        condition: Condition::SystemResourceUsage,
        metric: Some("cpu".into()),
        threshold: 80.0,
        enabled: false,
        channels: vec![
            Channel::Websocket,
            Channel::Slack,
            Channel::Email,
            Channel::Webhook,
        ],
        ..failure_rate()
    }
}

fn rules() -> Vec<AlertRule> {
    vec![failure_rate(), cpu(), slow_erp()]
}

fn slow_erp() -> AlertRule {
    AlertRule {
        id: "slow_erp".into(),
        name: "Slow ERP".into(),
        condition: Condition::ErpLatency,
        metric: Some("p95".into()),
        comparator: Comparator::AtLeast,
        threshold: 2000.0,
        window: std::time::Duration::from_secs(600),
        for_: std::time::Duration::ZERO,
        severity: Severity::Critical,
        enabled: true,
        tenant_id: Some("globex".into()),
        channels: vec![Channel::Websocket, Channel::Slack],
    }
}

/// A silence of acme's failure rate for an hour, and one of every rule of
/// the machine that ended.
fn silences() -> Vec<Silence> {
    vec![
        Silence {
            id: "sil_20261203101500a1b2c3d4".into(),
            rule_id: None,
            tenant_id: Some("system".into()),
            starts_at: "2026-12-03T10:15:00.000Z".into(),
            ends_at: "2026-12-03T10:30:00.000Z".into(),
            reason: None,
            created_by: "admin".into(),
        },
        Silence {
            id: "sil_2026120310390001020304".into(),
            rule_id: Some("high_failure_rate".into()),
            tenant_id: Some("acme".into()),
            starts_at: "2026-12-03T10:39:00.000Z".into(),
            ends_at: "2026-12-03T11:39:00.000Z".into(),
            reason: Some("carrier outage, ticket #4411".into()),
            created_by: "alice".into(),
        },
    ]
}
