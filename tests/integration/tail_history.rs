//! `pytake tail` history, like `kubectl logs`: `--since` (id, duration, RFC
//! 3339 time), `--until`, `--tail N`, `--no-follow`; and the `resumed from
//! #N` notice after a reconnection.

use std::process::Stdio;

use chrono::{SecondsFormat, Utc};
use pytake::protocol::Event;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::support::{bin, custom, pytake, Run, TestServer, DEADLINE};

/// A custom event stamped `timestamp` by its publisher.
fn stamped(room: &str, n: i64, timestamp: &str) -> Value {
    json!({"event_type": "TestEvent", "tenant_id": "acme", "rooms": [room],
           "data": {"n": n}, "timestamp": timestamp})
}

/// Runs `pytake --server S --token ADMIN tail ARGS`.
async fn tail(server: &TestServer, args: &[&str]) -> Run {
    let admin = server.admin();
    let argv = [&["tail", "--server", &server.url, "--token", &admin], args].concat();
    pytake(&argv, server.path()).await
}

/// The JSON lines `tail --output json` prints for these events.
fn json_lines(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect()
}

#[tokio::test]
async fn since_0_no_follow_prints_exactly_the_published_events_and_exits() {
    let server = TestServer::start().await;
    let admin = server.admin();
    server.publish(&admin, custom("acme", "erp", 1)).await;
    server.publish(&admin, custom("globex", "ai", 2)).await;
    server
        .publish(
            &admin,
            json!([custom("acme", "alerts", 3), custom("acme", "erp", 4)]),
        )
        .await;
    let run = tail(
        &server,
        &["--since", "0", "--no-follow", "--output", "json"],
    )
    .await;
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{}", run.stdout);
    let stored = server.history("since=0").await;
    assert_eq!(stored.len(), 4);
    assert_eq!(run.stdout, json_lines(&stored));

    // With a room and from an id: only those.
    let run = tail(
        &server,
        &[
            "--since",
            "1",
            "--room",
            "erp",
            "--no-follow",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, json_lines(&stored[3..]));
}

#[tokio::test]
async fn tail_n_no_follow_prints_the_last_n_matching_events() {
    let server = TestServer::start().await;
    let admin = server.admin();
    for n in 1..=6 {
        let room = if n % 2 == 0 { "erp" } else { "ai" };
        let time = format!("2026-01-02T03:04:0{n}.500Z");
        server.publish(&admin, stamped(room, n, &time)).await;
    }
    let run = tail(
        &server,
        &["--tail", "2", "--no-follow", "--output", "table"],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "03:04:05.500  #5  acme  ai  TestEvent  n=5\n\
         03:04:06.500  #6  acme  erp  TestEvent  n=6\n"
    );
    let run = tail(
        &server,
        &[
            "--tail",
            "2",
            "--room",
            "erp",
            "--no-follow",
            "--output",
            "table",
        ],
    )
    .await;
    assert_eq!(
        run.stdout,
        "03:04:04.500  #4  acme  erp  TestEvent  n=4\n\
         03:04:06.500  #6  acme  erp  TestEvent  n=6\n"
    );
    let run = tail(
        &server,
        &["--tail", "50", "--no-follow", "--output", "json"],
    )
    .await;
    assert_eq!(run.stdout, json_lines(&server.history("since=0").await));
}

#[tokio::test]
async fn tail_n_prints_the_last_n_then_follows() {
    let server = TestServer::start().await;
    let admin = server.admin();
    for n in 1..=4 {
        server.publish(&admin, custom("acme", "erp", n)).await;
    }
    let child = tokio::process::Command::new(bin())
        .args(["tail", "--server", &server.url, "--token", &admin])
        .args(["--tail", "2", "--count", "3", "--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    server.wait_for_subscribers(1).await;
    let live = server.publish(&admin, custom("acme", "erp", 5)).await;
    let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let ids: Vec<i64> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Event>(l).unwrap().id)
        .collect();
    assert_eq!(ids, [3, 4, live[0]]);
    assert_eq!(String::from_utf8(output.stderr).unwrap(), "");
}

#[tokio::test]
async fn since_an_rfc3339_time_starts_with_what_arrived_then() {
    let server = TestServer::start().await;
    let admin = server.admin();
    server.publish(&admin, custom("acme", "erp", 1)).await;
    // The first event was stored before this millisecond ended; start at the next.
    let stored = Utc::now().timestamp_millis();
    while Utc::now().timestamp_millis() <= stored {
        tokio::task::yield_now().await;
    }
    let since = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    server.publish(&admin, custom("acme", "erp", 2)).await;
    server.publish(&admin, custom("acme", "ai", 3)).await;
    let run = tail(
        &server,
        &["--since", &since, "--no-follow", "--output", "json"],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, json_lines(&server.history("since=1").await));

    // A time with an offset means the same instant.
    let later = "2999-01-01T02:00:00+02:00";
    let run = tail(&server, &["--since", later, "--no-follow"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{run:?}");
}

#[tokio::test]
async fn until_in_the_past_prints_history_up_to_it_and_exits() {
    let server = TestServer::start().await;
    let admin = server.admin();
    for (n, time) in [
        (1, "2026-01-02T10:00:00Z"),
        (2, "2026-01-02T10:30:00Z"),
        (3, "2026-01-02T11:00:00Z"),
    ] {
        server.publish(&admin, stamped("erp", n, time)).await;
    }
    let run = tail(
        &server,
        &[
            "--since",
            "0",
            "--until",
            "2026-01-02T10:30:00Z",
            "--output",
            "table",
        ],
    )
    .await;
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (
            0,
            "10:00:00.000  #1  acme  erp  TestEvent  n=1\n\
             10:30:00.000  #2  acme  erp  TestEvent  n=2\n",
            ""
        )
    );
}

#[tokio::test]
async fn until_in_the_future_follows_and_skips_events_stamped_past_it() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let now = Utc::now();
    let until = (now + chrono::Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let later = (now + chrono::Duration::hours(2)).to_rfc3339_opts(SecondsFormat::Millis, true);
    server.publish(&admin, custom("acme", "erp", 1)).await;
    server.publish(&admin, stamped("erp", 2, &later)).await;
    server.publish(&admin, custom("acme", "erp", 3)).await;
    // The event its publisher stamped two hours ahead is skipped, and the
    // one after it still printed (the clock that ends following is tested
    // with a paused clock in the unit tests).
    let run = tail(
        &server,
        &[
            "--since", "0", "--until", &until, "--count", "2", "--output", "json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let history = server.history("since=0").await;
    assert_eq!(
        run.stdout,
        json_lines(&[history[0].clone(), history[2].clone()])
    );
}

#[tokio::test]
async fn bad_history_flags_are_usage_errors_that_say_what_is_accepted() {
    let home = tempfile::tempdir().unwrap();
    let run = pytake(&["tail", "--since", "yesterday"], home.path()).await;
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "error: invalid value 'yesterday' for '--since <ID|DURATION|TIME>': expected an event \
         id (4200), a duration ago (10m, 2h) or an RFC 3339 time (2026-12-02T10:00:00Z)\n\n\
         For more information, try '--help'.\n"
    );
    let run = pytake(&["tail", "--no-follow"], home.path()).await;
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            2,
            "error: --no-follow prints history, so it needs --since or --tail (e.g. --tail 100)\n"
        )
    );
    let run = pytake(&["tail", "--tail", "5", "--since", "10m"], home.path()).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.starts_with(
            "error: the argument '--tail <N>' cannot be used with '--since <ID|DURATION|TIME>'\n"
        ),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_reconnection_says_where_it_resumed_and_loses_nothing() {
    let mut server = TestServer::start().await;
    let admin = server.admin();
    let mut child = tokio::process::Command::new(bin())
        .args(["tail", "--server", &server.url, "--token", &admin])
        .args([
            "--room", "erp", "--since", "0", "--count", "6", "--output", "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for i in 1..=3 {
        server.publish(&admin, custom("acme", "erp", i)).await;
    }
    for _ in 0..3 {
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(serde_json::from_str::<Event>(&line).unwrap().id);
    }
    server.restart().await;
    for i in 4..=6 {
        server.publish(&admin, custom("acme", "erp", i)).await;
    }
    while let Some(line) = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .unwrap()
        .unwrap()
    {
        seen.push(serde_json::from_str::<Event>(&line).unwrap().id);
    }
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    assert_eq!(seen, [1, 2, 3, 4, 5, 6], "nothing lost, nothing twice");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    let (last, drops) = lines.split_last().expect("stderr lines");
    assert_eq!(*last, "pytake tail: resumed from #3", "{stderr}");
    assert!(!drops.is_empty(), "{stderr}");
    for line in drops {
        assert!(
            line.starts_with("pytake tail: disconnected (") && line.contains("; reconnecting in "),
            "{stderr}"
        );
    }
}
