//! `pytake presence` and `pytake tail --room presence` as processes
//! against a real server: the list in each format, exact but for the
//! times, and the changes as readable lines.

use std::time::Duration;

use pytake::protocol::Role;

use crate::support::{pytake, TestServer, DEADLINE};

/// `HH:MM:SS` and RFC 3339 times replaced, so outputs compare exactly.
fn untimed(text: &str) -> String {
    let shape = |s: &str, pattern: &str| {
        s.len() >= pattern.len()
            && s.bytes().zip(pattern.bytes()).all(|(c, p)| match p {
                b'9' => c.is_ascii_digit(),
                b'_' => c == b' ' || c == b'T',
                p => c == p,
            })
    };
    let mut out = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let taken = if shape(rest, "9999-99-99_99:99:99+00:00") {
            25
        } else if shape(rest, "9999-99-99_99:99:99Z") {
            20
        } else if shape(rest, "99:99:99") {
            8
        } else {
            0
        };
        if taken > 0 {
            out.push_str("TIME");
            rest = &rest[taken..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

#[tokio::test]
async fn presence_lists_online_users_as_a_table_csv_and_json() {
    let server = TestServer::start().await;
    let token = server.keys().mint_for(
        "alice",
        Some("acme"),
        Role::Operator,
        Duration::from_secs(3600),
    );
    let mut ws = server.ws("/ws").await;
    ws.auth(&token).await;
    let home = tempfile::tempdir().unwrap();
    let admin = server.admin();
    let base = [
        "presence",
        "--server",
        &server.url,
        "--token",
        &admin,
        "--tenant",
        "acme",
    ];
    // The connection counts once the server has seen it: wait for it.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let table = loop {
        let run = pytake(&[&base[..], &["--output", "table"]].concat(), home.path()).await;
        assert_eq!((run.code, run.stderr.as_str()), (0, ""));
        if run.stdout.contains("alice") || tokio::time::Instant::now() > deadline {
            break run.stdout;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        untimed(&table),
        "\
┌────────┬───────┬────────┬─────────────┬──────────────────────┐
│ TENANT ┆ USER  ┆ STATUS ┆ CONNECTIONS ┆ SINCE                │
╞════════╪═══════╪════════╪═════════════╪══════════════════════╡
│ acme   ┆ alice ┆ online ┆           1 ┆ TIME │
└────────┴───────┴────────┴─────────────┴──────────────────────┘
1 online (acme)
"
    );
    let csv = pytake(&[&base[..], &["--output", "csv"]].concat(), home.path()).await;
    assert_eq!(
        untimed(&csv.stdout),
        "tenant_id,user_id,status,connections,since\nacme,alice,online,1,TIME\n"
    );
    let json = pytake(&[&base[..], &["--output", "json"]].concat(), home.path()).await;
    let body: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(body["online_count"], 1);
    assert_eq!(body["users"][0]["user_id"], "alice");

    // Bad input: a tenant token naming another tenant, a bad tenant id.
    let run = pytake(
        &[
            "presence",
            "--server",
            &server.url,
            "--token",
            &token,
            "--tenant",
            "globex",
        ],
        home.path(),
    )
    .await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    let run = pytake(
        &["presence", "--server", &server.url, "--tenant", "a b"],
        home.path(),
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    drop(ws);
}

/// `pytake tail` of acme's `room`, readable, ending after two lines; run
/// in the background until the test awaits it.
fn tail_two(
    server: &TestServer,
    home: &tempfile::TempDir,
    room: &str,
) -> tokio::task::JoinHandle<crate::support::Run> {
    let (url, admin, path) = (server.url.clone(), server.admin(), home.path().to_owned());
    let room = room.to_string();
    tokio::spawn(async move {
        let args = [
            "tail", "--server", &url, "--token", &admin, "--room", &room, "--tenant", "acme",
            "--count", "2", "--output", "table",
        ];
        pytake(&args, &path).await
    })
}

#[tokio::test]
async fn tail_shows_joins_and_leaves_readably() {
    let server = TestServer::start().await;
    let home = tempfile::tempdir().unwrap();
    let tail = tail_two(&server, &home, "presence");
    server.wait_for_subscribers(1).await;
    let token = server.keys().mint_for(
        "alice",
        Some("acme"),
        Role::Operator,
        Duration::from_secs(3600),
    );
    let mut one = server.ws("/ws").await;
    one.auth(&token).await;
    let mut two = server.ws("/ws").await;
    two.auth(&token).await;
    let run = tokio::time::timeout(DEADLINE, tail).await.unwrap().unwrap();
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{}", run.stdout);
    assert_eq!(
        untimed(&run.stdout),
        "\
TIME presence acme alice online (1 connection, 1 online)
TIME presence acme alice online (2 connections, 1 online)
"
    );
}

/// Reads lines of a running process until `n` have come.
async fn lines_of(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    n: usize,
) -> String {
    let mut out = String::new();
    for _ in 0..n {
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("a line in time")
            .expect("stdout")
            .expect("the process is still running");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `pytake presence --watch` as a process: the list, then each join and
/// leave as it happens, until interrupted.
#[tokio::test]
async fn presence_watch_prints_the_list_then_each_change() {
    use tokio::io::AsyncBufReadExt;
    let server = crate::support::TestServer::start_with(crate::support::Options::args(&[
        "--presence-grace",
        "0s",
    ]))
    .await;
    let admin = server.admin();
    let mut child = tokio::process::Command::new(crate::support::bin())
        .args(["presence", "--server", &server.url, "--token", &admin])
        .args(["--tenant", "acme", "--watch", "--output", "table"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // An empty table, then the count.
    let mut list = String::new();
    while !list.ends_with("online (acme)\n") {
        list.push_str(&lines_of(&mut lines, 1).await);
    }
    assert!(list.contains("│ TENANT ┆ USER ┆ STATUS ┆"), "{list}");
    assert!(list.ends_with("\n0 online (acme)\n"), "{list}");
    server.wait_for_subscribers(1).await;
    let token = server.keys().mint_for(
        "alice",
        Some("acme"),
        Role::Operator,
        Duration::from_secs(3600),
    );
    let mut ws = server.ws("/ws").await;
    ws.auth(&token).await;
    drop(ws);
    assert_eq!(
        untimed(&lines_of(&mut lines, 2).await),
        "\
TIME presence acme alice online (1 connection, 1 online)
TIME presence acme alice offline (0 connections, 0 online)
"
    );
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

/// `pytake tail --room conversation:{id}` shows who is typing there.
#[tokio::test]
async fn tail_shows_typing_in_a_conversation() {
    let server = TestServer::start().await;
    let admin = server.admin();
    server
        .publish(&admin, crate::support::custom("acme", "conversation:c1", 1))
        .await;
    let home = tempfile::tempdir().unwrap();
    let tail = tail_two(&server, &home, "conversation:c1");
    server.wait_for_subscribers(1).await;
    let token = server.keys().mint_for(
        "ana",
        Some("acme"),
        Role::Operator,
        Duration::from_secs(3600),
    );
    let mut ws = server.ws("/ws").await;
    ws.auth(&token).await;
    for typing in [true, false] {
        ws.send(pytake::protocol::ClientFrame::Typing {
            conversation_id: "c1".into(),
            typing,
        })
        .await;
    }
    let run = tokio::time::timeout(DEADLINE, tail).await.unwrap().unwrap();
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{}", run.stdout);
    assert_eq!(
        untimed(&run.stdout),
        "\
TIME typing conversation:c1 ana typing
TIME typing conversation:c1 ana stopped typing
"
    );
}
