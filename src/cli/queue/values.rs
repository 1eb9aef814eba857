//! The values of `pytake queue`'s flags as people write them: job ids,
//! statuses and kinds (offered to completion), payloads inline or from a
//! file, and run times as a time or a delay.

use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use serde_json::Value;

use crate::cli::values::Known;
use crate::config::duration;
use crate::server::storage::jobs::{JobId, JobStatus};

/// When an enqueued job may first run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunAt {
    Time(DateTime<Utc>),
    /// This long after the request is made.
    In(Duration),
}

impl RunAt {
    /// The time this stands for, seen from `now`.
    pub fn at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            RunAt::Time(t) => *t,
            RunAt::In(d) => chrono::Duration::from_std(*d)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }
}

/// `--status`: any status, or only the final ones (those a purge takes),
/// offered to completion.
pub fn status_parser(final_only: bool) -> impl TypedValueParser<Value = JobStatus> {
    let allowed = JobStatus::ALL
        .into_iter()
        .filter(move |s| !final_only || s.is_final())
        .map(JobStatus::as_str);
    PossibleValuesParser::new(allowed).map(|s| s.parse::<JobStatus>().expect("a listed status"))
}

/// `--kind` of a listing or a retry: any kind the server runs (the list
/// grows with the server), the known ones offered to completion.
pub fn kind_parser() -> Known<String> {
    Known::new(
        &["noop", "http", "webhook.whatsapp", "webhook.evolution"],
        |s| {
            if s.is_empty() {
                Err("a kind is needed, like http or noop".into())
            } else {
                Ok(s.to_string())
            }
        },
    )
}

/// A job id: a positive whole number.
pub fn parse_job_id(text: &str) -> Result<JobId, String> {
    text.parse::<JobId>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| format!("`{text}` is not a job id (a positive whole number)"))
}

/// `--payload`: JSON, or `@FILE` holding it.
pub fn parse_payload(text: &str) -> Result<Value, String> {
    let (json, from) = match text.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?,
            format!(" in {path}"),
        ),
        None => (text.to_string(), String::new()),
    };
    serde_json::from_str(&json).map_err(|e| format!("not JSON{from}: {e}"))
}

/// `--run-at`: an RFC 3339 time, or a duration from now.
pub fn parse_run_at(text: &str) -> Result<RunAt, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(RunAt::Time(t.with_timezone(&Utc)));
    }
    duration::parse(text).map(RunAt::In).map_err(|_| {
        "expected an RFC 3339 time (2026-12-02T10:00:00Z) or a duration from now (10m, 2h)"
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn now() -> DateTime<Utc> {
        t("2026-12-03T10:40:00Z")
    }

    fn parse(args: &[&str]) -> Result<crate::cli::queue::QueueArgs, clap::Error> {
        use clap::Parser;
        let mut all = vec!["pytake", "queue"];
        all.extend(args);
        let cli = crate::cli::Cli::try_parse_from(all)?;
        match cli.command {
            crate::cli::Command::Queue(args) => Ok(args),
            other => panic!("not queue: {other:?}"),
        }
    }

    #[test]
    fn the_command_line_parses() {
        use crate::cli::queue::Action;
        // Flags without an action are the stats'.
        let bare = parse(&["--watch", "2s"]).unwrap();
        assert!(bare.action.is_none());
        assert_eq!(bare.stats.watch, Some(std::time::Duration::from_secs(2)));
        assert!(parse(&["--watch", "2s", "dead"]).is_err());

        let Some(Action::List(list)) = parse(&["list", "--status", "dead", "--kind", "http"])
            .unwrap()
            .action
        else {
            panic!("not list")
        };
        assert_eq!(
            (list.status, list.paging.kind.as_deref(), list.paging.limit),
            (Some(JobStatus::Dead), Some("http"), 50)
        );
        assert!(parse(&["list", "--status", "stuck"]).is_err());
        assert!(parse(&["list", "--limit", "0"]).is_err());
        assert!(parse(&["dead", "-o", "csv"]).is_ok());
        // CSV is for listings only.
        assert!(parse(&["show", "4", "-o", "csv"]).is_err());
        assert!(parse(&["show", "0"]).is_err());

        // One job or every dead one, --kind only with the latter.
        assert!(parse(&["retry"]).is_err());
        assert!(parse(&["retry", "4", "--all-dead"]).is_err());
        assert!(parse(&["retry", "4", "--kind", "http"]).is_err());
        assert!(parse(&["retry", "--kind", "http"]).is_err());
        assert!(parse(&["retry", "4"]).is_ok());
        let Some(Action::Retry(all)) = parse(&["retry", "--all-dead", "--kind", "http"])
            .unwrap()
            .action
        else {
            panic!("not retry")
        };
        assert_eq!((all.id, all.kind.as_deref()), (None, Some("http")));

        // A purge says what and how old, and only finished jobs.
        assert!(parse(&["purge", "--status", "done"]).is_err());
        assert!(parse(&["purge", "--older-than", "7d"]).is_err());
        assert!(parse(&["purge", "--status", "pending", "--older-than", "7d"]).is_err());
        assert!(parse(&["purge", "--status", "dead", "--older-than", "0s"]).is_ok());

        let Some(Action::Enqueue(e)) = parse(&[
            "enqueue",
            "--kind",
            "http",
            "--payload",
            r#"{"url":"http://127.0.0.1:9/"}"#,
            "--run-at",
            "10m",
            "--priority",
            "-5",
        ])
        .unwrap()
        .action
        else {
            panic!("not enqueue")
        };
        assert_eq!(e.payload, json!({"url": "http://127.0.0.1:9/"}));
        assert_eq!(e.priority, Some(-5));
        assert_eq!(
            e.run_at,
            Some(RunAt::In(std::time::Duration::from_secs(600)))
        );
        assert_eq!(
            e.run_at.unwrap().at(now()),
            t("2026-12-03T10:50:00Z"),
            "a duration counts from now"
        );
        let Some(Action::Enqueue(e)) = parse(&["enqueue", "--kind", "noop"]).unwrap().action else {
            panic!("not enqueue")
        };
        assert_eq!(e.payload, json!({}));
        let err = parse(&["enqueue", "--kind", "noop", "--payload", "{nope"]).unwrap_err();
        assert!(err.to_string().contains("not JSON"), "{err}");
        let err = parse(&["enqueue", "--kind", "noop", "--run-at", "soon"]).unwrap_err();
        assert!(err.to_string().contains("a duration from now"), "{err}");
    }

    #[test]
    fn payloads_come_inline_or_from_a_file_and_run_times_as_either_form() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("delivery.json");
        std::fs::write(&file, r#"{"url": "https://hooks.example.com/x"}"#).unwrap();
        assert_eq!(
            parse_payload(&format!("@{}", file.display())),
            Ok(json!({"url": "https://hooks.example.com/x"}))
        );
        let missing = parse_payload("@/nonexistent/delivery.json").unwrap_err();
        assert!(
            missing.starts_with("cannot read /nonexistent/delivery.json: "),
            "{missing}"
        );
        std::fs::write(&file, "{").unwrap();
        let broken = parse_payload(&format!("@{}", file.display())).unwrap_err();
        assert!(
            broken.starts_with(&format!("not JSON in {}: ", file.display())),
            "{broken}"
        );
        assert_eq!(
            parse_run_at("2026-12-03T12:00:00+02:00"),
            Ok(RunAt::Time(t("2026-12-03T10:00:00Z")))
        );
        assert_eq!(
            parse_job_id("-3").unwrap_err(),
            "`-3` is not a job id (a positive whole number)"
        );
    }
}
