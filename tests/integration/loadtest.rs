//! `pytake loadtest` as CI runs it: a spawned server, thresholds, exit codes,
//! the JSON summary and JUnit output.

use serde_json::Value;

use crate::support::{pytake, TestServer};

fn small<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--output",
        "json",
        "loadtest",
        "--connections",
        "20",
        "--rate",
        "50",
        "--duration",
        "1s",
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test]
async fn spawn_runs_a_clean_test_and_reports_json() {
    let home = tempfile::tempdir().unwrap();
    let junit = home.path().join("junit.xml");
    let mut args = small(&[
        "--spawn",
        "--rooms",
        "2",
        "--tenants",
        "2",
        "--threshold",
        "loss==0",
    ]);
    args.extend(["--junit", junit.to_str().unwrap()]);
    let run = pytake(&args, home.path()).await;
    assert_eq!(run.code, 0, "{run:?}");
    let r: Value = serde_json::from_str(&run.stdout).expect("one JSON summary");
    assert_eq!(r["schema"], "pytake.loadtest/v1");
    assert_eq!(r["valid"], true);
    assert_eq!(r["connections"]["established"], 20);
    assert_eq!(r["connections"]["failed"], 0);
    assert_eq!(r["events"]["published"], 50);
    // 20 connections over 4 groups (2 tenants x 2 rooms), 50 events over the same 4.
    assert_eq!(r["deliveries"]["expected"], 250);
    assert_eq!(r["deliveries"]["received"], 250);
    assert_eq!(r["deliveries"]["lost"], 0);
    assert_eq!(r["deliveries"]["duplicated"], 0);
    assert_eq!(r["latency_ms"]["samples"], 250);
    assert!(r["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    // One POST per event at this rate, each acknowledged after its commit.
    assert_eq!(r["events"]["ack_latency_ms"]["samples"], 50);
    assert!(r["events"]["ack_latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(r["server_memory"]["rss_after_bytes"].as_u64().unwrap() > 0);
    assert_eq!(
        r["thresholds"],
        serde_json::json!([{"threshold": "loss==0", "actual": 0.0, "ok": true}])
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"<testsuite name="pytake loadtest" tests="2" failures="0""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<testcase classname="pytake.loadtest" name="loss==0"/>"#),
        "{xml}"
    );
}

#[tokio::test]
async fn unmet_thresholds_exit_99_and_are_named() {
    let home = tempfile::tempdir().unwrap();
    let run = pytake(
        &small(&[
            "--spawn",
            "--threshold",
            "p99<0.001ms",
            "--threshold",
            "loss==0",
        ]),
        home.path(),
    )
    .await;
    assert_eq!(run.code, 99, "{run:?}");
    assert!(
        run.stderr
            .starts_with("error: thresholds not met: p99<0.001ms (was "),
        "{}",
        run.stderr
    );
    let r: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(r["thresholds"][0]["ok"], false);
    assert_eq!(r["thresholds"][1]["ok"], true);
}

#[tokio::test]
async fn an_open_model_run_accounts_for_every_delivery() {
    let home = tempfile::tempdir().unwrap();
    let run = pytake(
        &small(&["--spawn", "--arrival-rate", "40", "--threshold", "loss==0"]),
        home.path(),
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let r: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(r["config"]["model"], "open (40/s)");
    assert_eq!(r["deliveries"]["lost"], 0);
    assert_eq!(r["deliveries"]["expected"], r["deliveries"]["received"]);
}

#[tokio::test]
async fn against_a_running_server_with_a_token() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let home = tempfile::tempdir().unwrap();
    let mut args = vec!["--server", server.url.as_str(), "--token", admin.as_str()];
    args.extend(small(&[]));
    let run = pytake(&args, home.path()).await;
    assert_eq!(run.code, 0, "{run:?}");
    let r: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(r["deliveries"]["lost"], 0);
    assert_eq!(r["deliveries"]["received"], 1000);

    // A viewer token cannot publish the load: exit 4.
    let viewer = server.viewer("loadtest-0");
    let mut args = vec!["--server", server.url.as_str(), "--token", viewer.as_str()];
    args.extend(small(&[]));
    let run = pytake(&args, home.path()).await;
    assert_eq!(run.code, 4, "{run:?}");
    assert!(
        run.stderr
            .starts_with("error: unauthorized: publishing refused (403)"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn bad_input_gets_the_documented_exit_codes() {
    let home = tempfile::tempdir().unwrap();
    let run = pytake(&["loadtest", "--threshold", "p98<5ms"], home.path()).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("`p98<5ms`: unknown metric `p98`"),
        "{}",
        run.stderr
    );

    let run = pytake(
        &["--server", "http://127.0.0.1:1", "--token", "x", "loadtest"],
        home.path(),
    )
    .await;
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.stderr, "error: cannot reach the server at http://127.0.0.1:1/: Connection refused (os error 111)\n");

    let server = TestServer::start().await;
    let run = pytake(
        &["--server", &server.url, "--token", "nonsense", "loadtest"],
        home.path(),
    )
    .await;
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: unauthorized: token is malformed: expected three dot-separated parts \
         (header.payload.signature), found 1\n"
    );

    let run = pytake(&["loadtest", "--connections", "100000000"], home.path()).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.starts_with("error: --connections 100000000 needs about 100000064 open files, but this process may open at most"), "{}", run.stderr);
    assert!(
        run.stderr.contains("raise it with `ulimit -n 100000064`"),
        "{}",
        run.stderr
    );
}
