//! `pytake alerts` against a real server evaluating every second: a rule
//! of acme's that always holds (`QueueDepth >= 0`, for 0s) fires at the
//! next evaluation, and the CLI's listings, acknowledgement, silences and
//! rule changes are compared with the REST API and with exact text where
//! no clock shows; refusals print the server's reason with their exit
//! code.

use std::process::Stdio;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::{bin, pytake, ClearPytake, Options, Run, TestServer, DEADLINE};

/// A server whose evaluator runs every second.
async fn server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alerts.toml");
    std::fs::write(&config, "[alerts]\nevaluation_interval = \"1s\"\n").unwrap();
    let server =
        TestServer::start_with(Options::args(&["--config", config.to_str().unwrap()])).await;
    (server, dir)
}

/// Runs `pytake alerts ARGS --server URL --token TOKEN`.
async fn alerts(server: &TestServer, token: &str, args: &[&str]) -> Run {
    let mut all = vec!["alerts"];
    all.extend(args);
    all.extend(["--server", &server.url, "--token", token]);
    pytake(&all, server.path()).await
}

/// The stdout of a run that succeeded quietly.
fn ok(run: &Run) -> &str {
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    &run.stdout
}

/// The one JSON line of a run that succeeded.
fn json_of(run: &Run) -> Value {
    let out = ok(run);
    assert_eq!(out.lines().count(), 1, "{out}");
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A run the server refused: exit 1, nothing on stdout, its reason.
fn refused(run: &Run) -> &str {
    assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{run:?}");
    &run.stderr
}

/// A REST body that must be 200.
async fn rest(server: &TestServer, token: &str, path: &str) -> Value {
    let (code, body) = server.get(Some(token), path).await;
    assert_eq!(code, 200, "{path}: {body}");
    body
}

/// The cells of a table's row, trimmed.
fn cells(line: &str) -> Vec<&str> {
    line.trim_matches(|c| c == '│' || c == ' ')
        .split('┆')
        .map(str::trim)
        .collect()
}

/// `rows` as CSV, each field from the REST body as the API wrote it
/// (strings bare, numbers and booleans as JSON, absent fields empty).
fn csv_of(fields: &[&str], rows: &[Value]) -> String {
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
const ALWAYS: &[&str] = &[
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
async fn rules_are_added_shown_toggled_and_removed() {
    let (server, dir) = server().await;
    let op = server.operator("acme");

    // Added from flags: the operator's rule is acme's; JSON is the API's.
    let mut add = ALWAYS.to_vec();
    add.extend(["-o", "json"]);
    let added = json_of(&alerts(&server, &op, &add).await);
    assert_eq!(
        added,
        json!({"id": "acme_backlog", "name": "Acme backlog", "condition": "QueueDepth",
               "comparator": ">=", "threshold": 0.0, "window": "1m", "for": "0s",
               "severity": "warning", "enabled": true, "tenant_id": "acme",
               "channels": ["websocket"]})
    );
    assert_eq!(
        added,
        rest(&server, &op, "/api/v1/alerts/rules/acme_backlog").await
    );

    // Added from a file, as a table: no clock in it, so exact.
    let file = dir.path().join("dead.json");
    std::fs::write(
        &file,
        r#"{"id": "acme_dead", "name": "Acme dead letters", "condition": "DeadLetters",
            "threshold": 10, "severity": "critical"}"#,
    )
    .unwrap();
    let table = alerts(
        &server,
        &op,
        &[
            "rules",
            "add",
            "--file",
            file.to_str().unwrap(),
            "-o",
            "table",
        ],
    )
    .await;
    assert_eq!(
        ok(&table),
        "\
added rule acme_dead · Acme dead letters · enabled
┌───────────┬─────────────┐
│           ┆ value       │
╞═══════════╪═════════════╡
│ condition ┆ DeadLetters │
│ metric    ┆ -           │
│ fires at  ┆ > 10        │
│ window    ┆ 5m          │
│ for       ┆ 1m          │
│ severity  ┆ critical    │
│ tenant    ┆ acme        │
│ channels  ┆ websocket   │
│ enabled   ┆ yes         │
└───────────┴─────────────┘
"
    );
    let show = alerts(&server, &op, &["rules", "show", "acme_dead", "-o", "table"]).await;
    assert_eq!(
        ok(&show),
        table.stdout.replacen("added rule", "rule", 1),
        "show prints what add printed"
    );

    // The listing: acme's rules and the rules for every tenant.
    let listed = rest(&server, &op, "/api/v1/alerts/rules").await;
    assert_eq!(json_of(&alerts(&server, &op, &["rules"]).await), listed);
    let rules = listed["rules"].as_array().unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "acme_backlog",
            "acme_dead",
            "cpu_usage",
            "high_failure_rate"
        ]
    );
    let csv = alerts(&server, &op, &["rules", "list", "-o", "csv"]).await;
    assert_eq!(
        ok(&csv),
        csv_of(
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
                "channels"
            ],
            rules
        )
    );
    let table = alerts(&server, &op, &["rules", "-o", "table"]).await;
    let lines: Vec<&str> = ok(&table).lines().collect();
    assert_eq!(lines[0], "4 rules", "{}", table.stdout);
    assert_eq!(
        cells(lines[4]),
        [
            "acme_backlog",
            "Acme backlog",
            "QueueDepth",
            ">= 0",
            "1m",
            "0s",
            "warning",
            "acme",
            "websocket",
            "yes"
        ]
    );
    assert_eq!(
        cells(lines[6])[..8],
        [
            "cpu_usage",
            "High CPU usage",
            "SystemResourceUsage cpu",
            "> 80",
            "5m",
            "1m",
            "warning",
            "the machine"
        ]
    );

    // Disabled, then enabled again.
    let disabled = alerts(
        &server,
        &op,
        &["rules", "disable", "acme_dead", "-o", "table"],
    )
    .await;
    assert_eq!(
        ok(&disabled),
        "rule acme_dead (Acme dead letters) is disabled: its firing alerts resolve at the next \
         evaluation\n"
    );
    let enabled = json_of(&alerts(&server, &op, &["rules", "enable", "acme_dead"]).await);
    assert_eq!(enabled["enabled"], true);
    assert_eq!(
        enabled,
        rest(&server, &op, "/api/v1/alerts/rules/acme_dead").await
    );

    // What the server refuses about a rule: its reason, naming the field,
    // exit 1.
    let wide = [
        "rules",
        "add",
        "--name",
        "Wide",
        "--condition",
        "QueueDepth",
        "--threshold",
        "1",
        "--window",
        "2h",
    ];
    assert_eq!(
        refused(&alerts(&server, &op, &wide).await),
        "error: window: must be from 1m to 1h\n"
    );
    let mut slack = ALWAYS.to_vec();
    slack.extend(["--id", "slack", "--channel", "slack"]);
    assert_eq!(
        refused(&alerts(&server, &op, &slack).await),
        "error: channels: the slack channel is not configured on this server: set [slack] \
         webhook_url\n"
    );
    std::fs::write(
        &file,
        r#"{"name": "No threshold", "condition": "QueueDepth"}"#,
    )
    .unwrap();
    assert_eq!(
        refused(
            &alerts(
                &server,
                &op,
                &["rules", "add", "--file", file.to_str().unwrap()]
            )
            .await
        ),
        "error: threshold: missing field `threshold`\n"
    );
    assert_eq!(
        refused(&alerts(&server, &op, ALWAYS).await),
        "error: alert rule `acme_backlog` already exists\n"
    );
    assert_eq!(
        refused(&alerts(&server, &op, &["rules", "show", "nope"]).await),
        "error: alert rule `nope` does not exist\n"
    );

    // Removed: a line on a terminal, nothing when piped (204 has no body).
    let removed = alerts(&server, &op, &["rules", "rm", "acme_dead", "-o", "table"]).await;
    assert_eq!(
        ok(&removed),
        "deleted rule acme_dead: its firing alerts resolve at the next evaluation, fired ones \
         stay in history\n"
    );
    assert_eq!(
        ok(&alerts(&server, &op, &["rules", "rm", "acme_backlog"]).await),
        ""
    );
    assert_eq!(
        refused(&alerts(&server, &op, &["rules", "rm", "acme_backlog"]).await),
        "error: alert rule `acme_backlog` does not exist\n"
    );

    // Caught before any request: exit 2.
    for args in [
        &["rules", "add", "--name", "x", "--condition", "QueueDepth"][..],
        &[
            "rules",
            "add",
            "--name",
            "x",
            "--condition",
            "Nope",
            "--threshold",
            "1",
        ],
        &["rules", "add", "--file", "/nonexistent/rule.json"],
        &["rules", "show"],
        &["rules", "-o", "yaml"],
        &["list", "--since", "yesterday"],
        &["silence", "--for", "1h"],
        &["ack", "x", "-o", "csv"],
    ] {
        let usage = alerts(&server, &op, args).await;
        assert_eq!(usage.code, 2, "{args:?}: {usage:?}");
    }
    // Changes are for admins and operators: a viewer is forbidden, a bad
    // token unauthorized; both exit 4.
    let viewer = alerts(&server, &server.viewer("acme"), ALWAYS).await;
    assert_eq!(
        (viewer.code, viewer.stderr.as_str()),
        (
            4,
            "error: forbidden: role viewer may not change alerting: admin or operator tokens \
             only\n"
        )
    );
    assert_eq!(alerts(&server, "not-a-token", &["rules"]).await.code, 4);
}

/// `rules add --file -` reads the rule from stdin.
#[tokio::test]
async fn a_rule_is_read_from_stdin() {
    let (server, _dir) = server().await;
    let mut child = tokio::process::Command::new(bin())
        .args([
            "alerts",
            "rules",
            "add",
            "--file",
            "-",
            "--server",
            &server.url,
        ])
        .args(["--token", &server.admin()])
        .env_clear_pytake()
        .env("XDG_CONFIG_HOME", server.path().join("no-config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(br#"{"name": "AI tokens", "condition": "AiTokenUsage", "threshold": 100000}"#)
        .await
        .unwrap();
    drop(stdin);
    let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("exit in time")
        .unwrap();
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).as_ref()
        ),
        (Some(0), ""),
        "{out:?}"
    );
    let rule: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&rule["id"], &rule["tenant_id"]),
        (&json!("ai_tokens"), &Value::Null)
    );
}

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
