//! `pytake config show`: every setting with where its value came from,
//! secrets masked, as text and JSON.

use crate::support::pytake_env;

#[tokio::test]
async fn show_says_where_each_value_came_from_and_masks_secrets() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("pytake.toml");
    let f = file.to_str().unwrap();
    std::fs::write(
        &file,
        "[gateway]\nrate_limit = 50\n\n[auth]\nsecret = \"hunter2\"\n",
    )
    .unwrap();
    let data = home.path().join("data");
    let d = data.to_str().unwrap();
    // PYTAKE_CONFIG names the file; a variable beats the file; a flag beats both.
    let run = pytake_env(
        &["--data-dir", d, "config", "show", "--origin"],
        home.path(),
        &[
            ("PYTAKE_CONFIG", f),
            ("PYTAKE_IDLE_TIMEOUT", "1m"),
            ("PYTAKE_DATA_DIR", "/not/this"),
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!run.stdout.contains("hunter2"));
    let store = format!("\"sqlite://{d}/pytake.db\"");
    let pad = |s: String| format!("{s:<w$}", w = 6 + store.len());
    let expected = [
        format!("# config file: {f}"),
        String::new(),
        "[server]".into(),
        pad(format!("data_dir = \"{d}\"")) + "  # --data-dir",
        pad("listen = \"127.0.0.1:8080\"".into()) + "  # default",
        pad("log_format = \"text\"".into()) + "  # default",
        pad("rate_limit_admin = 60000".into()) + "  # default",
        pad("rate_limit_operator = 60".into()) + "  # default",
        pad("rate_limit_service = 60000".into()) + "  # default",
        pad("rate_limit_viewer = 60".into()) + "  # default",
        pad("trusted_proxies = []".into()) + "  # default",
        String::new(),
        "[auth]".into(),
        pad("secret = \"********\"".into()) + &format!("  # {f} line 5"),
        pad("token_leeway = \"30s\"".into()) + "  # default",
        pad("token_max_lifetime = \"366d\"".into()) + "  # default",
        pad("# secret_file unset".into()) + "  # default",
        pad("# token_audience unset".into()) + "  # default",
        pad("# token_issuer unset".into()) + "  # default",
        String::new(),
        "[gateway]".into(),
        pad("auth_timeout = \"10s\"".into()) + "  # default",
        pad("compression = true".into()) + "  # default",
        pad("idle_timeout = \"1m\"".into()) + "  # PYTAKE_IDLE_TIMEOUT",
        pad("max_frame_bytes = 65536".into()) + "  # default",
        pad("max_unauthenticated_per_address = 64".into()) + "  # default",
        pad("outbound_queue = 1024".into()) + "  # default",
        pad("ping_interval = \"25s\"".into()) + "  # default",
        pad("presence_grace = \"5s\"".into()) + "  # default",
        pad("presence_ttl = \"15s\"".into()) + "  # default",
        pad("rate_limit = 50".into()) + &format!("  # {f} line 2"),
        pad("write_stall = \"10s\"".into()) + "  # default",
        pad("# max_connections unset".into()) + "  # default",
        pad("# max_connections_per_tenant unset".into()) + "  # default",
        String::new(),
        "[store]".into(),
        pad("pool_size = 16".into()) + "  # default",
        pad(format!("url = {store}")) + "  # default",
        String::new(),
        "[bus]".into(),
        pad("url = \"memory\"".into()) + "  # default",
        String::new(),
        "[metrics]".into(),
        pad("active_window = \"1d\"".into()) + "  # default",
        pad("campaign_throttle = \"2s\"".into()) + "  # default",
        pad("push_interval = \"2s\"".into()) + "  # default",
        String::new(),
        "[queue]".into(),
        pad("batch_size = 10".into()) + "  # default",
        pad("breaker_cooldown = \"30s\"".into()) + "  # default",
        pad("breaker_threshold = 5".into()) + "  # default",
        pad("concurrency = 32".into()) + "  # default",
        pad("http_timeout = \"10s\"".into()) + "  # default",
        pad("lease = \"30s\"".into()) + "  # default",
        pad("max_attempts = 3".into()) + "  # default",
        pad("poll_interval = \"1s\"".into()) + "  # default",
        pad("retry_base = \"2s\"".into()) + "  # default",
        pad("retry_cap = \"10m\"".into()) + "  # default",
        String::new(),
        "[alerts]".into(),
        pad("evaluation_interval = \"5s\"".into()) + "  # default",
        pad("group_window = \"5m\"".into()) + "  # default",
        pad("repeat_interval = \"1h\"".into()) + "  # default",
        pad("system_tenant = \"system\"".into()) + "  # default",
        pad("# webhook_url unset".into()) + "  # default",
        String::new(),
        "[slack]".into(),
        pad("# webhook_url unset".into()) + "  # default",
        pad("# webhook_url_file unset".into()) + "  # default",
        String::new(),
        "[smtp]".into(),
        pad("from = \"pytake@localhost\"".into()) + "  # default",
        pad("port = 587".into()) + "  # default",
        pad("tls = \"starttls\"".into()) + "  # default",
        pad("to = []".into()) + "  # default",
        pad("# host unset".into()) + "  # default",
        pad("# password unset".into()) + "  # default",
        pad("# password_file unset".into()) + "  # default",
        pad("# username unset".into()) + "  # default",
        String::new(),
        "[client]".into(),
        pad("server = \"http://127.0.0.1:8080\"".into()) + "  # default",
        pad("# token unset".into()) + "  # default",
        pad("# token_file unset".into()) + "  # default",
    ]
    .join("\n")
        + "\n";
    assert_eq!(run.stdout, expected);

    let run = pytake_env(
        &["config", "show", "-o", "json"],
        home.path(),
        &[("PYTAKE_CONFIG", f)],
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["gateway"]["rate_limit"], 50);
    assert_eq!(v["auth"]["secret"], "********");
    assert_eq!(v["auth"]["token_max_lifetime"], "366d");
}

/// The alert channels' secrets, inline or from files, are masked like
/// the others; where they came from is still said.
#[tokio::test]
async fn show_masks_the_alert_channels_secrets() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("slack-url"),
        "https://hooks.slack.com/services/T0/B0/sl4ck\n",
    )
    .unwrap();
    let file = home.path().join("pytake.toml");
    let f = file.to_str().unwrap();
    std::fs::write(
        &file,
        "[alerts]\nwebhook_url = \"https://hooks.example.com/h00k?token=t0ken\"\n\n\
         [slack]\nwebhook_url_file = \"slack-url\"\n\n\
         [smtp]\nhost = \"smtp.example.com\"\nusername = \"pytake\"\npassword = \"hunter2\"\n\
         to = [\"oncall@example.com\"]\n",
    )
    .unwrap();
    let run = pytake_env(
        &["config", "show", "--origin"],
        home.path(),
        &[("PYTAKE_CONFIG", f)],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    for secret in ["sl4ck", "h00k", "t0ken", "hunter2"] {
        assert!(!run.stdout.contains(secret), "{secret}: {}", run.stdout);
    }
    let lines = |start: &str| -> Vec<String> {
        run.stdout
            .lines()
            .filter(|l| l.starts_with(start))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(
        lines("webhook_url = "),
        [
            format!("webhook_url = \"********\" # {f} line 2"),
            format!("webhook_url = \"********\" # {f} line 5"),
        ]
    );
    assert_eq!(
        lines("password = "),
        [format!("password = \"********\" # {f} line 10")]
    );
    let run = pytake_env(
        &["config", "show", "-o", "json"],
        home.path(),
        &[("PYTAKE_CONFIG", f)],
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["slack"]["webhook_url"], "********");
    assert_eq!(v["alerts"]["webhook_url"], "********");
    assert_eq!(v["smtp"]["password"], "********");
    assert_eq!(v["smtp"]["username"], "pytake");
}
