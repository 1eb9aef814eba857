//! `pytake alerts` against a real server evaluating every second: a rule
//! of acme's that always holds (`QueueDepth >= 0`, for 0s) fires at the
//! next evaluation, and the CLI's listings, acknowledgement and silences
//! are compared with the REST API and with exact text where no clock
//! shows. The rules' commands and refusals are in `alerts_cli_rules`.

use std::process::Stdio;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{bin, pytake, ClearPytake, Options, Run, TestServer, DEADLINE};

/// A server whose evaluator runs every second.
pub(crate) async fn server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alerts.toml");
    std::fs::write(&config, "[alerts]\nevaluation_interval = \"1s\"\n").unwrap();
    let server =
        TestServer::start_with(Options::args(&["--config", config.to_str().unwrap()])).await;
    (server, dir)
}

/// Runs `pytake alerts ARGS --server URL --token TOKEN`.
pub(crate) async fn alerts(server: &TestServer, token: &str, args: &[&str]) -> Run {
    let mut all = vec!["alerts"];
    all.extend(args);
    all.extend(["--server", &server.url, "--token", token]);
    pytake(&all, server.path()).await
}

/// The stdout of a run that succeeded quietly.
pub(crate) fn ok(run: &Run) -> &str {
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    &run.stdout
}

/// The one JSON line of a run that succeeded.
pub(crate) fn json_of(run: &Run) -> Value {
    let out = ok(run);
    assert_eq!(out.lines().count(), 1, "{out}");
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A run the server refused: exit 1, nothing on stdout, its reason.
pub(crate) fn refused(run: &Run) -> &str {
    assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{run:?}");
    &run.stderr
}

/// A REST body that must be 200.
pub(crate) async fn rest(server: &TestServer, token: &str, path: &str) -> Value {
    let (code, body) = server.get(Some(token), path).await;
    assert_eq!(code, 200, "{path}: {body}");
    body
}

/// The cells of a table's row, trimmed.
pub(crate) fn cells(line: &str) -> Vec<&str> {
    line.trim_matches(|c| c == '│' || c == ' ')
        .split('┆')
        .map(str::trim)
        .collect()
}

/// `rows` as CSV, each field from the REST body as the API wrote it
/// (strings bare, numbers and booleans as JSON, absent fields empty).
pub(crate) fn csv_of(fields: &[&str], rows: &[Value]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(fields).unwrap();
    for row in rows {
        w.write_record(fields.iter().map(|f| {
            match &row[*f] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
                other => other.to_string(),
            }
        }))
        .unwrap();
    }
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

/// Polls acme's alerts until one of `rule` is in `state`; that alert.
async fn wait_for(server: &TestServer, rule: &str, state: &str) -> Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let body = rest(server, &server.admin(), "/api/v1/alerts?tenant_id=acme").await;
        let found = body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["rule_id"] == rule && a["state"] == state)
            .cloned();
        if let Some(alert) = found {
            return alert;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{rule} never became {state}: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// acme's rule that holds at every evaluation: its waiting jobs (none)
/// are at least 0.
pub(crate) const ALWAYS: &[&str] = &[
    "rules",
    "add",
    "--name",
    "Acme backlog",
    "--condition",
    "QueueDepth",
    "--comparator",
    ">=",
    "--threshold",
    "0",
    "--for",
    "0s",
    "--window",
    "1m",
];

#[tokio::test]
async fn an_alert_fires_and_is_listed_acknowledged_silenced_and_resolved() {
    let (server, _dir) = server().await;
    let op = server.operator("acme");
    ok(&alerts(&server, &op, ALWAYS).await);
    let alert = wait_for(&server, "acme_backlog", "firing").await;
    let id = alert["id"].as_str().unwrap().to_string();
    let incident = alert["incident_id"].as_str().unwrap().to_string();
    assert_eq!(alert["current_value"], 0.0);

    // JSON: the API's body as sent, for the same query.
    let since = "2020-01-01T00:00:00Z";
    let listed = rest(
        &server,
        &op,
        "/api/v1/alerts?since=2020-01-01T00:00:00.000Z&limit=100",
    )
    .await;
    assert_eq!(
        json_of(&alerts(&server, &op, &["--since", since]).await),
        listed
    );
    assert_eq!(listed["since"], "2020-01-01T00:00:00.000Z");
    let firing = json_of(
        &alerts(
            &server,
            &op,
            &[
                "list", "--state", "firing", "--tenant", "acme", "--limit", "5",
            ],
        )
        .await,
    );
    assert_eq!(firing["alerts"], json!([alert]));

    // CSV: every field, as the API wrote it.
    let csv = alerts(&server, &op, &["list", "--since", since, "-o", "csv"]).await;
    assert_eq!(
        ok(&csv),
        csv_of(
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
                "silenced"
            ],
            listed["alerts"].as_array().unwrap()
        )
    );

    // The table: the alert's row, its ages left out of the comparison.
    let table = alerts(&server, &op, &["list", "--state", "firing", "-o", "table"]).await;
    let lines: Vec<&str> = ok(&table).lines().collect();
    assert!(
        lines[0].starts_with("1 firing alert since ") && lines[0].ends_with(", newest first"),
        "{}",
        table.stdout
    );
    let row = cells(lines[4]);
    assert_eq!(
        (&row[..5], &row[7..]),
        (
            &["firing", "warning", "acme", "Acme backlog", "0 (>= 0)"][..],
            &["-", "", "", id.as_str()][..]
        ),
        "{}",
        table.stdout
    );
    assert_eq!(lines.len(), 6, "{}", table.stdout);

    // Incidents: JSON as sent, CSV from it, and the table's row.
    let incidents = rest(&server, &op, "/api/v1/alerts/incidents?limit=100").await;
    assert_eq!(
        json_of(&alerts(&server, &op, &["incidents"]).await),
        incidents
    );
    assert_eq!(incidents["incidents"][0]["id"], incident.as_str());
    let table = alerts(&server, &op, &["incidents", "-o", "table"]).await;
    let lines: Vec<&str> = ok(&table).lines().collect();
    assert_eq!(
        lines[0], "1 incident, newest first: 1 open, 0 resolved recently",
        "{}",
        table.stdout
    );
    let row = cells(lines[4]);
    assert_eq!(
        (&row[..3], row[5], row[6], row[7]),
        (&[incident.as_str(), "firing", "acme"][..], "-", "1", "-"),
        "{}",
        table.stdout
    );

    // Acknowledged by the alert's id: the incident, by the token's sub.
    let acked = alerts(&server, &op, &["ack", &id, "-o", "table"]).await;
    let line = ok(&acked);
    assert!(
        line.starts_with(&format!(
            "incident {incident} (acme, firing, 1 alert) acknowledged by test "
        )) && line.ends_with(": its repeats stop\n"),
        "{line}"
    );
    let again = json_of(&alerts(&server, &op, &["ack", &incident]).await);
    assert_eq!(again["incident"]["acknowledged_by"], "test");
    assert_eq!(
        again["incident"],
        rest(&server, &op, "/api/v1/alerts/incidents").await["incidents"][0]
    );
    assert_eq!(
        refused(&alerts(&server, &op, &["ack", "alt_nope"]).await),
        "error: incident or alert `alt_nope` does not exist\n"
    );
    let acked_alert = wait_for(&server, "acme_backlog", "firing").await;
    assert_eq!(acked_alert["acknowledged_by"], "test");

    // A silence of the rule: the operator's is acme's.
    let silence = json_of(
        &alerts(
            &server,
            &op,
            &[
                "silence",
                "--rule",
                "acme_backlog",
                "--for",
                "1h",
                "--reason",
                "a drill",
            ],
        )
        .await,
    );
    let sid = silence["id"].as_str().unwrap().to_string();
    assert_eq!(
        (
            &silence["rule_id"],
            &silence["tenant_id"],
            &silence["reason"],
            &silence["created_by"]
        ),
        (
            &json!("acme_backlog"),
            &json!("acme"),
            &json!("a drill"),
            &json!("test")
        )
    );
    let silences = rest(&server, &op, "/api/v1/alerts/silences").await;
    assert_eq!(silences["silences"], json!([silence]));
    assert_eq!(
        json_of(&alerts(&server, &op, &["silences"]).await),
        silences
    );
    let csv = alerts(&server, &op, &["silences", "-o", "csv"]).await;
    assert_eq!(
        ok(&csv),
        csv_of(
            &[
                "id",
                "rule_id",
                "tenant_id",
                "starts_at",
                "ends_at",
                "reason",
                "created_by"
            ],
            silences["silences"].as_array().unwrap()
        )
    );
    let table = alerts(&server, &op, &["silences", "-o", "table"]).await;
    let lines: Vec<&str> = ok(&table).lines().collect();
    assert_eq!(lines[0], "1 running silence", "{}", table.stdout);
    let row = cells(lines[4]);
    assert_eq!(
        (row[0], row[1], row[2], row[5], row[6]),
        (sid.as_str(), "acme_backlog", "acme", "test", "a drill"),
        "{}",
        table.stdout
    );
    let line = alerts(
        &server,
        &op,
        &["silence", "--tenant", "acme", "--for", "30m", "-o", "table"],
    )
    .await;
    assert!(
        ok(&line).starts_with("silenced every rule of tenant acme for 30m, until ")
            && line.stdout.contains("Z: sil_"),
        "{line:?}"
    );

    // Unsilenced: a line, then nothing left of it.
    let ended = alerts(&server, &op, &["unsilence", &sid, "-o", "table"]).await;
    assert_eq!(ok(&ended), format!("ended silence {sid}\n"));
    assert_eq!(
        refused(&alerts(&server, &op, &["unsilence", &sid]).await),
        format!("error: silence `{sid}` does not exist\n")
    );
    let left = json_of(&alerts(&server, &op, &["silences", "--all"]).await);
    assert_eq!(left["silences"].as_array().unwrap().len(), 1, "{left}");

    // Disabled, the rule's alert resolves; the listing shows it so.
    ok(&alerts(&server, &op, &["rules", "disable", "acme_backlog"]).await);
    let resolved = wait_for(&server, "acme_backlog", "resolved").await;
    assert_eq!(resolved["id"], id.as_str());
    let table = alerts(
        &server,
        &op,
        &[
            "list", "--state", "resolved", "--tenant", "acme", "-o", "table",
        ],
    )
    .await;
    let lines: Vec<&str> = ok(&table).lines().collect();
    assert!(
        lines[0].starts_with("1 resolved alert of tenant acme since "),
        "{}",
        table.stdout
    );
    let row = cells(lines[4]);
    assert_eq!(
        (row[0], row[7] != "-", row[8], row[10]),
        ("resolved", true, "✓", id.as_str()),
        "{}",
        table.stdout
    );
    let none = alerts(
        &server,
        &op,
        &["list", "--state", "pending", "--since", "1h", "-o", "table"],
    )
    .await;
    assert!(
        ok(&none).starts_with("no pending alerts since ") && none.stdout.ends_with(" (1h ago)\n"),
        "{none:?}"
    );
}

/// No server at the address: exit 3, nothing on stdout.
#[tokio::test]
async fn a_stopped_server_is_exit_3() {
    let (mut server, _dir) = server().await;
    let admin = server.admin();
    server.stop().await;
    let run = alerts(&server, &admin, &["incidents"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (3, ""), "{run:?}");
    assert!(run.stderr.contains("cannot reach the server"), "{run:?}");
}

/// `--watch` when piped: one JSON line per refresh, and Ctrl-C ends it
/// with 0.
#[tokio::test]
async fn list_watch_prints_a_line_per_refresh_until_ctrl_c() {
    let (server, _dir) = server().await;
    let mut child = tokio::process::Command::new(bin())
        .args(["alerts", "--watch", "100ms", "--server", &server.url])
        .args(["--token", &server.admin()])
        .env_clear_pytake()
        .env("XDG_CONFIG_HOME", server.path().join("no-config"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("a refresh in time")
            .unwrap()
            .expect("a line");
        let body: Value = serde_json::from_str(&line).unwrap();
        assert!(body["alerts"].is_array(), "{line}");
    }
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("exit after Ctrl-C")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
