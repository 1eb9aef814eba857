//! `pytake metrics` and `pytake export` against a real server: exact
//! figures for a known set of events, exports read back and compared with
//! the API, and exports that fail leaving nothing at `-o FILE`.

use std::path::Path;
use std::process::Stdio;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::support::{bin, message_sent, pytake, ClearPytake, TestServer, DEADLINE};

fn campaign(event: &str, extra: Value) -> Value {
    let mut data = json!({"campaign_id": "CAMP-1", "event": event});
    data.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"event_type": "CampaignUpdate", "tenant_id": "acme", "data": data})
}

/// acme's events: 3 messages sent, 2 received, 1 failed, and campaign
/// CAMP-1 (10 contacts) with 5 sends and 3 failures (2 of one error);
/// globex's: 2 messages sent. Returns how many are acme's.
async fn post_known_events(server: &TestServer) -> usize {
    let admin = server.admin();
    let mut acme = vec![
        message_sent("acme", "m1"),
        message_sent("acme", "m2"),
        message_sent("acme", "m3"),
        json!({"event_type": "MessageReceived", "tenant_id": "acme",
               "data": {"from": "+5511988887777", "message": "oi"}}),
        json!({"event_type": "MessageReceived", "tenant_id": "acme",
               "data": {"from": "+5511988887777", "message": "tudo bem?"}}),
        json!({"event_type": "MessageFailed", "tenant_id": "acme",
               "data": {"message_id": "m4", "error": "timeout"}}),
        campaign(
            "campaign_created",
            json!({"total_contacts": 10, "name": "Launch"}),
        ),
        campaign("campaign_started", json!({})),
    ];
    for i in 0..5 {
        acme.push(campaign("message_sent", json!({"contact": i})));
    }
    for error in ["invalid number", "invalid number", "blocked"] {
        acme.push(campaign("message_failed", json!({"error": error})));
    }
    let count = acme.len();
    server.publish(&admin, Value::Array(acme)).await;
    let head = server
        .publish(
            &admin,
            json!([message_sent("globex", "g1"), message_sent("globex", "g2")]),
        )
        .await[1];
    // The figures follow the bus: wait until they are all counted.
    crate::dashboard::counted(server, &admin, "?tenant_id=acme", head).await;
    count
}

/// Runs `pytake ARGS --server URL --token TOKEN`.
async fn run(server: &TestServer, token: &str, args: &[&str]) -> crate::support::Run {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--server", &server.url, "--token", token]);
    pytake(&all, server.path()).await
}

fn json_of(run: &crate::support::Run) -> Value {
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// Files left in `dir` (a temporary `.part` must not be one of them).
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn metrics_show_exact_figures_and_exports_match_the_api() {
    let server = TestServer::start().await;
    let acme_events = post_known_events(&server).await;
    let admin = server.admin();

    let overview = json_of(
        &run(
            &server,
            &admin,
            &[
                "metrics", "overview", "--tenant", "acme", "--output", "json",
            ],
        )
        .await,
    );
    let k = &overview["kpis"];
    let figures = [
        ("messages_sent", 3),
        ("messages_received", 2),
        ("messages_failed", 1),
        ("campaigns_started", 1),
        ("campaign_messages_sent", 5),
        ("campaign_messages_failed", 3),
        ("events_total", acme_events as i64),
    ];
    for (name, want) in figures {
        assert_eq!(k[name], json!(want), "{name} in {k}");
    }
    assert_eq!(k["message_failure_rate"].as_f64(), Some(25.0), "{k}");
    assert_eq!(overview["tenant_id"], "acme");

    let camp = json_of(
        &run(
            &server,
            &admin,
            &[
                "metrics", "campaign", "CAMP-1", "--tenant", "acme", "--output", "json",
            ],
        )
        .await,
    );
    let m = &camp["metrics"];
    assert_eq!(
        (
            &m["name"],
            &m["status"],
            &m["total_contacts"],
            &m["sent_count"],
            &m["error_count"],
            &m["processed"]
        ),
        (
            &json!("Launch"),
            &json!("running"),
            &json!(10),
            &json!(5),
            &json!(3),
            &json!(8)
        ),
        "{m}"
    );
    assert_eq!(m["success_rate"].as_f64(), Some(62.5), "{m}");
    let errors = &camp["performance"]["top_errors"];
    assert_eq!(errors[0]["error_message"], "invalid number", "{errors}");
    assert_eq!(errors[0]["count"], 2, "{errors}");
    assert_eq!(errors[1]["error_message"], "blocked", "{errors}");

    // The table of the same campaign, on one screen.
    let table = run(
        &server,
        &admin,
        &[
            "metrics", "campaign", "CAMP-1", "--tenant", "acme", "-o", "table",
        ],
    )
    .await;
    assert_eq!(run_code(&table), 0);
    assert!(
        table.stdout.contains("│ progress ┆ 8/10 (80.00%)"),
        "{}",
        table.stdout
    );

    // The CSV export, read back, is the API's series; retried if a minute
    // turned between the two requests.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sent.csv");
    let mut matched = false;
    for _ in 0..3 {
        let export = run(
            &server,
            &admin,
            &[
                "export",
                "--format",
                "csv",
                "--period",
                "1h",
                "--metrics",
                "messages_sent",
                "-o",
                file.to_str().unwrap(),
            ],
        )
        .await;
        assert_eq!((export.code, export.stdout.as_str()), (0, ""), "{export:?}");
        let (status, api) = server
            .get(
                Some(&admin),
                "/api/v1/dashboard/metrics?period=1h&metrics=messages_sent",
            )
            .await;
        assert_eq!(status, 200, "{api}");
        let mut reader = csv::Reader::from_path(&file).unwrap();
        assert_eq!(
            reader.headers().unwrap(),
            vec!["timestamp", "messages_sent"]
        );
        let rows: Vec<(String, f64)> = reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                (r[0].to_string(), r[1].parse().unwrap())
            })
            .collect();
        let points: Vec<(String, f64)> = api["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["timestamp"].as_str().unwrap().to_string(),
                    p["messages_sent"].as_f64().unwrap(),
                )
            })
            .collect();
        if rows.first().map(|r| &r.0) != points.first().map(|p| &p.0) {
            continue;
        }
        assert_eq!(rows, points);
        assert_eq!(rows.len(), 60);
        // Every tenant's: acme's 3 and globex's 2.
        assert_eq!(rows.iter().map(|r| r.1).sum::<f64>(), 5.0);
        matched = true;
        break;
    }
    assert!(matched, "the minute kept turning between export and API");

    // The events export: one line per event of acme's.
    let events = dir.path().join("acme.ndjson");
    let export = run(
        &server,
        &admin,
        &[
            "export",
            "events",
            "--since",
            "1h",
            "--tenant",
            "acme",
            "--format",
            "ndjson",
            "-o",
            events.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!((export.code, export.stderr.as_str()), (0, ""), "{export:?}");
    let text = std::fs::read_to_string(&events).unwrap();
    assert_eq!(text.lines().count(), acme_events);
    for line in text.lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["tenant_id"], "acme");
    }
    assert_eq!(files_in(dir.path()), ["acme.ndjson", "sent.csv"]);

    // The campaign report on stdout: one JSON document.
    let report = json_of(
        &run(
            &server,
            &admin,
            &["export", "campaign", "CAMP-1", "--tenant", "acme"],
        )
        .await,
    );
    assert_eq!(report["campaign"]["sent_count"], 5);
    assert_eq!(report["messages"].as_array().unwrap().len(), 10);
}

fn run_code(run: &crate::support::Run) -> i32 {
    assert_eq!(run.stderr, "", "{run:?}");
    run.code
}

#[tokio::test]
async fn bad_requests_print_the_servers_reason() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let unknown = run(
        &server,
        &admin,
        &["metrics", "series", "--metric", "messages_sent,bogus"],
    )
    .await;
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert!(
        unknown.stderr.starts_with(
            "error: server answered 400: metrics: unknown metric `bogus`; valid: messages_sent, "
        ),
        "{unknown:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.csv");
    let export = run(
        &server,
        &admin,
        &["export", "--metrics", "bogus", "-o", file.to_str().unwrap()],
    )
    .await;
    assert_eq!(export.code, 1, "{export:?}");
    assert!(
        export.stderr.contains("unknown metric `bogus`"),
        "{export:?}"
    );
    assert!(files_in(dir.path()).is_empty());

    // Another tenant's figures: forbidden, exit 4.
    let viewer = server.viewer("acme");
    let other = run(&server, &viewer, &["metrics", "--tenant", "globex"]).await;
    assert_eq!(other.code, 4, "{other:?}");

    // An event id is not a time: a usage error before any request.
    let id = run(&server, &admin, &["export", "events", "--since", "42"]).await;
    assert_eq!(id.code, 2, "{id:?}");
    // Nor is CSV a form of one campaign's view.
    let csv = run(&server, &admin, &["metrics", "campaign", "C", "-o", "csv"]).await;
    assert_eq!(csv.code, 2, "{csv:?}");
}

/// The server is gone before the export starts: exit 3, and an older file
/// at the path is left as it was.
#[tokio::test]
async fn an_export_from_a_stopped_server_leaves_the_old_file() {
    let mut server = TestServer::start().await;
    let admin = server.admin();
    server.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, "last week's\n").unwrap();
    let export = run(
        &server,
        &admin,
        &["export", "events", "-o", file.to_str().unwrap()],
    )
    .await;
    assert_eq!(export.code, 3, "{export:?}");
    assert!(
        export.stderr.contains("nothing was written to")
            && export.stderr.contains("cannot reach the server"),
        "{export:?}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "last week's\n");
    assert_eq!(files_in(dir.path()), ["events.ndjson"]);
}

/// A server that dies half-way: it answers 200, streams a few chunks,
/// waits until the CLI has written some to its temporary file, then
/// drops the connection without the final chunk (as a crash, or the real
/// server on a store failure, does).
#[tokio::test]
async fn an_export_that_breaks_off_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let watched = dir.path().to_path_buf();
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "the request ended early");
            request.extend_from_slice(&buf[..n]);
        }
        tcp.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
        let line = b"{\"id\":1,\"event_type\":\"MessageSent\"}\n";
        for _ in 0..3 {
            tcp.write_all(format!("{:x}\r\n", line.len()).as_bytes())
                .await
                .unwrap();
            tcp.write_all(line).await.unwrap();
            tcp.write_all(b"\r\n").await.unwrap();
        }
        tcp.flush().await.unwrap();
        // Wait for the partial file, so the break is half-way for sure.
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let partial = std::fs::read_dir(&watched).unwrap().any(|e| {
                let e = e.unwrap();
                e.file_name().to_string_lossy().ends_with(".part")
                    && e.metadata().unwrap().len() > 0
            });
            if partial {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "no partial file");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        drop(tcp);
    });
    let file = dir.path().join("out.ndjson");
    let export = pytake(
        &[
            "export",
            "events",
            "--server",
            &url,
            "--token",
            "any",
            "-o",
            file.to_str().unwrap(),
        ],
        dir.path(),
    )
    .await;
    server.await.unwrap();
    assert_eq!(export.code, 1, "{export:?}");
    assert!(
        export.stderr.starts_with(&format!(
            "error: nothing was written to {}: the export broke off after ",
            file.display()
        )),
        "{export:?}"
    );
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

/// `--watch` when piped: one JSON line per refresh, and Ctrl-C ends it
/// with 0.
#[tokio::test]
async fn watch_prints_one_line_per_refresh_until_ctrl_c() {
    let server = TestServer::start().await;
    let mut child = tokio::process::Command::new(bin())
        .args([
            "metrics",
            "--watch",
            "100ms",
            "--server",
            &server.url,
            "--token",
            &server.admin(),
        ])
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
        assert!(body["kpis"].is_object(), "{line}");
    }
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("exit after Ctrl-C")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
