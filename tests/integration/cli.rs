//! The `pytake` binary as an operator runs it: exact output and exit codes.

use std::process::Stdio;

use pytake::protocol::Event;

use crate::support::{bin, custom, pytake, pytake_env, Options, TestServer, DEADLINE};

#[tokio::test]
async fn tail_with_no_setup_prints_json_lines_and_stops_after_count() {
    // A server with a generated secret: tail finds it in the same data dir.
    let server = TestServer::start_with(Options {
        generated_secret: true,
        ..Options::default()
    })
    .await;
    let admin = server.admin();
    let mut ids = Vec::new();
    for i in 1..=4 {
        ids.extend(server.publish(&admin, custom("acme", "dashboard", i)).await);
    }
    let dir = server.path().to_str().unwrap().to_string();
    let run = pytake(
        &[
            "--data-dir",
            &dir,
            "tail",
            "--server",
            &server.url,
            "--room",
            "dashboard",
            "--since",
            "0",
            "--count",
            "3",
            "--output",
            "json",
        ],
        server.path(),
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let events: Vec<Event> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(
        events.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids[..3].to_vec()
    );
    assert_eq!(events[0].data["n"], 1);
    assert_eq!(run.stderr, "");
}

#[tokio::test]
async fn tail_reports_problems_with_the_right_exit_code() {
    let home = tempfile::tempdir().unwrap();
    let run = pytake(
        &["tail", "--server", "http://127.0.0.1:1", "--token", "x"],
        home.path(),
    )
    .await;
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: cannot reach the server at ws://127.0.0.1:1/ws: Connection refused (os error 111); is `pytake serve` running there? (--server, PYTAKE_SERVER)\n"
    );

    let run = pytake(&["tail", "--room", "lobby"], home.path()).await;
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "error: --room: unknown room `lobby`: expected one of dashboard, conversations, campaigns, erp, ai, alerts, presence or campaign:ID, conversation:ID, user:ID\n"
    );

    let empty = home.path().join("empty");
    let run = pytake(
        &["--data-dir", empty.to_str().unwrap(), "tail"],
        home.path(),
    )
    .await;
    assert_eq!(run.code, 4);
    assert_eq!(
        run.stderr,
        format!("error: no credentials: pass --token-file or --token (PYTAKE_TOKEN_FILE, PYTAKE_TOKEN), or run where the server's data dir ({}) holds its secret (--data-dir, PYTAKE_DATA_DIR)\n", empty.display())
    );

    let server = TestServer::start().await;
    let run = pytake(
        &["tail", "--server", &server.url, "--token", "bad"],
        home.path(),
    )
    .await;
    assert_eq!(run.code, 4);
    assert_eq!(
        run.stderr,
        "error: unauthorized: token is malformed: expected three dot-separated parts \
         (header.payload.signature), found 1\n"
    );
}

#[tokio::test]
async fn serve_rejects_bad_settings_with_exit_2() {
    let home = tempfile::tempdir().unwrap();
    let run = pytake(
        &["serve", "--listen", "127.0.0.1:0", "--idle-timeout", "soon"],
        home.path(),
    )
    .await;
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "error: invalid value 'soon' for '--idle-timeout <DURATION>': `soon` is not a duration like 30s, 15m, 24h or 7d (units: ms, s, m, h, d or w)\n\nFor more information, try '--help'.\n"
    );
    // A bare port is a usage error with the address it probably meant.
    let run = pytake(&["serve", "--listen", "8080"], home.path()).await;
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "error: --listen 8080: not an address: write HOST:PORT, e.g. 127.0.0.1:8080 (0.0.0.0:8080 for every interface)\n"
    );
    // A bad variable is named as a variable, with its value.
    let run = pytake_env(
        &["serve", "--listen", "127.0.0.1:0"],
        home.path(),
        &[("PYTAKE_RATE_LIMIT", "abc")],
    )
    .await;
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "error: PYTAKE_RATE_LIMIT=abc: `abc` is not a whole number\n"
    );
    // An unknown backend is a usage error, and a password is never shown.
    let run = pytake(
        &["serve", "--store", "mysql://app:hunter2@db/x"],
        home.path(),
    )
    .await;
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "error: --store mysql://app:****@db/x: unsupported store: use one of sqlite://PATH, postgres://USER:PASSWORD@HOST:PORT/DATABASE\n"
    );
    let run = pytake_env(&["serve"], home.path(), &[("PYTAKE_BUS", "kafka://x")]).await;
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "error: PYTAKE_BUS=kafka://x: unsupported bus: use one of memory, redis://HOST:PORT\n"
    );
}

#[tokio::test]
async fn tail_prints_readable_lines_and_takes_since_as_a_duration() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let body = serde_json::json!({"event_type": "ERPCall", "tenant_id": "acme", "timestamp": "2026-01-02T03:04:05.678Z",
        "data": {"provider": "sap", "endpoint": "/orders", "response_time": 812, "success": false}});
    server.publish(&admin, body).await;
    server.publish(&admin, custom("globex", "erp", 2)).await;
    let run = pytake(
        &[
            "tail",
            "--server",
            &server.url,
            "--token",
            &admin,
            "--since",
            "1h",
            "--count",
            "2",
            "--output",
            "table",
        ],
        server.path(),
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let second = server.history("since=1").await.remove(0);
    assert_eq!(
        run.stdout,
        format!(
            "03:04:05.678  #1  acme  erp  ERPCall  endpoint=/orders  provider=sap  response_time=812  success=false\n\
             {}  #2  globex  erp  TestEvent  n=2\n",
            second.timestamp.format("%H:%M:%S%.3f")
        )
    );
}

#[tokio::test]
async fn tail_without_since_still_gets_what_happened_during_a_restart() {
    let mut server = TestServer::start().await;
    let admin = server.admin();
    server.publish(&admin, custom("acme", "erp", 0)).await;
    let child = tokio::process::Command::new(bin())
        .args([
            "tail",
            "--server",
            &server.url,
            "--token",
            &admin,
            "--count",
            "2",
            "--output",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Wait until tail is subscribed, then restart the server and publish
    // before it reconnects.
    server.wait_for_subscribers(1).await;
    server.restart().await;
    let ids: Vec<i64> = [
        server.publish(&admin, custom("acme", "erp", 1)).await[0],
        server.publish(&admin, custom("acme", "ai", 2)).await[0],
    ]
    .into();
    let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "tail exited {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Vec<i64> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Event>(l).unwrap().id)
        .collect();
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn ctrl_c_stops_tail_with_exit_0() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let mut child = tokio::process::Command::new(bin())
        .args(["tail", "--server", &server.url, "--token", &admin])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    server.wait_for_subscribers(1).await;
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
