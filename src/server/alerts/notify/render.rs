//! The words of a notification, shared by the channels so that a Slack
//! message and an email about one incident state the same facts in the
//! same terms: why it is sent, how severe, whose, each alert's value
//! against its threshold, and the correlation id to search logs with.

use crate::config::duration;
use crate::protocol::alerts::{Alert, AlertState, Condition, Severity};
use crate::server::alerts::notification::{Notification, Reason};

/// The reason as a tag: `FIRING`, `STILL FIRING`, `RESOLVED`.
pub fn tag(reason: Reason) -> &'static str {
    match reason {
        Reason::Firing => "FIRING",
        Reason::Repeat => "STILL FIRING",
        Reason::Resolved => "RESOLVED",
    }
}

/// The alert a one-line summary names: the most severe of those still
/// firing (of all of them once resolved), the first of equals, since the
/// payload lists firing alerts first, then by severity.
fn lead(n: &Notification) -> Option<&Alert> {
    let firing = n.alerts.iter().filter(|a| a.state == AlertState::Firing);
    let pool: Vec<&Alert> = match n.reason {
        Reason::Resolved => n.alerts.iter().collect(),
        _ if firing.clone().next().is_some() => firing.collect(),
        _ => n.alerts.iter().collect(),
    };
    let top = pool.iter().map(|a| a.severity).max()?;
    pool.into_iter().find(|a| a.severity == top)
}

/// `[FIRING] critical: High message failure rate (acme)`, with `and N
/// more` when the incident has other alerts: an email's subject, and
/// the text Slack shows in its notification.
pub fn headline(n: &Notification) -> String {
    let Some(lead) = lead(n) else {
        return format!(
            "[{}] incident {} ({})",
            tag(n.reason),
            n.incident.id,
            n.incident.tenant_id
        );
    };
    let more = match n.alerts.len() {
        0 | 1 => String::new(),
        len => format!(" and {} more", len - 1),
    };
    format!(
        "[{}] {}: {}{more} ({})",
        tag(n.reason),
        lead.severity.name(),
        lead.rule_name,
        n.incident.tenant_id
    )
}

/// The highest severity among the alerts.
fn severity(n: &Notification) -> Option<Severity> {
    n.alerts.iter().map(|a| a.severity).max()
}

/// `FIRING: incident inc-1 of tenant acme, 2 alerts, severity critical`.
pub fn intro(n: &Notification) -> String {
    let count = match n.alerts.len() {
        1 => "1 alert".to_string(),
        len => format!("{len} alerts"),
    };
    let severity = severity(n)
        .map(|s| format!(", severity {}", s.name()))
        .unwrap_or_default();
    let unacknowledged = match n.reason {
        Reason::Repeat => ", not acknowledged",
        _ => "",
    };
    format!(
        "{}: incident {} of tenant {}, {count}{severity}{unacknowledged}",
        tag(n.reason),
        n.incident.id,
        n.incident.tenant_id
    )
}

/// One alert's facts, as text each channel lays out its own way.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertFacts {
    pub name: String,
    /// `7.5%`.
    pub value: String,
    /// `> 5%`.
    pub threshold: String,
    /// `MessageFailureRate over 5m`, `SystemResourceUsage cpu`.
    pub condition: String,
    pub severity: &'static str,
    /// `firing since 2026-12-03T16:01:00Z`, `resolved at ...`, with
    /// `, acknowledged by ...` and `, silenced` when they apply.
    pub state: String,
}

pub fn alert_facts(n: &Notification, alert: &Alert) -> AlertFacts {
    let unit = unit(alert.condition);
    let mut condition = alert.condition.name().to_string();
    if let Some(metric) = &alert.metric {
        condition.push(' ');
        condition.push_str(metric);
    }
    if let Some(window) = n.windows.get(&alert.rule_id) {
        if measured_over_window(alert.condition) {
            condition.push_str(" over ");
            condition.push_str(&duration::format(window.0));
        }
    }
    let mut state = match (alert.state, &alert.resolved_at, &alert.fired_at) {
        (AlertState::Resolved, Some(at), _) => format!("resolved at {at}"),
        (AlertState::Firing, _, Some(at)) => format!("firing since {at}"),
        (AlertState::Pending, _, _) => format!("pending since {}", alert.pending_since),
        (other, _, _) => other.name().to_string(),
    };
    if let Some(by) = &alert.acknowledged_by {
        state.push_str(", acknowledged by ");
        state.push_str(by);
    }
    if alert.silenced {
        state.push_str(", silenced");
    }
    AlertFacts {
        name: alert.rule_name.clone(),
        value: format!("{}{unit}", number(alert.current_value)),
        threshold: format!(
            "{} {}{unit}",
            alert.comparator.symbol(),
            number(alert.threshold)
        ),
        condition,
        severity: alert.severity.name(),
        state,
    }
}

/// The incident's facts after its alerts: `(label, value)` pairs.
pub fn incident_facts(n: &Notification) -> Vec<(&'static str, String)> {
    let i = &n.incident;
    let mut facts = vec![
        ("correlation id", i.correlation_id.clone()),
        ("opened", i.opened_at.clone()),
    ];
    if let Some(at) = &i.resolved_at {
        facts.push(("resolved", at.clone()));
    }
    if let (Some(at), Some(by)) = (&i.acknowledged_at, &i.acknowledged_by) {
        facts.push(("acknowledged", format!("{at} by {by}")));
    }
    facts
}

/// Whether a condition's value is measured over the rule's window (the
/// others read a figure as it is now: a window means nothing for them).
fn measured_over_window(condition: Condition) -> bool {
    matches!(
        condition,
        Condition::MessageFailureRate
            | Condition::ErpErrorRate
            | Condition::ErpLatency
            | Condition::AiTokenUsage
            | Condition::Metric
    )
}

/// What a condition's values count.
fn unit(condition: Condition) -> &'static str {
    match condition {
        Condition::MessageFailureRate
        | Condition::ErpErrorRate
        | Condition::SystemResourceUsage => "%",
        Condition::ErpLatency => " ms",
        Condition::AiTokenUsage => " tokens",
        Condition::QueueDepth
        | Condition::DeadLetters
        | Condition::CampaignHealth
        | Condition::WebsocketConnections
        | Condition::Metric => "",
    }
}

/// A value as a person reads it: at most two decimals, none when whole
/// (`7.5`, `5`, `0.33`).
pub fn number(value: f64) -> String {
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    match text {
        "-0" => "0".to_string(),
        text => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::alerts::notify::tests::{alert, notification};

    #[test]
    fn numbers_read_as_people_write_them() {
        let cases = [
            (7.5, "7.5"),
            (5.0, "5"),
            (0.333, "0.33"),
            (12000.0, "12000"),
            (-0.001, "0"),
            (99.999, "100"),
        ];
        for (value, text) in cases {
            assert_eq!(number(value), text, "{value}");
        }
    }

    #[test]
    fn the_headline_names_the_most_severe_firing_alert() {
        let mut n = notification(Reason::Firing);
        assert_eq!(
            headline(&n),
            "[FIRING] critical: High message failure rate (acme)"
        );
        let mut cpu = alert("cpu_usage", "High CPU usage", Severity::Warning);
        cpu.state = AlertState::Resolved;
        cpu.resolved_at = Some("2026-12-03T16:09:00Z".into());
        n.alerts.push(cpu);
        assert_eq!(
            headline(&n),
            "[FIRING] critical: High message failure rate and 1 more (acme)"
        );
        // A resolved critical alert does not lead a warning still firing.
        n.alerts[0].state = AlertState::Resolved;
        n.alerts[1].state = AlertState::Firing;
        assert_eq!(
            headline(&n),
            "[FIRING] warning: High CPU usage and 1 more (acme)"
        );
        n.reason = Reason::Repeat;
        assert!(headline(&n).starts_with("[STILL FIRING] warning: "));
        n.reason = Reason::Resolved;
        assert_eq!(
            headline(&n),
            "[RESOLVED] critical: High message failure rate and 1 more (acme)"
        );
    }

    #[test]
    fn an_alert_states_its_value_against_its_threshold_and_window() {
        let n = notification(Reason::Firing);
        assert_eq!(
            alert_facts(&n, &n.alerts[0]),
            AlertFacts {
                name: "High message failure rate".into(),
                value: "7.5%".into(),
                threshold: "> 5%".into(),
                condition: "MessageFailureRate over 5m".into(),
                severity: "critical",
                state: "firing since 2026-12-03T16:01:00Z".into(),
            }
        );
        // A figure read as it is now has no window, even when given one.
        let mut depth = alert("queue_depth", "Deep queue", Severity::Info);
        depth.condition = Condition::QueueDepth;
        depth.current_value = 1500.0;
        depth.threshold = 1000.0;
        depth.acknowledged_by = Some("ops@acme".into());
        depth.silenced = true;
        let mut n = n;
        n.windows
            .insert("queue_depth".into(), n.windows["high_failure_rate"]);
        let facts = alert_facts(&n, &depth);
        assert_eq!(
            (facts.value.as_str(), facts.threshold.as_str()),
            ("1500", "> 1000")
        );
        assert_eq!(facts.condition, "QueueDepth");
        assert_eq!(
            facts.state,
            "firing since 2026-12-03T16:01:00Z, acknowledged by ops@acme, silenced"
        );
    }

    #[test]
    fn the_intro_counts_and_says_why() {
        let mut n = notification(Reason::Repeat);
        assert_eq!(
            intro(&n),
            "STILL FIRING: incident inc-1 of tenant acme, 1 alert, severity critical, not acknowledged"
        );
        n.reason = Reason::Firing;
        n.alerts
            .push(alert("cpu_usage", "High CPU usage", Severity::Warning));
        assert_eq!(
            intro(&n),
            "FIRING: incident inc-1 of tenant acme, 2 alerts, severity critical"
        );
    }
}
