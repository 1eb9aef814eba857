//! The values of `pytake alerts`' flags as people write them: states,
//! conditions, comparators, severities and channels offered to completion
//! under the API's names; tenants and ids checked before any request;
//! `--since` as a time or a duration ago; a rule's JSON from a file or
//! stdin.
//!
//! What only the server can judge (a window of whole minutes up to an
//! hour, a metric the condition takes, a rule id that exists) is left to
//! it: its 400 names the field, and the CLI prints that.

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use serde_json::Value;

use crate::cli::tail::since::{parse_since as parse_since_any, Since};
use crate::protocol::alerts::{AlertState, Channel, Comparator, Condition, Severity};
use crate::protocol::rooms::validate_tenant;

/// `--state`.
pub fn state_parser() -> impl TypedValueParser<Value = AlertState> {
    let states = [
        AlertState::Pending,
        AlertState::Firing,
        AlertState::Resolved,
    ];
    PossibleValuesParser::new(states.map(AlertState::name)).map(|s| match s.as_str() {
        "pending" => AlertState::Pending,
        "firing" => AlertState::Firing,
        _ => AlertState::Resolved,
    })
}

/// `--condition`, by the names rules use.
pub fn condition_parser() -> impl TypedValueParser<Value = Condition> {
    PossibleValuesParser::new(Condition::ALL.map(Condition::name)).map(|s| {
        *Condition::ALL
            .iter()
            .find(|c| c.name() == s)
            .expect("a listed condition")
    })
}

/// `--comparator`: the API's symbols, or `gt`, `ge`, `lt`, `le` for
/// shells where `>` needs quoting.
pub fn comparator_parser() -> impl TypedValueParser<Value = Comparator> {
    let symbols = [
        (Comparator::Above, "gt"),
        (Comparator::AtLeast, "ge"),
        (Comparator::Below, "lt"),
        (Comparator::AtMost, "le"),
    ];
    PossibleValuesParser::new(symbols.map(|(c, alias)| PossibleValue::new(c.symbol()).alias(alias)))
        .map(|s| match s.as_str() {
            ">" | "gt" => Comparator::Above,
            ">=" | "ge" => Comparator::AtLeast,
            "<" | "lt" => Comparator::Below,
            _ => Comparator::AtMost,
        })
}

/// `--severity`.
pub fn severity_parser() -> impl TypedValueParser<Value = Severity> {
    let all = [Severity::Info, Severity::Warning, Severity::Critical];
    PossibleValuesParser::new(all.map(Severity::name)).map(|s| match s.as_str() {
        "info" => Severity::Info,
        "warning" => Severity::Warning,
        _ => Severity::Critical,
    })
}

/// `--channel`.
pub fn channel_parser() -> impl TypedValueParser<Value = Channel> {
    let all = [
        Channel::Websocket,
        Channel::Slack,
        Channel::Email,
        Channel::Webhook,
    ];
    PossibleValuesParser::new(all.map(Channel::name)).map(|s| match s.as_str() {
        "websocket" => Channel::Websocket,
        "slack" => Channel::Slack,
        "email" => Channel::Email,
        _ => Channel::Webhook,
    })
}

/// `--tenant`: a tenant id as the server accepts it.
pub fn parse_tenant(text: &str) -> Result<String, String> {
    validate_tenant(text)?;
    Ok(text.to_string())
}

/// A rule's, alert's, incident's or silence's id: anything but empty
/// (the server says whether it exists).
pub fn parse_id(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("an id is needed, like high_failure_rate or alt_20261203101500a1b2c3d4".into());
    }
    Ok(text.to_string())
}

/// `--threshold`: a finite number (the server refuses NaN and infinity
/// too, but their spelling is a typo, not a rule).
pub fn parse_threshold(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("`{text}` is not a number"))
}

/// `--since`: a duration ago or an RFC 3339 time; alerts are listed by
/// time, not by event id.
pub fn parse_since(text: &str) -> Result<Since, String> {
    match parse_since_any(text) {
        Ok(Since::Id(_)) | Err(_) => Err(
            "expected a duration ago (10m, 2h) or an RFC 3339 time (2026-12-02T10:00:00Z)".into(),
        ),
        Ok(since) => Ok(since),
    }
}

/// `--file`: the rule's JSON object, read from a path or from stdin
/// (`-`) while the command line is parsed, so that a file that is not a
/// rule is a usage error and nothing is sent.
pub fn parse_rule_file(text: &str) -> Result<Value, String> {
    let (json, from) = match text {
        "" => return Err("a file is needed, or - for stdin".into()),
        "-" => (
            std::io::read_to_string(std::io::stdin())
                .map_err(|e| format!("cannot read stdin: {e}"))?,
            "stdin".to_string(),
        ),
        path => (
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?,
            path.to_string(),
        ),
    };
    rule_json(&json, &from)
}

/// `text` as a rule's JSON object; `from` names where it came from.
pub fn rule_json(text: &str, from: &str) -> Result<Value, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON in {from}: {e}"))?;
    if !value.is_object() {
        return Err(format!(
            "{from} holds JSON but not a rule: expected an object like \
             {{\"name\": ..., \"condition\": ..., \"threshold\": ...}}"
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use serde_json::json;

    use super::*;
    use crate::cli::alerts::rules::RuleAction;
    use crate::cli::alerts::{Action, AlertsArgs};

    fn parse(args: &[&str]) -> Result<AlertsArgs, clap::Error> {
        use clap::Parser;
        let mut all = vec!["pytake", "alerts"];
        all.extend(args);
        let cli = crate::cli::Cli::try_parse_from(all)?;
        match cli.command {
            crate::cli::Command::Alerts(args) => Ok(args),
            other => panic!("not alerts: {other:?}"),
        }
    }

    /// The rule `rules add ARGS` would send.
    fn added(args: &[&str]) -> Result<Value, String> {
        let mut all = vec!["rules", "add"];
        all.extend(args);
        match parse(&all).map_err(|e| e.to_string())?.action {
            Some(Action::Rules(r)) => match r.action {
                Some(RuleAction::Add(add)) => Ok(add.body()),
                other => panic!("not add: {other:?}"),
            },
            other => panic!("not rules: {other:?}"),
        }
    }

    #[test]
    fn the_listings_parse() {
        // Flags without an action are the list's.
        let bare = parse(&["--state", "firing", "--watch", "2s"]).unwrap();
        assert!(bare.action.is_none());
        assert_eq!(
            (bare.list.state, bare.list.watch, bare.list.limit),
            (Some(AlertState::Firing), Some(Duration::from_secs(2)), 100)
        );
        assert!(parse(&["--watch", "2s", "incidents"]).is_err());
        let Some(Action::List(list)) = parse(&["list", "--tenant", "acme", "--since", "10m"])
            .unwrap()
            .action
        else {
            panic!("not list")
        };
        assert_eq!(list.tenant.as_deref(), Some("acme"));
        let now: DateTime<Utc> = "2026-12-03T10:40:00Z".parse().unwrap();
        assert_eq!(
            list.since.unwrap().time(now),
            Some("2026-12-03T10:30:00Z".parse().unwrap()),
            "a duration counts back from now"
        );
        for bad in [
            &["list", "--state", "stuck"][..],
            &["list", "--limit", "0"],
            &["list", "--limit", "1001"],
            &["list", "--since", "4200"],
            &["list", "--tenant", "a b"],
            &["incidents", "--since", "yesterday"],
            // CSV is for listings only.
            &["ack", "alt_1", "-o", "csv"],
            &["rules", "show", "cpu_usage", "-o", "csv"],
            &["silence", "--rule", "cpu_usage", "--for", "1h", "-o", "csv"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        for good in [
            &["-o", "csv"][..],
            &["incidents", "-o", "csv", "--since", "2026-12-01T00:00:00Z"],
            &["rules", "-o", "csv"],
            &["rules", "list", "--tenant", "acme"],
            &["silences", "--all", "-o", "csv"],
        ] {
            assert!(parse(good).is_ok(), "{good:?}");
        }
        let err = parse(&["list", "--since", "4200"]).unwrap_err().to_string();
        assert!(
            err.contains("expected a duration ago (10m, 2h) or an RFC 3339 time"),
            "{err}"
        );
    }

    #[test]
    fn a_silence_names_what_it_covers_and_for_how_long() {
        assert!(parse(&["silence", "--for", "1h"]).is_err());
        assert!(parse(&["silence", "--rule", "cpu_usage"]).is_err());
        assert!(parse(&["silence", "--rule", "cpu_usage", "--for", "0s"]).is_err());
        let Some(Action::Silence(s)) = parse(&[
            "silence",
            "--rule",
            "high_failure_rate",
            "--tenant",
            "acme",
            "--for",
            "90m",
            "--reason",
            "carrier outage",
        ])
        .unwrap()
        .action
        else {
            panic!("not silence")
        };
        assert_eq!(
            (
                s.rule.as_deref(),
                s.tenant.as_deref(),
                s.for_,
                s.reason.as_deref()
            ),
            (
                Some("high_failure_rate"),
                Some("acme"),
                Duration::from_secs(5400),
                Some("carrier outage")
            )
        );
        assert!(parse(&["silence", "--tenant", "acme", "--for", "1h"]).is_ok());
        assert!(parse(&["unsilence"]).is_err());
        assert!(parse(&["ack", ""]).is_err());
    }

    #[test]
    fn a_rule_from_flags_has_the_apis_field_names() {
        assert_eq!(
            added(&[
                "--name",
                "Slow ERP",
                "--condition",
                "ErpLatency",
                "--metric",
                "p95",
                "--comparator",
                "ge",
                "--threshold",
                "2000",
                "--window",
                "10m",
                "--for",
                "0s",
                "--severity",
                "critical",
                "--tenant",
                "globex",
                "--channel",
                "slack",
                "--channel",
                "websocket",
                "--id",
                "slow_erp",
            ]),
            Ok(json!({
                "id": "slow_erp", "name": "Slow ERP", "condition": "ErpLatency", "metric": "p95",
                "comparator": ">=", "threshold": 2000.0, "window": "10m", "for": "0s",
                "severity": "critical", "tenant_id": "globex", "channels": ["slack", "websocket"],
            }))
        );
        // What is left out is the server's to default.
        assert_eq!(
            added(&[
                "--name",
                "Few",
                "--condition",
                "WebsocketConnections",
                "--threshold",
                "-1",
                "--comparator",
                "<"
            ]),
            Ok(
                json!({"name": "Few", "condition": "WebsocketConnections", "threshold": -1.0,
                      "comparator": "<"})
            )
        );
        for bad in [
            &["--condition", "QueueDepth", "--threshold", "5"][..],
            &["--name", "x", "--threshold", "5"],
            &["--name", "x", "--condition", "QueueDepth"],
            &["--name", "x", "--condition", "Nope", "--threshold", "5"],
            &[
                "--name",
                "x",
                "--condition",
                "QueueDepth",
                "--threshold",
                "NaN",
            ],
            &[
                "--name",
                "x",
                "--condition",
                "QueueDepth",
                "--threshold",
                "5",
                "--window",
                "5",
            ],
            &[
                "--name",
                "x",
                "--condition",
                "QueueDepth",
                "--threshold",
                "5",
                "--comparator",
                "!=",
            ],
            &[
                "--name",
                "x",
                "--condition",
                "QueueDepth",
                "--threshold",
                "5",
                "--channel",
                "sms",
            ],
            &["--file", "rule.json", "--name", "x"],
        ] {
            let err = added(bad).unwrap_err();
            assert!(err.starts_with("error: "), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_rule_from_a_file_is_its_json_object() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rule.json");
        std::fs::write(
            &file,
            r#"{"name": "AI tokens", "condition": "AiTokenUsage"}"#,
        )
        .unwrap();
        let path = file.display().to_string();
        assert_eq!(
            added(&["--file", &path]),
            Ok(json!({"name": "AI tokens", "condition": "AiTokenUsage"}))
        );
        std::fs::write(&file, "{").unwrap();
        let broken = added(&["--file", &path]).unwrap_err();
        assert!(
            broken.starts_with(&format!(
                "error: invalid value '{path}' for '--file <FILE>': not JSON in {path}: "
            )),
            "{broken}"
        );
        assert_eq!(
            rule_json("[1]", "rule.json").unwrap_err(),
            "rule.json holds JSON but not a rule: expected an object like \
             {\"name\": ..., \"condition\": ..., \"threshold\": ...}"
        );
        let missing = parse_rule_file("/nonexistent/rule.json").unwrap_err();
        assert!(
            missing.starts_with("cannot read /nonexistent/rule.json: "),
            "{missing}"
        );
    }
}
