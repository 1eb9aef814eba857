//! `pytake loadtest` as CI runs it: a spawned server, thresholds, exit codes,
//! the JSON summary and JUnit output.

use serde_json::Value;

use crate::support::{pytake, TestServer};

fn small<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "loadtest",
        "--output",
        "json",
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
    let args = small(&["--server", server.url.as_str(), "--token", admin.as_str()]);
    let run = pytake(&args, home.path()).await;
    assert_eq!(run.code, 0, "{run:?}");
    let r: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(r["deliveries"]["lost"], 0);
    assert_eq!(r["deliveries"]["received"], 1000);

    // A viewer token cannot publish the load: exit 4.
    let viewer = server.viewer("loadtest-0");
    let args = small(&["--server", server.url.as_str(), "--token", viewer.as_str()]);
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
        &["loadtest", "--server", "http://127.0.0.1:1", "--token", "x"],
        home.path(),
    )
    .await;
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.stderr, "error: cannot reach the server at http://127.0.0.1:1/: Connection refused (os error 111); is `pytake serve` running there? (--server, PYTAKE_SERVER)\n");

    let server = TestServer::start().await;
    let run = pytake(
        &["loadtest", "--server", &server.url, "--token", "nonsense"],
        home.path(),
    )
    .await;
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: unauthorized: token is malformed: expected three dot-separated parts \
         (header.payload.signature), found 1\n"
    );

    // Several nodes: --spawn starts one, and each node is given once.
    let run = pytake(
        &["loadtest", "--spawn", "--node", "http://127.0.0.1:1"],
        home.path(),
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: --node cannot be used with --spawn: the spawned server is a single node (SQLite and \
         the in-process bus), so no other node sees its events; start the nodes with \
         `pytake serve --store postgres://... --bus redis://...` and give them as --server and --node\n"
    );
    let run = pytake(
        &[
            "loadtest",
            "--server",
            "http://127.0.0.1:1",
            "--node",
            "http://127.0.0.1:1/",
        ],
        home.path(),
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: --node http://127.0.0.1:1/ is already a target: give each node once (the first target is --server)\n"
    );
    let run = pytake(&["loadtest", "--node", "127.0.0.1:1"], home.path()).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("invalid value '127.0.0.1:1' for '--node <URL>'"),
        "{}",
        run.stderr
    );
    // The token minted from this machine's secret is not sent to a node
    // elsewhere: exit 4, before any connection.
    let secret = server.secret.clone().unwrap();
    let run = crate::support::pytake_env(
        &[
            "loadtest",
            "--server",
            &server.url,
            "--node",
            "http://192.0.2.1:8080",
        ],
        home.path(),
        &[("PYTAKE_SECRET", secret.as_str())],
    )
    .await;
    assert_eq!(run.code, 4, "{run:?}");
    assert!(
        run.stderr.starts_with(
            "error: no token for http://192.0.2.1:8080/: a token minted from this machine's secret \
             is only sent to a server on this machine"
        ),
        "{}",
        run.stderr
    );
    // A node that does not answer stops the run before any load: exit 3.
    let run = pytake(
        &[
            "loadtest",
            "--server",
            &server.url,
            "--token",
            &server.admin(),
            "--node",
            "http://127.0.0.1:1",
        ],
        home.path(),
    )
    .await;
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr
            .starts_with("error: cannot reach the server at http://127.0.0.1:1/"),
        "{}",
        run.stderr
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

/// The CSV header: the JSON summary's paths, then one column per threshold.
const CSV_HEADER: &str = "valid,interrupted,config.server,config.model,config.connections,config.ramp_s,\
config.rate,config.duration_s,config.rooms,config.tenants,config.payload_bytes,config.publishers,\
connections.established,connections.failed,connections.time_to_connect_all_s,\
events.published,events.publish_failed,events.accepted_per_s,events.published_for_s,\
events.ack_latency_ms.p50,events.ack_latency_ms.p99,\
deliveries.expected,deliveries.received,deliveries.lost,deliveries.duplicated,deliveries.per_second,\
latency_ms.samples,latency_ms.p50,latency_ms.p90,latency_ms.p99,latency_ms.p99_9,latency_ms.max,latency_ms.mean,\
errors,server_memory.per_connection_bytes,generator.max_schedule_lag_ms,generator.backpressure_ms,\
config.nodes,nodes.0.url,nodes.0.connections.established,nodes.0.connections.failed,\
nodes.0.events.published,nodes.0.events.publish_failed,nodes.0.deliveries.expected,\
nodes.0.deliveries.received,nodes.0.deliveries.lost,nodes.0.deliveries.duplicated,\
nodes.0.deliveries.per_second,\
threshold loss==0,threshold p99<1s";

#[tokio::test]
async fn csv_output_is_one_header_and_one_row() {
    let home = tempfile::tempdir().unwrap();
    let run = pytake(
        &[
            "loadtest",
            "--output",
            "csv",
            "--spawn",
            "--connections",
            "2",
            "--rate",
            "20",
            "--duration",
            "1s",
            "--threshold",
            "loss==0",
            "--threshold",
            "p99<1s",
        ],
        home.path(),
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert_eq!(lines[0], CSV_HEADER);
    let row: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(row.len(), CSV_HEADER.split(',').count(), "{}", lines[1]);
    assert_eq!(&row[..2], ["true", "false"]);
    assert_eq!(&row[3..5], ["closed", "2"]);
    // 20 events to 2 subscribers of the one room.
    assert_eq!(&row[21..25], ["40", "40", "0", "0"]);
    // One node: the run's own figures.
    let node = CSV_HEADER
        .split(',')
        .position(|c| c == "config.nodes")
        .unwrap();
    assert_eq!(
        &row[node..node + 10],
        ["1", row[2], "2", "0", "20", "0", "40", "40", "0", "0"]
    );
    assert_eq!(&row[row.len() - 2..], ["ok", "ok"]);
}

#[tokio::test]
async fn help_shows_examples_and_the_exit_codes() {
    let home = tempfile::tempdir().unwrap();
    let run = pytake(&["loadtest", "--help"], home.path()).await;
    assert_eq!(run.code, 0, "{run:?}");
    let examples = run.stdout.find("Examples:").expect("an Examples section");
    assert_eq!(
        &run.stdout[examples..],
        "Examples:
  # CI gate: a throwaway server; fail the job on loss or slow deliveries
  pytake loadtest --spawn --connections 1000 --rate 500 --duration 30s \\
      --threshold 'loss==0' --threshold 'p99<50ms' --junit loadtest.xml

  # Against a running server (token from PYTAKE_TOKEN), one CSV row per run
  pytake loadtest --server https://rt.example.com --output csv \\
      --connections 200 --rate 100 --duration 1m | tail -n +2 >> runs.csv

  # Three nodes of one cluster (one PostgreSQL, one Redis): connections and
  # publishers taken in turn, every event owed to its room's subscribers on
  # every node; the summary has each node's share
  pytake loadtest --server http://10.0.0.1:8080 --node http://10.0.0.2:8080 \\
      --node http://10.0.0.3:8080 --connections 3000 --rate 300 --duration 1m \\
      --threshold 'loss==0' --threshold 'duplicates==0'

Exit status:
  0    the run finished and every threshold was met
  1    the run failed, or is invalid (the generator fell behind its schedule)
  2    usage error
  3    cannot reach the server
  4    the token was refused
  99   a threshold was not met
  130  interrupted by SIGINT (Ctrl-C); 143 by SIGTERM: 128 + the signal, as shells
       report it. The summary so far is printed and a spawned server stopped;
       a second signal stops at once, without a summary.
"
    );
}

/// Two servers that are not one cluster (each its own SQLite and in-process
/// bus): the events posted to one never reach the other's subscribers, and
/// the run says so, per node, instead of counting each node on its own.
#[tokio::test]
async fn nodes_that_share_nothing_show_as_loss_on_each() {
    let (a, b) = (TestServer::start().await, TestServer::start().await);
    let home = tempfile::tempdir().unwrap();
    let admin = a.admin();
    let args = small(&[
        "--server",
        a.url.as_str(),
        "--node",
        b.url.as_str(),
        "--token",
        admin.as_str(),
        "--publishers",
        "2",
        "--threshold",
        "loss==0",
    ]);
    let run = pytake(&args, home.path()).await;
    assert_eq!(run.code, 99, "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "{}/ runs the in-process bus: its subscribers get only the events posted to it",
            b.url
        )),
        "{}",
        run.stderr
    );
    let r: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(r["config"]["nodes"], 2);
    let nodes = r["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["url"], format!("{}/", a.url));
    assert_eq!(nodes[1]["url"], format!("{}/", b.url));
    let mut published = 0;
    for node in nodes {
        // 20 connections taken in turn, 2 publishers: one each.
        assert_eq!(node["connections"]["established"], 10, "{node}");
        let posted = node["events"]["published"].as_u64().unwrap();
        published += posted;
        // Each node's 10 subscribers are owed every event and get only
        // those posted to their own node.
        assert_eq!(node["deliveries"]["expected"], 500, "{node}");
        assert_eq!(node["deliveries"]["received"], posted * 10, "{node}");
        assert_eq!(node["deliveries"]["lost"], (50 - posted) * 10, "{node}");
    }
    assert_eq!(published, 50);
    assert_eq!(r["deliveries"]["expected"], 1000);
    assert_eq!(r["deliveries"]["lost"], 500);
}

#[tokio::test]
async fn spawn_ignores_the_callers_settings() {
    let home = tempfile::tempdir().unwrap();
    let secret = home.path().join("secret");
    std::fs::write(&secret, "the-operators-own\n").unwrap();
    let config = home.path().join("config.toml");
    std::fs::write(&config, "[gateway]\nrate_limit = 1\n").unwrap();
    // A secret file and a config file of the caller's reach neither the
    // spawned server (two secrets would be refused) nor its limits.
    let run = crate::support::pytake_env(
        &small(&["--spawn"]),
        home.path(),
        &[
            ("PYTAKE_SECRET_FILE", secret.to_str().unwrap()),
            ("PYTAKE_CONFIG", config.to_str().unwrap()),
            ("PYTAKE_STORE", "sqlite:///nonexistent/dir/x.db"),
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let r: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(r["deliveries"]["lost"], 0);
}
