//! `pytake status` and the build information behind it (`--version`,
//! `/health`), against a real server: exact output, with only what varies
//! from run to run (uptime, memory, ping time, the rate, the temp dir)
//! replaced by named stand-ins (`<uptime>`, `<rate>`).

use std::collections::BTreeSet;

use pytake::build_info;
use serde_json::Value;

use crate::support::{custom, pytake, rooms, Options, TestServer};

/// Column where values start on the status screen (`connections` + 2).
const VALUE_COLUMN: usize = 13;

/// Replaces the parts of a status screen that vary between runs with
/// `<stand-ins>`, each by an explicit rule, so the rest compares exactly.
fn normalize(screen: &str, server: &TestServer) -> String {
    let mut out = String::new();
    for line in screen.lines() {
        let (key, value) = line.split_at(VALUE_COLUMN.min(line.len()));
        let value = match key.trim_end() {
            "uptime" => "<uptime>".to_string(),
            "memory" => "<mib> MiB".to_string(),
            "version" => value
                .replace(build_info::REVISION, "<rev>")
                .replace(build_info::BUILD_DATE, "<date>"),
            "store" => {
                let (before, ping) = value.split_once("(ping ").expect("store ping");
                assert!(ping.ends_with(" ms)"), "{line}");
                format!("{before}(ping <ms> ms)").replace(server.path().to_str().unwrap(), "<data>")
            }
            "events" => {
                let (rate, rest) = value.split_once("/s over the last ").expect("events rate");
                rate.parse::<f64>().expect("a rate");
                // The window is the seconds up so far, at most 10.
                let (window, rest) = rest.split_once("s,").expect("events window");
                assert!(window.parse::<u64>().expect("a window") <= 10, "{line}");
                format!("<rate>/s over the last <n>s,{rest}")
            }
            _ => value.to_string(),
        };
        out.push_str(key);
        out.push_str(&value);
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn status_shows_one_screen_on_a_real_server() {
    // A generated secret: status mints its token from the same data dir, as
    // on the machine that runs `pytake serve`.
    let server = TestServer::start_with(Options {
        generated_secret: true,
        ..Options::default()
    })
    .await;
    let admin = server.admin();
    for i in 1..=3 {
        server.publish(&admin, custom("acme", "erp", i)).await;
    }
    let (_ws, _) = server
        .subscribed(&server.viewer("acme"), rooms(&["dashboard", "erp"]))
        .await;
    let dir = server.path().to_str().unwrap().to_string();
    let run = pytake(
        &[
            "--data-dir",
            &dir,
            "status",
            "--server",
            &server.url,
            "--output",
            "table",
        ],
        server.path(),
    )
    .await;
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    assert_eq!(
        normalize(&run.stdout, &server),
        format!(
            "\
server       {}/
status       ok
version      {} (rev <rev>, built <date>)
uptime       <uptime>
store        ok  sqlite://<data>/pytake.db (ping <ms> ms)
bus          ok  memory
connections  1 (1 authenticated)
rooms        2
events       <rate>/s over the last <n>s, 3 since start, newest #3
long polls   0
memory       <mib> MiB
token        accepted
",
            server.url,
            build_info::VERSION
        )
    );
}

/// Every key of a JSON value, as `/`-joined paths.
fn keys(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let Value::Object(map) = value {
        for (k, v) in map {
            let path = format!("{prefix}/{k}");
            keys(v, &path, out);
            out.insert(path);
        }
    }
}

#[tokio::test]
async fn status_json_is_the_health_body_plus_server_and_token() {
    let server = TestServer::start().await;
    let admin = server.admin();
    server.publish(&admin, custom("acme", "erp", 1)).await;
    let run = pytake(
        &[
            "status",
            "--server",
            &server.url,
            "--token",
            &admin,
            "--output",
            "json",
        ],
        server.path(),
    )
    .await;
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    assert_eq!(run.stdout.lines().count(), 1, "one JSON object on one line");
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let mut found = BTreeSet::new();
    keys(&report, "", &mut found);
    let expected = [
        "/alerts",
        "/alerts/evaluating",
        "/alerts/last_evaluation",
        "/build_date",
        "/bus",
        "/caps",
        "/caps/connections",
        "/caps/max_connections",
        "/caps/max_connections_per_tenant",
        "/caps/max_unauthenticated_per_address",
        "/caps/refused",
        "/caps/refused/max_connections",
        "/caps/refused/max_connections_per_tenant",
        "/caps/refused/max_unauthenticated_per_address",
        "/caps/tenants",
        "/caps/unauthenticated",
        "/components",
        "/components/bus",
        "/components/bus/kind",
        "/components/bus/status",
        "/components/bus/url",
        "/components/store",
        "/components/store/kind",
        "/components/store/latency_ms",
        "/components/store/status",
        "/components/store/url",
        "/events",
        "/events/per_second",
        "/events/total",
        "/events/window_seconds",
        "/last_event_id",
        "/long_polls",
        "/process",
        "/process/rss_bytes",
        "/revision",
        "/server",
        "/status",
        "/store",
        "/system",
        "/system/cpu_usage",
        "/system/memory_usage",
        "/system/queue_depth",
        "/system/rss_bytes",
        "/system/store_pool",
        "/system/store_pool/idle",
        "/system/store_pool/in_use",
        "/system/store_pool/max",
        "/system/store_pool/size",
        "/system/uptime_seconds",
        "/system/websocket_connections",
        "/token",
        "/uptime_seconds",
        "/version",
        "/websocket",
        "/websocket/authenticated",
        "/websocket/rooms",
        "/websocket/slow_consumers_closed",
        "/websocket/total",
    ];
    assert_eq!(found, expected.iter().map(|k| k.to_string()).collect());
    assert_eq!(report["server"], format!("{}/", server.url));
    assert_eq!(
        (&report["status"], &report["token"]),
        (&Value::from("ok"), &Value::from("accepted"))
    );
    assert_eq!(
        (&report["revision"], &report["build_date"]),
        (
            &Value::from(build_info::REVISION),
            &Value::from(build_info::BUILD_DATE)
        )
    );
    assert_eq!(report["events"]["total"], 1);
    // The seconds up so far, at most 10: a server up for 4 s says 4.
    assert!(report["events"]["window_seconds"].as_u64().unwrap() <= 10);
    assert_eq!(
        report["components"]["store"]["url"],
        format!("sqlite://{}/pytake.db", server.path().display())
    );

    // `/health` itself: the same body, without the client's two keys.
    let (status, health) = server.get(None, "/health").await;
    assert_eq!(status, 200);
    let mut direct = BTreeSet::new();
    keys(&health, "", &mut direct);
    found.remove("/server");
    found.remove("/token");
    assert_eq!(direct, found);
}

#[tokio::test]
async fn status_needs_no_credentials_and_reports_a_refused_token_with_4() {
    let server = TestServer::start().await;
    let home = tempfile::tempdir().unwrap();
    let empty = home.path().join("no-secret-here");
    let run = pytake(
        &[
            "--data-dir",
            empty.to_str().unwrap(),
            "status",
            "--server",
            &server.url,
            "--output",
            "json",
        ],
        home.path(),
    )
    .await;
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["token"], "none");

    let run = pytake(
        &[
            "status",
            "--server",
            &server.url,
            "--token",
            "not-a-jwt",
            "--output",
            "json",
        ],
        home.path(),
    )
    .await;
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: the server refused the token given (--token, PYTAKE_TOKEN): unauthorized: token is malformed: expected three dot-separated parts (header.payload.signature), found 1\n"
    );
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (&report["status"], &report["token"]),
        (&"ok".into(), &"refused".into())
    );
}

#[tokio::test]
async fn status_of_an_unreachable_server_exits_3_and_says_what_to_check() {
    let home = tempfile::tempdir().unwrap();
    let run = pytake(&["status", "--server", "http://127.0.0.1:1"], home.path()).await;
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "error: cannot reach the server at http://127.0.0.1:1/: Connection refused (os error 111); \
         is `pytake serve` running there? (--server, PYTAKE_SERVER)\n"
    );

    let run = pytake(&["status", "--output", "csv"], home.path()).await;
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            2,
            "error: invalid value 'csv' for '--output <FORMAT>'\n  [possible values: table, json]\n\nFor more information, try '--help'.\n"
        )
    );
}

#[tokio::test]
async fn status_help_ends_with_examples_and_exit_codes() {
    let home = tempfile::tempdir().unwrap();
    let run = pytake(&["status", "--help"], home.path()).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.ends_with(
            "\
Examples:
  pytake status                                   the server on this machine
  pytake status --server https://rt.example.com   another server
  pytake status --output json | jq .events        the /health body, for scripts

Exit status:
  0  the server is ok
  1  it is degraded (the store or the bus fails or is slow) or shutting down
  3  it cannot be reached
  4  it refused the token (from --token, PYTAKE_TOKEN or the local secret)
"
        ),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn version_names_the_revision_and_build_date() {
    let home = tempfile::tempdir().unwrap();
    let short = pytake(&["-V"], home.path()).await;
    assert_eq!(
        (short.code, short.stdout),
        (
            0,
            format!(
                "pytake {} (rev {}, built {})\n",
                build_info::VERSION,
                build_info::REVISION,
                build_info::BUILD_DATE
            )
        )
    );
    let long = pytake(&["--version"], home.path()).await;
    assert_eq!(
        (long.code, long.stdout),
        (
            0,
            format!(
                "pytake {} (rev {}, built {})\n{}\ntarget: {}\nprofile: {}\n",
                build_info::VERSION,
                build_info::REVISION,
                build_info::BUILD_DATE,
                build_info::RUSTC_VERSION,
                build_info::TARGET,
                build_info::PROFILE
            )
        )
    );
}
