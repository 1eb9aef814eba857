//! `pytake alerts rules`: its actions, and the rule `add` sends, from
//! flags or from a file of the API's JSON. Flags name the API's fields
//! one for one; those left out are the server's defaults (`>`, a 5m
//! window, 1m, warning, the websocket channel), so the CLI never drifts
//! from what the server would do with the same JSON.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::action_help;
use super::values::{
    channel_parser, comparator_parser, condition_parser, parse_id, parse_rule_file, parse_tenant,
    parse_threshold, severity_parser,
};
use crate::cli::output::{Output, OutputFormat, OutputWithCsv};
use crate::config::duration;
use crate::config::flags::ClientFlags;
use crate::protocol::alerts::{Channel, Comparator, Condition, Severity};

/// `pytake alerts rules [ACTION]`: flags given without an action are the
/// list's.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, after_help = action_help("  pytake alerts rules\n  pytake alerts rules show high_failure_rate\n  pytake alerts rules add --name 'ERP errors' --condition ErpErrorRate --threshold 10 --severity critical\n  pytake alerts rules add --file rule.json\n  pytake alerts rules disable cpu_usage\n  pytake alerts rules rm erp_errors\n  pytake alerts rules --output csv > rules.csv"))]
pub struct RulesArgs {
    #[command(subcommand)]
    pub action: Option<RuleAction>,
    #[command(flatten)]
    pub list: RulesListArgs,
}

#[derive(Debug, Subcommand)]
pub enum RuleAction {
    /// Every rule the token sees: condition, threshold, window, for, severity, tenant, channels (the default)
    #[command(after_help = action_help("  pytake alerts rules list\n  pytake alerts rules list --tenant acme\n  pytake alerts rules list --output json | jq -r '.rules[].id'\n\nA tenant token sees its tenant's rules and the rules for every tenant."))]
    List(RulesListArgs),
    /// One rule, all of it
    #[command(after_help = action_help("  pytake alerts rules show high_failure_rate\n  pytake alerts rules show cpu_usage --output json"))]
    Show(RuleRef),
    /// Add a rule, from flags or from the API's JSON in a file; prints it as stored
    #[command(after_help = action_help("  pytake alerts rules add --name 'Queue backlog' --condition QueueDepth --threshold 500 --for 2m\n  pytake alerts rules add --name 'Slow ERP' --condition ErpLatency --metric p95 --comparator '>=' \\\n      --threshold 2000 --window 10m --severity critical --channel slack --channel websocket\n  pytake alerts rules add --name 'No dashboards' --condition WebsocketConnections \\\n      --comparator lt --threshold 1\n  pytake alerts rules add --file rule.json\n  echo '{\"name\":\"AI tokens\",\"condition\":\"AiTokenUsage\",\"threshold\":100000}' \\\n      | pytake alerts rules add --file -\n\nConditions and their metrics: docs/alerts.md. The server checks the rule and\nnames the field at fault (exit 1): a window of whole minutes from 1m to 1h, a\nmetric the condition takes, no tenant on a machine-wide condition."))]
    Add(AddArgs),
    /// Delete a rule: its firing alerts resolve at the next evaluation, fired ones stay in history
    #[command(after_help = action_help("  pytake alerts rules rm erp_errors"))]
    Rm(RuleRef),
    /// Evaluate a disabled rule again
    #[command(after_help = action_help("  pytake alerts rules enable cpu_usage"))]
    Enable(RuleRef),
    /// Stop evaluating a rule, keeping it: its firing alerts resolve
    #[command(after_help = action_help("  pytake alerts rules disable cpu_usage"))]
    Disable(RuleRef),
}

/// `rules list`, and `rules` without an action.
#[derive(Debug, Args)]
pub struct RulesListArgs {
    /// The rules that apply to this tenant (admin tokens): its own and every tenant's [default:
    /// every rule, or the token's tenant's]
    #[arg(long, value_name = "ID", value_parser = parse_tenant)]
    pub tenant: Option<String>,

    #[command(flatten)]
    pub client: ClientFlags,

    #[command(flatten)]
    pub output: OutputWithCsv,
}

/// A rule by its id.
#[derive(Debug, Args)]
pub struct RuleRef {
    /// The rule's id
    #[arg(value_name = "ID", value_parser = parse_id)]
    pub id: String,

    #[command(flatten)]
    pub client: ClientFlags,

    #[command(flatten)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The rule as the API's JSON, in FILE or on stdin (-), instead of the flags below
    #[arg(long, value_name = "FILE", value_parser = parse_rule_file,
          conflicts_with_all = ["id", "name", "condition", "metric", "comparator", "threshold",
                                "window", "for_", "severity", "tenant", "channels"])]
    pub file: Option<Value>,

    /// The rule's id: A-Z a-z 0-9 _ - . [default: made from the name, `Queue backlog` ->
    /// queue_backlog]
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    pub id: Option<String>,

    /// What notifications call it
    #[arg(long, value_name = "TEXT", required_unless_present = "file")]
    pub name: Option<String>,

    /// What it measures
    #[arg(long, value_name = "CONDITION", required_unless_present = "file",
          value_parser = condition_parser())]
    pub condition: Option<Condition>,

    /// Which figure, for conditions that have several (SystemResourceUsage: cpu, memory;
    /// ErpLatency: p95, p50, avg; Metric: a dashboard figure) [default: the condition's first]
    #[arg(long, value_name = "NAME")]
    pub metric: Option<String>,

    /// How the value compares with the threshold to fire (gt, ge, lt, le also do) [default: >]
    #[arg(long, value_name = "OP", value_parser = comparator_parser())]
    pub comparator: Option<Comparator>,

    /// The threshold
    #[arg(long, value_name = "NUMBER", required_unless_present = "file",
          allow_negative_numbers = true, value_parser = parse_threshold)]
    pub threshold: Option<f64>,

    /// What rates and sums are measured over: whole minutes, 1m to 1h [default: 5m]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub window: Option<Duration>,

    /// How long the condition must hold before it fires, and be clear before it resolves (0s:
    /// at once) [default: 1m]
    #[arg(long = "for", value_name = "DURATION", value_parser = duration::parse)]
    pub for_: Option<Duration>,

    /// How urgent [default: warning]
    #[arg(long, value_name = "SEVERITY", value_parser = severity_parser())]
    pub severity: Option<Severity>,

    /// Only this tenant [default: each tenant on its own, or the machine for machine-wide
    /// conditions; an operator's rule is for its tenant]
    #[arg(long, value_name = "ID", value_parser = parse_tenant)]
    pub tenant: Option<String>,

    /// Where notifications go, repeatable [default: websocket]
    #[arg(long = "channel", value_name = "CHANNEL", value_parser = channel_parser())]
    pub channels: Vec<Channel>,

    #[command(flatten)]
    pub client: ClientFlags,

    #[command(flatten)]
    pub output: Output,
}

impl RuleAction {
    fn client(&self) -> &ClientFlags {
        match self {
            RuleAction::List(a) => &a.client,
            RuleAction::Add(a) => &a.client,
            RuleAction::Show(a)
            | RuleAction::Rm(a)
            | RuleAction::Enable(a)
            | RuleAction::Disable(a) => &a.client,
        }
    }

    fn output(&self) -> Option<OutputFormat> {
        match self {
            RuleAction::List(a) => a.output.output,
            RuleAction::Add(a) => a.output.output,
            RuleAction::Show(a)
            | RuleAction::Rm(a)
            | RuleAction::Enable(a)
            | RuleAction::Disable(a) => a.output.output,
        }
    }
}

impl RulesArgs {
    /// The client flags of the level the user typed them at.
    pub fn client(&self) -> &ClientFlags {
        match &self.action {
            Some(a) => a.client(),
            None => &self.list.client,
        }
    }

    pub fn output(&self) -> Option<OutputFormat> {
        match &self.action {
            Some(a) => a.output(),
            None => self.list.output.output,
        }
    }
}

impl AddArgs {
    /// The rule's JSON: the file's, or the flags' in the API's field
    /// names with the rest left to the server's defaults.
    pub fn body(&self) -> Value {
        if let Some(file) = &self.file {
            return file.clone();
        }
        let mut rule = Map::new();
        let mut put = |field: &str, value: Option<Value>| {
            if let Some(v) = value {
                rule.insert(field.to_string(), v);
            }
        };
        put("id", self.id.as_ref().map(|id| json!(id)));
        put("name", self.name.as_ref().map(|n| json!(n)));
        put("condition", self.condition.map(|c| json!(c)));
        put("metric", self.metric.as_ref().map(|m| json!(m)));
        put("comparator", self.comparator.map(|c| json!(c)));
        put("threshold", self.threshold.map(|t| json!(t)));
        put("window", self.window.map(|w| json!(duration::format(w))));
        put("for", self.for_.map(|f| json!(duration::format(f))));
        put("severity", self.severity.map(|s| json!(s)));
        put("tenant_id", self.tenant.as_ref().map(|t| json!(t)));
        put(
            "channels",
            (!self.channels.is_empty()).then(|| json!(self.channels)),
        );
        Value::Object(rule)
    }
}
