//! Alert rules, alerts, incidents and silences as the API, the CLI and the
//! store see them (seed 000's alert system, DESIGN's alert API).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::metrics::{Gauge, MetricName};

/// What a rule watches. Seed 000's names; `Metric` is any named figure of
/// the aggregator (`metric` names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Condition {
    /// Failed / (sent + failed) messages over the window, percent.
    MessageFailureRate,
    /// `metric` `cpu` (default) or `memory`: percent, the nodes' mean.
    SystemResourceUsage,
    /// Jobs waiting (pending and retrying) now.
    QueueDepth,
    /// Dead jobs now.
    DeadLetters,
    /// ERP errors / ERP calls over the window, percent.
    ErpErrorRate,
    /// ERP latency over the window, ms: `metric` `p95` (default), `p50`
    /// or `avg`.
    ErpLatency,
    /// AI tokens used over the window.
    AiTokenUsage,
    /// The lowest health score (seed 003, 0-100) among the tenant's
    /// running campaigns; no running campaign: no value.
    CampaignHealth,
    /// Open WebSocket connections now, across nodes.
    WebsocketConnections,
    /// A named figure of the aggregator over the window (`metric`: a
    /// counter, gauge or derived figure, as in `GET
    /// /api/v1/dashboard/metrics`).
    Metric,
}

impl Condition {
    pub const ALL: [Condition; 10] = [
        Condition::MessageFailureRate,
        Condition::SystemResourceUsage,
        Condition::QueueDepth,
        Condition::DeadLetters,
        Condition::ErpErrorRate,
        Condition::ErpLatency,
        Condition::AiTokenUsage,
        Condition::CampaignHealth,
        Condition::WebsocketConnections,
        Condition::Metric,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Condition::MessageFailureRate => "MessageFailureRate",
            Condition::SystemResourceUsage => "SystemResourceUsage",
            Condition::QueueDepth => "QueueDepth",
            Condition::DeadLetters => "DeadLetters",
            Condition::ErpErrorRate => "ErpErrorRate",
            Condition::ErpLatency => "ErpLatency",
            Condition::AiTokenUsage => "AiTokenUsage",
            Condition::CampaignHealth => "CampaignHealth",
            Condition::WebsocketConnections => "WebsocketConnections",
            Condition::Metric => "Metric",
        }
    }

    /// Whether a rule without a tenant is evaluated once, for every
    /// tenant together (the machine, the queue, the connections), rather
    /// than for each tenant on its own.
    pub fn is_system(self, metric: Option<&str>) -> bool {
        match self {
            Condition::SystemResourceUsage
            | Condition::QueueDepth
            | Condition::DeadLetters
            | Condition::WebsocketConnections => true,
            Condition::Metric => metric
                .and_then(Gauge::from_name)
                .is_some_and(|g| !g.per_tenant()),
            _ => false,
        }
    }

    /// The `metric` values this condition accepts (empty: none), the
    /// first being the default.
    pub fn metrics(self) -> &'static [&'static str] {
        match self {
            Condition::SystemResourceUsage => &["cpu", "memory"],
            Condition::ErpLatency => &["p95", "p50", "avg"],
            _ => &[],
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a value is compared with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparator {
    #[serde(rename = ">")]
    Above,
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<")]
    Below,
    #[serde(rename = "<=")]
    AtMost,
}

impl Comparator {
    pub fn symbol(self) -> &'static str {
        match self {
            Comparator::Above => ">",
            Comparator::AtLeast => ">=",
            Comparator::Below => "<",
            Comparator::AtMost => "<=",
        }
    }

    /// Whether `value` breaches `threshold`.
    pub fn breached(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparator::Above => value > threshold,
            Comparator::AtLeast => value >= threshold,
            Comparator::Below => value < threshold,
            Comparator::AtMost => value <= threshold,
        }
    }

    /// Whether `value` is clear of `threshold` by the hysteresis band:
    /// a firing alert resolves only then, so a value hovering at the
    /// threshold does not flap (see [`HYSTERESIS`]).
    pub fn cleared(self, value: f64, threshold: f64) -> bool {
        let band = threshold.abs() * HYSTERESIS;
        match self {
            Comparator::Above => value <= threshold - band,
            Comparator::AtLeast => value < threshold - band,
            Comparator::Below => value >= threshold + band,
            Comparator::AtMost => value > threshold + band,
        }
    }
}

/// How far past the threshold, as a share of it, a firing alert's value
/// must go back before it resolves: `> 5` fires above 5 and resolves at
/// 4.75 or below. A threshold of 0 has no band: `> 0` resolves at 0.
pub const HYSTERESIS: f64 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Where an incident's notifications go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// The `alerts` room (every transition goes there anyway, as a
    /// `SystemAlert` event and an `Alert` message).
    Websocket,
    /// `[slack] webhook_url`.
    Slack,
    /// `[smtp]`.
    Email,
    /// `[alerts] webhook_url`.
    Webhook,
}

impl Channel {
    pub fn name(self) -> &'static str {
        match self {
            Channel::Websocket => "websocket",
            Channel::Slack => "slack",
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_channels() -> Vec<Channel> {
    vec![Channel::Websocket]
}

fn default_comparator() -> Comparator {
    Comparator::Above
}

fn default_severity() -> Severity {
    Severity::Warning
}

fn default_window() -> Duration {
    Duration::from_secs(300)
}

fn default_for() -> Duration {
    Duration::from_secs(60)
}

/// A rule: when `condition` (over `window`) compares with `threshold`
/// for `for`, an alert fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// `[A-Za-z0-9_.-]`, 1 to 64; given or made from the name.
    #[serde(default)]
    pub id: String,
    pub name: String,
    pub condition: Condition,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default = "default_comparator")]
    pub comparator: Comparator,
    pub threshold: f64,
    /// What rates and sums are measured over (whole minutes).
    #[serde(default = "default_window", with = "crate::config::duration")]
    pub window: Duration,
    /// How long the condition must hold before the alert fires (and,
    /// cleared by the hysteresis band, before it resolves): one spike
    /// does not page.
    #[serde(
        rename = "for",
        default = "default_for",
        with = "crate::config::duration"
    )]
    pub for_: Duration,
    #[serde(default = "default_severity")]
    pub severity: Severity,
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Only this tenant; none: every tenant, each on its own (or the
    /// machine, for system conditions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default = "default_channels")]
    pub channels: Vec<Channel>,
}

/// The longest window a rule may measure over: the live figures keep an
/// hour of minutes.
pub const MAX_WINDOW: Duration = Duration::from_secs(3600);

/// A rule that failed its checks: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleError {
    pub field: &'static str,
    pub message: String,
}

impl AlertRule {
    /// Checks what serde cannot: the id, the metric for the condition,
    /// the durations. Fills `id` from the name when empty and `metric`
    /// with the condition's default.
    pub fn check(&mut self) -> Result<(), RuleError> {
        let err = |field, message: String| Err(RuleError { field, message });
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return err("name", "must be 1 to 200 characters".into());
        }
        if self.id.is_empty() {
            self.id = slug(&self.name);
        }
        if self.id.is_empty()
            || self.id.len() > 64
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return err("id", format!("`{}`: 1 to 64 of A-Z a-z 0-9 _ - .", self.id));
        }
        if !self.threshold.is_finite() {
            return err("threshold", "must be a number".into());
        }
        let allowed = self.condition.metrics();
        match (self.condition, self.metric.as_deref()) {
            (Condition::Metric, None) => {
                return err(
                    "metric",
                    format!("the Metric condition needs one of: {}", metric_names()),
                )
            }
            (Condition::Metric, Some(m)) if parse_metric(m).is_none() => {
                return err(
                    "metric",
                    format!("unknown metric `{m}`; known: {}", metric_names()),
                )
            }
            (Condition::Metric, Some(_)) => {}
            (_, None) if !allowed.is_empty() => {
                self.metric = Some(allowed[0].to_string());
            }
            (c, Some(m)) if !allowed.contains(&m) => {
                return if allowed.is_empty() {
                    err("metric", format!("{c} takes no metric"))
                } else {
                    err(
                        "metric",
                        format!(
                            "unknown metric `{m}` for {c}: one of {}",
                            allowed.join(", ")
                        ),
                    )
                };
            }
            _ => {}
        }
        if self.window.is_zero() || self.window > MAX_WINDOW {
            return err("window", "must be from 1m to 1h".into());
        }
        if self.for_ > Duration::from_secs(24 * 3600) {
            return err("for", "must be at most 24h".into());
        }
        let machine_only = self.condition == Condition::SystemResourceUsage
            || (self.condition == Condition::Metric
                && self.condition.is_system(self.metric.as_deref()));
        if self.tenant_id.is_some() && machine_only {
            return err(
                "tenant_id",
                format!(
                    "{} is the machine's, not a tenant's: leave tenant_id out",
                    self.condition
                ),
            );
        }
        if let Some(t) = &self.tenant_id {
            super::rooms::validate_tenant(t).map_err(|message| RuleError {
                field: "tenant_id",
                message,
            })?;
        }
        if self.channels.is_empty() {
            self.channels = default_channels();
        }
        self.channels.sort();
        self.channels.dedup();
        Ok(())
    }

    /// Whether this rule is evaluated once for every tenant together.
    pub fn is_system(&self) -> bool {
        self.tenant_id.is_none() && self.condition.is_system(self.metric.as_deref())
    }
}

/// A named figure of the aggregator, for [`Condition::Metric`].
pub fn parse_metric(name: &str) -> Option<MetricName> {
    MetricName::all().find(|m| m.name() == name)
}

fn metric_names() -> String {
    MetricName::all()
        .map(MetricName::name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `High failure rate!` -> `high_failure_rate`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').chars().take(64).collect()
}

/// Seed 000's two rules, present unless the configuration or the API
/// changed them.
pub fn default_rules() -> Vec<AlertRule> {
    let rule = |id: &str, name: &str, condition, metric: Option<&str>, threshold| AlertRule {
        id: id.into(),
        name: name.into(),
        condition,
        metric: metric.map(str::to_string),
        comparator: Comparator::Above,
        threshold,
        window: default_window(),
        for_: default_for(),
        severity: Severity::Warning,
        enabled: true,
        tenant_id: None,
        // Every channel: each notifies only where the server configures it.
        channels: vec![
            Channel::Websocket,
            Channel::Slack,
            Channel::Email,
            Channel::Webhook,
        ],
    };
    vec![
        rule(
            "high_failure_rate",
            "High message failure rate",
            Condition::MessageFailureRate,
            None,
            5.0,
        ),
        rule(
            "cpu_usage",
            "High CPU usage",
            Condition::SystemResourceUsage,
            Some("cpu"),
            80.0,
        ),
    ]
}

mod records;

pub use records::{Alert, AlertState, Incident, NewSilence, Silence};

#[cfg(test)]
mod tests;
