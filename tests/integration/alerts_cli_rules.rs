//! `pytake alerts rules` against a real server: rules added from flags,
//! a file and stdin, shown, listed, toggled and removed, compared with the
//! REST API and with exact text; the server's refusals print its reason
//! (naming the field for a 400) and exit 1, usage errors exit 2, a viewer
//! exits 4.

use std::process::Stdio;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::alerts_cli::{alerts, cells, csv_of, json_of, ok, refused, rest, server, ALWAYS};
use crate::support::{bin, ClearPytake, DEADLINE};

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
