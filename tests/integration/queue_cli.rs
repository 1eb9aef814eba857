//! `pytake queue` against a real server: `http` jobs sent to a port that
//! refuses connections go dead at their only attempt, `noop` jobs finish,
//! and the CLI's listings, stats, retries and purges are compared with
//! the REST API and with exact text; refusals print the server's reason
//! with their exit code.

use std::process::Stdio;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{bin, pytake, ClearPytake, Run, TestServer, DEADLINE};

/// Runs `pytake queue ARGS --server URL --token TOKEN`.
async fn queue(server: &TestServer, token: &str, args: &[&str]) -> Run {
    let mut all = vec!["queue"];
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

/// A local port that refuses connections for as long as the socket
/// lives: bound, never listening, so no other process can take it.
fn refusing_port() -> (tokio::net::TcpSocket, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let host = socket.local_addr().unwrap().to_string();
    (socket, host)
}

/// Enqueues a job over REST; the job as the server answered (201).
async fn enqueue(server: &TestServer, token: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/queue/jobs", server.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let job: Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "{job}");
    job
}

/// An `http` job to `host` with one attempt: dead at its first run.
fn doomed(host: &str) -> Value {
    json!({"kind": "http", "max_attempts": 1,
           "payload": {"url": format!("http://{host}/hook"), "body": {"order": 7}}})
}

/// Polls job `id` until it is `status`; the job then.
async fn wait_for(server: &TestServer, id: i64, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (code, job) = server
            .get(Some(&server.admin()), &format!("/api/v1/queue/jobs/{id}"))
            .await;
        assert_eq!(code, 200, "{job}");
        if job["status"] == status {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} never became {status}: {job}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A REST body that must be 200.
async fn rest(server: &TestServer, token: &str, path: &str) -> Value {
    let (code, body) = server.get(Some(token), path).await;
    assert_eq!(code, 200, "{path}: {body}");
    body
}

/// A job's CSV row, from its REST body.
fn csv_row(job: &Value) -> String {
    let text = |k: &str| job[k].as_str().unwrap_or("").to_string();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        job["id"].to_string(),
        text("queue"),
        text("kind"),
        job["priority"].to_string(),
        text("status"),
        job["attempts"].to_string(),
        job["max_attempts"].to_string(),
        text("run_at"),
        text("lease_expires_at"),
        text("last_error"),
        text("correlation_id"),
        text("tenant_id"),
        text("created_at"),
        text("updated_at"),
    ])
    .unwrap();
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

#[tokio::test]
async fn dead_letters_are_shown_retried_and_purged() {
    let server = TestServer::start().await;
    let op = server.operator("acme");
    // Two hosts, so that no circuit opens (5 failures in a row would).
    let (_a, host_a) = refusing_port();
    let (_b, host_b) = refusing_port();
    enqueue(&server, &op, doomed(&host_a)).await;
    enqueue(&server, &op, doomed(&host_b)).await;
    enqueue(&server, &op, json!({"kind": "noop"})).await;
    let first = wait_for(&server, 1, "dead").await;
    let second = wait_for(&server, 2, "dead").await;
    wait_for(&server, 3, "done").await;
    let error = first["last_error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with(&format!("cannot reach {host_a}: "))
            && error.ends_with("(attempt 1 of 1)"),
        "{error}"
    );

    // JSON: the API's body as sent.
    let dead = json_of(&queue(&server, &op, &["dead", "-o", "json"]).await);
    assert_eq!(
        dead,
        rest(&server, &op, "/api/v1/queue/jobs?status=dead&limit=50").await
    );
    assert_eq!(dead["jobs"].as_array().unwrap().len(), 2);
    let shown = json_of(&queue(&server, &op, &["show", "1", "-o", "json"]).await);
    assert_eq!(shown, first);

    // CSV: every field but the payload, newest first.
    let csv = queue(&server, &op, &["dead", "-o", "csv"]).await;
    assert_eq!(
        ok(&csv),
        format!(
            "id,queue,kind,priority,status,attempts,max_attempts,run_at,lease_expires_at,\
             last_error,correlation_id,tenant_id,created_at,updated_at\n{}{}",
            csv_row(&second),
            csv_row(&first)
        )
    );

    // The dead-letter table: the error clipped to its start and its cause.
    let table = queue(&server, &op, &["dead", "-o", "table"]).await;
    let lines: Vec<&str> = ok(&table).lines().collect();
    assert_eq!(lines[0], "2 dead jobs, newest first", "{}", table.stdout);
    assert!(
        lines[1].starts_with("┌────┬──────┬────────┬──────────┬─"),
        "{}",
        table.stdout
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        [
            "│", "id", "┆", "kind", "┆", "tenant", "┆", "attempts", "┆", "updated", "┆", "last",
            "error", "│"
        ]
    );
    for (line, host) in [(lines[4], &host_b), (lines[5], &host_a)] {
        assert!(
            line.starts_with("│  ")
                && line.contains(" ┆ http ┆ acme   ┆      1/1 ┆ ")
                && line.contains(&format!("┆ cannot reach {host}: … "))
                && line.ends_with("(attempt 1 of 1) │"),
            "{line}"
        );
    }
    assert_eq!(lines.len(), 7, "{}", table.stdout);

    // `show` has the whole error.
    let show = queue(&server, &op, &["show", "1", "-o", "table"]).await;
    assert!(
        ok(&show).starts_with("job 1 · http · dead\n"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout
            .contains(&format!("│ last error    ┆ {error} │")),
        "{}",
        show.stdout
    );

    // Only dead jobs can be retried; a missing job is named.
    let done = queue(&server, &op, &["retry", "3"]).await;
    assert_eq!(
        (done.code, done.stdout.as_str(), done.stderr.as_str()),
        (
            1,
            "",
            "error: job 3 is done, not dead: only dead jobs can be retried\n"
        )
    );
    let missing = queue(&server, &op, &["show", "99"]).await;
    assert_eq!(
        (missing.code, missing.stderr.as_str()),
        (1, "error: job `99` does not exist\n")
    );

    // One dead job again, then every one.
    let retried = queue(&server, &op, &["retry", "1", "-o", "table"]).await;
    assert_eq!(
        ok(&retried),
        "job 1 (http) is pending again, with 1 attempt\n"
    );
    wait_for(&server, 1, "dead").await;
    let all = queue(&server, &op, &["retry", "--all-dead"]).await;
    assert_eq!(ok(&all), "{\"retried\":2}\n");
    wait_for(&server, 1, "dead").await;
    wait_for(&server, 2, "dead").await;
    let none = queue(
        &server,
        &op,
        &["retry", "--all-dead", "--kind", "noop", "-o", "table"],
    )
    .await;
    assert_eq!(ok(&none), "no dead noop jobs to retry\n");

    // The stats: 1 done, 5 failed runs (2, then 1, then 2), two circuits
    // closed (3 and 2 failures, under the threshold of 5).
    let stats = json_of(&queue(&server, &op, &["stats"]).await);
    assert_eq!(
        (
            &stats["tenant_id"],
            &stats["depth"],
            &stats["dead_by_kind"],
            &stats["oldest_pending_seconds"]
        ),
        (
            &json!("acme"),
            &json!({"pending": 0, "running": 0, "retrying": 0, "done": 1, "dead": 2}),
            &json!({"http": 2}),
            &json!(0.0)
        ),
        "{stats}"
    );
    let mut hosts = [host_a.clone(), host_b.clone()];
    hosts.sort();
    assert_eq!(
        stats["circuits"],
        json!([{"host": hosts[0], "state": "closed"}, {"host": hosts[1], "state": "closed"}])
    );
    let table = queue(&server, &op, &["stats", "-o", "table"]).await;
    let screen = ok(&table);
    for line in [
        "tenant acme · rates over the last 5m\n",
        "│ depth          ┆ 0 pending · 0 running · 0 retrying · 1 done · 2 dead │\n",
        "│ error rate     ┆ 83.33%  ",
        "│ oldest pending ┆ none due  ",
        "│ dead by kind   ┆ http 2  ",
        "│ host (this node's circuits) ┆ state  │\n",
    ] {
        assert!(screen.contains(line), "{line:?} in\n{screen}");
    }
    assert!(
        screen.contains(&format!("│ {:<27} ┆ closed │\n", hosts[0])),
        "{screen}"
    );

    // Listings page: the next page's command keeps the filters.
    let list = queue(
        &server,
        &op,
        &["list", "--kind", "http", "--limit", "1", "-o", "table"],
    )
    .await;
    let out = ok(&list);
    assert!(
        out.starts_with("1 job (kind http), newest first\n"),
        "{out}"
    );
    assert!(
        out.ends_with("older ones: pytake queue list --kind http --limit 1 --before 2\n"),
        "{out}"
    );
    let page = json_of(
        &queue(
            &server,
            &op,
            &["list", "--kind", "http", "--limit", "1", "--before", "2"],
        )
        .await,
    );
    assert_eq!(
        page,
        rest(
            &server,
            &op,
            "/api/v1/queue/jobs?kind=http&limit=1&before=2"
        )
        .await
    );
    assert_eq!(page["jobs"][0]["id"], 1);

    // Purge: nothing is an hour old yet; then every done job.
    let kept = json_of(
        &queue(
            &server,
            &op,
            &["purge", "--status", "dead", "--older-than", "1h"],
        )
        .await,
    );
    assert_eq!(
        (&kept["purged"], &kept["status"]),
        (&json!(0), &json!("dead"))
    );
    let purged = queue(
        &server,
        &op,
        &[
            "purge",
            "--status",
            "done",
            "--older-than",
            "0s",
            "-o",
            "table",
        ],
    )
    .await;
    let out = ok(&purged);
    assert!(
        out.starts_with("purged 1 done job last updated before ") && out.ends_with(")\n"),
        "{out}"
    );
    let done = json_of(&queue(&server, &op, &["list", "--status", "done"]).await);
    assert_eq!(done, json!({"jobs": [], "next_before": null}));
    let table = queue(&server, &op, &["list", "--status", "done", "-o", "table"]).await;
    assert_eq!(ok(&table), "no jobs (status done)\n");
}

#[tokio::test]
async fn enqueue_runs_a_job_and_refusals_keep_their_exit_codes() {
    let server = TestServer::start().await;
    let op = server.operator("acme");

    let job = json_of(
        &queue(
            &server,
            &op,
            &["enqueue", "--kind", "noop", "--correlation-id", "smoke-1"],
        )
        .await,
    );
    // The answer reads the job back after the enqueue, and a worker may
    // already hold or have finished it.
    assert!(
        ["pending", "running", "done"].contains(&job["status"].as_str().unwrap_or("")),
        "{job}"
    );
    assert_eq!(
        (
            &job["id"],
            &job["kind"],
            &job["tenant_id"],
            &job["correlation_id"]
        ),
        (&json!(1), &json!("noop"), &json!("acme"), &json!("smoke-1"))
    );
    wait_for(&server, 1, "done").await;
    let table = queue(
        &server,
        &op,
        &[
            "enqueue",
            "--kind",
            "noop",
            "--max-attempts",
            "1",
            "-o",
            "table",
        ],
    )
    .await;
    let out = ok(&table);
    // As above: a worker may already hold or have finished the job.
    assert!(
        ["pending", "running", "done"]
            .iter()
            .any(|status| out.starts_with(&format!(
                "enqueued job 2 (noop, tenant acme): {status}, runs "
            )))
            && out.ends_with(", at most 1 attempt\n"),
        "{out}"
    );

    // What the server refuses, with its reason: exit 1.
    let bad = queue(&server, &op, &["enqueue", "--kind", "http"]).await;
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(
        bad.stderr
            .starts_with("error: server answered 422: payload: ")
            && bad.stderr.contains("missing field `url`"),
        "{bad:?}"
    );
    // Caught before any request: exit 2.
    for args in [
        &["purge", "--status", "done"][..],
        &["purge", "--status", "running", "--older-than", "1d"],
        &["show", "abc"],
        &["retry"],
        &["show", "1", "-o", "csv"],
        &["enqueue", "--kind", "noop", "--payload", "{"],
    ] {
        let usage = queue(&server, &op, args).await;
        assert_eq!(usage.code, 2, "{args:?}: {usage:?}");
    }
    // The queue is for admins and operators: a viewer is forbidden, a bad
    // token unauthorized; both exit 4.
    let viewer = queue(&server, &server.viewer("acme"), &["dead"]).await;
    assert_eq!(
        (viewer.code, viewer.stderr.as_str()),
        (
            4,
            "error: forbidden: role viewer may not use the queue: admin or operator tokens only\n"
        )
    );
    let forged = queue(&server, "not-a-token", &["stats"]).await;
    assert_eq!(forged.code, 4, "{forged:?}");
    // The admin sees every tenant's jobs.
    let stats = json_of(&queue(&server, &server.admin(), &["stats"]).await);
    assert_eq!(stats["tenant_id"], Value::Null, "{stats}");
    assert_eq!(
        stats["depth"]["done"].as_u64().unwrap()
            + stats["depth"]["pending"].as_u64().unwrap()
            + stats["depth"]["running"].as_u64().unwrap(),
        2,
        "{stats}"
    );
}

/// No server at the address: exit 3, nothing on stdout.
#[tokio::test]
async fn a_stopped_server_is_exit_3() {
    let mut server = TestServer::start().await;
    let admin = server.admin();
    server.stop().await;
    let run = queue(&server, &admin, &["dead"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (3, ""), "{run:?}");
    assert!(run.stderr.contains("cannot reach the server"), "{run:?}");
}

/// `stats --watch` when piped: one JSON line per refresh, and Ctrl-C ends
/// it with 0.
#[tokio::test]
async fn stats_watch_prints_a_line_per_refresh_until_ctrl_c() {
    let server = TestServer::start().await;
    let mut child = tokio::process::Command::new(bin())
        .args([
            "queue",
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
        assert!(body["depth"].is_object(), "{line}");
    }
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("exit after Ctrl-C")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
