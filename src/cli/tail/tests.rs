use clap::Parser;

use super::print::tests::event;
use super::*;
use crate::cli::{Cli, Command};

fn args(argv: &[&str]) -> TailArgs {
    let cli = Cli::try_parse_from([&["pytake", "tail"], argv].concat()).unwrap();
    match cli.command {
        Command::Tail { args, .. } => args,
        other => panic!("{other:?}"),
    }
}

fn parse_error(argv: &[&str]) -> String {
    Cli::try_parse_from([&["pytake", "tail"], argv].concat())
        .unwrap_err()
        .to_string()
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

const NOW: &str = "2026-12-02T10:00:00Z";

#[test]
fn since_and_tail_conflict_and_bad_values_name_the_forms() {
    let e = parse_error(&["--tail", "3", "--since", "0"]);
    assert!(
        e.starts_with(
            "error: the argument '--tail <N>' cannot be used with '--since <ID|DURATION|TIME>'"
        ),
        "{e}"
    );
    let e = parse_error(&["--since", "yesterday"]);
    assert!(
        e.starts_with(
            "error: invalid value 'yesterday' for '--since <ID|DURATION|TIME>': expected an \
             event id (4200), a duration ago (10m, 2h) or an RFC 3339 time (2026-12-02T10:00:00Z)\n"
        ),
        "{e}"
    );
    let e = parse_error(&["--until", "soon"]);
    assert!(
        e.starts_with(
            "error: invalid value 'soon' for '--until <TIME|DURATION>': expected an RFC 3339 \
             time (2026-12-02T10:00:00Z) or a duration ago (10m, 2h)\n"
        ),
        "{e}"
    );
}

#[test]
fn the_plan_follows_unless_told_or_until_is_past() {
    let now = t(NOW);
    let plan = |argv: &[&str]| Plan::new(&args(argv), now).map_err(|e| e.to_string());
    assert_eq!(
        plan(&[]),
        Ok(Plan {
            until: None,
            follow: true
        })
    );
    assert_eq!(
        plan(&["--tail", "5", "--no-follow"]),
        Ok(Plan {
            until: None,
            follow: false
        })
    );
    assert_eq!(
        plan(&["--since", "1h", "--until", "10m"]),
        Ok(Plan {
            until: Some(t("2026-12-02T09:50:00Z")),
            follow: false
        })
    );
    // Within the grace, events stamped before --until may still arrive.
    assert_eq!(
        plan(&["--since", "0", "--until", "2026-12-02T09:59:57Z"]),
        Ok(Plan {
            until: Some(t("2026-12-02T09:59:57Z")),
            follow: true
        })
    );
    assert_eq!(
        plan(&["--until", "2026-12-02T11:00:00Z"]),
        Ok(Plan {
            until: Some(t("2026-12-02T11:00:00Z")),
            follow: true
        })
    );
}

#[test]
fn plans_that_could_print_nothing_are_usage_errors() {
    let now = t(NOW);
    let plan = |argv: &[&str]| Plan::new(&args(argv), now).unwrap_err().to_string();
    assert_eq!(
        plan(&["--no-follow"]),
        "--no-follow prints history, so it needs --since or --tail (e.g. --tail 100)"
    );
    assert_eq!(
        plan(&["--tail", "0", "--no-follow"]),
        "--no-follow prints history, so it needs --since or --tail (e.g. --tail 100)"
    );
    assert_eq!(
        plan(&["--until", "1h"]),
        "--until 2026-12-02T09:00:00Z is in the past, so there is nothing to follow: add \
         --since or --tail to print the history up to it"
    );
    assert_eq!(
        plan(&[
            "--since",
            "2026-12-02T08:00:00Z",
            "--until",
            "2026-12-02T07:00:00Z"
        ]),
        "--until 2026-12-02T07:00:00Z is before --since 2026-12-02T08:00:00Z: nothing could be \
         printed"
    );
}

fn printer() -> Printer<Vec<u8>> {
    Printer::new(Vec::new(), OutputFormat::Json, false, None, None)
}

fn printed(printer: Printer<Vec<u8>>) -> Vec<i64> {
    String::from_utf8(printer.into_inner())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Event>(l).unwrap().id)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn following_stops_at_the_until_deadline_on_a_quiet_stream() {
    let (tx, rx) = mpsc::channel(8);
    tx.send(Ok(StreamItem::Event(event(1, NOW)))).await.unwrap();
    let mut p = printer();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(3600);
    follow_events(rx, &mut p, Some(deadline)).await.unwrap();
    assert_eq!(Instant::now(), deadline);
    assert_eq!(printed(p), [1]);
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn following_ends_with_the_stream_or_its_fatal_error() {
    let (tx, rx) = mpsc::channel(8);
    for item in [
        StreamItem::Connected {
            connection_id: "c1".into(),
            resumed_from: None,
        },
        StreamItem::Event(event(1, NOW)),
        StreamItem::Connected {
            connection_id: "c2".into(),
            resumed_from: Some(1),
        },
        StreamItem::Event(event(2, NOW)),
    ] {
        tx.send(Ok(item)).await.unwrap();
    }
    tx.send(Err(ClientError::Unauthorized("token expired".into())))
        .await
        .unwrap();
    let mut p = printer();
    let e = follow_events(rx, &mut p, None).await.unwrap_err();
    assert_eq!(e.to_string(), "unauthorized: token expired");
    assert_eq!(printed(p), [1, 2]);

    let (tx, rx) = mpsc::channel(8);
    drop(tx);
    follow_events(rx, &mut printer(), None).await.unwrap();
}
