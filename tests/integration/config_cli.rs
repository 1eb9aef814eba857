//! `pytake config show|check|init`, the layers as a user meets them, and
//! each command offering only the options it uses.

use crate::support::{bin, pytake, pytake_env, ClearPytake, Options, TestServer, DEADLINE};

#[tokio::test]
async fn init_writes_a_commented_file_once_and_check_accepts_it() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("etc/pytake.toml");
    let f = file.to_str().unwrap();
    let run = pytake(&["config", "init", f], home.path()).await;
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, format!("wrote {f}\n").as_str(), "")
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text, pytake::config::init_text());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "it may come to hold secrets");
    }

    let run = pytake(&["config", "init", f], home.path()).await;
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        format!("error: {f} exists; not overwriting it (move it away first, or write elsewhere: pytake config init FILE)\n")
    );

    let run = pytake(&["config", "check", f], home.path()).await;
    assert_eq!((run.code, run.stdout), (0, format!("{f}: ok\n")));

    let run = pytake(&["config", "init", "-"], home.path()).await;
    assert_eq!((run.code, run.stdout), (0, text));
}

#[tokio::test]
async fn check_gives_the_line_and_exit_2() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("config.toml");
    let f = file.to_str().unwrap();
    std::fs::write(&file, "[server]\nlistne = \"0.0.0.0:80\"\n").unwrap();
    let run = pytake(&["config", "check", f], home.path()).await;
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        format!("error: {f} line 2: unknown key `listne` in [server], expected one of `listen`, `data_dir`, `log_format`, `rate_limit_viewer`, `rate_limit_operator`, `rate_limit_admin`, `rate_limit_service`, `trusted_proxies`\n")
    );
    std::fs::write(&file, "[server]\nlisten = \"8080\"\n").unwrap();
    let run = pytake(&["config", "check", f], home.path()).await;
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        format!("error: {f} line 2: not an address: write HOST:PORT, e.g. 127.0.0.1:8080 (0.0.0.0:8080 for every interface)\n")
    );
    // `serve` refuses the same file the same way, before binding anything.
    let run = pytake(&["--config", f, "serve"], home.path()).await;
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        format!("error: {f} line 2: not an address: write HOST:PORT, e.g. 127.0.0.1:8080 (0.0.0.0:8080 for every interface)\n")
    );
    let run = pytake(&["config", "check"], home.path()).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .starts_with("error: no config file to check: none at "),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn each_command_shows_and_takes_only_its_options() {
    let home = tempfile::tempdir().unwrap();
    let help = pytake(&["serve", "--help"], home.path()).await.stdout;
    for absent in ["--server", "--token ", "--output"] {
        assert!(!help.contains(absent), "serve --help lists {absent}");
    }
    assert!(help.contains("--rate-limit <N>"));
    let words = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("per WebSocket connection [env: PYTAKE_RATE_LIMIT] [default: 100]"),
        "{help}"
    );
    let help = pytake(&["tail", "--help"], home.path()).await.stdout;
    assert!(help.contains("--server <URL>") && help.contains("--token-file <FILE>"));
    assert!(!help.contains("--rate-limit"));

    // `tail` has no CSV form, so it does not offer one.
    let run = pytake(&["tail", "--output", "csv"], home.path()).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.starts_with(
            "error: invalid value 'csv' for '--output <FORMAT>'\n  [possible values: table, json]\n"
        ),
        "{}",
        run.stderr
    );
    let run = pytake(&["serve", "--server", "http://x"], home.path()).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .starts_with("error: unexpected argument '--server' found"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn log_format_json_writes_one_object_per_line() {
    let mut server = TestServer::start_with(Options::args(&["--log-format", "json"])).await;
    server.stop().await;
    let log = server.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let serving = lines
        .iter()
        .find(|l| l["fields"]["message"] == "pytake serving")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(serving["level"], "INFO");
    assert!(serving["fields"]["addr"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(
        serving["fields"]["alert_channels"],
        "slack off, email off, webhook off"
    );
}

/// `serve`'s stderr from start to a clean stop, with `flags` before `serve`.
async fn serve_stderr(flags: &[&str]) -> String {
    let home = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(bin())
        .args(flags)
        // A dir the server makes itself (0700), so no warning about its mode.
        .args(["--data-dir", home.path().join("data").to_str().unwrap()])
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_clear_pytake()
        .env_remove("RUST_LOG")
        .env("XDG_CONFIG_HOME", home.path().join("no-config"))
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let first = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.starts_with("listening on "), "{first}");
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stderr).unwrap()
}

#[tokio::test]
async fn quiet_and_verbose_move_the_log_level() {
    let normal = serve_stderr(&[]).await;
    assert!(normal.contains("pytake serving"), "{normal}");
    assert!(!normal.contains("DEBUG"), "{normal}");
    assert_eq!(serve_stderr(&["-q"]).await, "");
    let verbose = serve_stderr(&["-v"]).await;
    assert!(verbose.contains("DEBUG"), "{verbose}");
}

#[tokio::test]
async fn color_follows_the_flag_then_the_conventions() {
    let server = TestServer::start().await;
    let admin = server.admin();
    server
        .publish(&admin, crate::support::custom("acme", "dashboard", 1))
        .await;
    let home = tempfile::tempdir().unwrap();
    let tail = |extra: &'static [&'static str], env: &'static [(&'static str, &'static str)]| {
        let url = server.url.clone();
        let admin = admin.clone();
        let home = home.path().to_path_buf();
        async move {
            let mut args = vec!["tail", "--server", &url, "--token", &admin];
            args.extend(["--since", "0", "--count", "1", "--output", "table"]);
            args.extend(extra);
            let run = pytake_env(&args, &home, env).await;
            assert_eq!(run.code, 0, "{run:?}");
            run.stdout.contains("\x1b[")
        }
    };
    // Piped, the default is plain; the helper sets NO_COLOR=1.
    assert!(!tail(&[], &[]).await);
    assert!(
        tail(&["--color", "always"], &[]).await,
        "the flag beats NO_COLOR"
    );
    assert!(tail(&[], &[("NO_COLOR", ""), ("CLICOLOR_FORCE", "1")]).await);
    assert!(
        !tail(
            &["--color", "never"],
            &[("NO_COLOR", ""), ("CLICOLOR_FORCE", "1")]
        )
        .await
    );
}

#[tokio::test]
async fn an_address_in_use_is_named_with_the_flag_to_change_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let run = pytake(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "serve",
            "--listen",
            &addr,
        ],
        home.path(),
    )
    .await;
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        format!(
            "error: cannot listen on {addr}: Address already in use (os error 98); another process has it \
             (another `pytake serve`?): stop it, or choose another address with --listen or PYTAKE_LISTEN\n"
        )
    );
}

#[tokio::test]
async fn a_command_reads_only_the_variables_of_its_settings() {
    let home = tempfile::tempdir().unwrap();
    // A bad serve setting does not stop the client tools or the help...
    let bad = [("PYTAKE_RATE_LIMIT", "abc"), ("PYTAKE_LISTEN", "8080")];
    let run = pytake_env(&["completions", "bash"], home.path(), &bad).await;
    assert_eq!(run.code, 0, "{run:?}");
    let run = pytake_env(&["serve", "--help"], home.path(), &bad).await;
    assert_eq!(run.code, 0, "{run:?}");
    let run = pytake_env(&["config", "init", "-"], home.path(), &bad).await;
    assert_eq!(run.code, 0, "{run:?}");
    // ...and a flag excuses a bad variable of the same setting: what
    // stops this serve is its own bad --listen, not PYTAKE_RATE_LIMIT.
    let run = pytake_env(
        &["serve", "--rate-limit", "5", "--listen", "8080"],
        home.path(),
        &[("PYTAKE_RATE_LIMIT", "abc")],
    )
    .await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.starts_with("error: --listen 8080: "),
        "{}",
        run.stderr
    );
    // An empty variable is unset, for every setting.
    let run = pytake_env(
        &["config", "show", "-o", "json"],
        home.path(),
        &[
            ("PYTAKE_CONFIG", ""),
            ("PYTAKE_RATE_LIMIT", ""),
            ("PYTAKE_LOG_FORMAT", ""),
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    // A secret in the environment is never printed by --help.
    let run = pytake_env(
        &["serve", "--help"],
        home.path(),
        &[("PYTAKE_SECRET", "hunter2")],
    )
    .await;
    assert!(!run.stdout.contains("hunter2"));
}

#[tokio::test]
async fn relative_paths_in_a_config_file_are_relative_to_it() {
    let home = tempfile::tempdir().unwrap();
    let etc = home.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("secret"), "s3cret\n").unwrap();
    let file = etc.join("pytake.toml");
    std::fs::write(&file, "[auth]\nsecret_file = \"secret\"\n").unwrap();
    // Checked from elsewhere: the path is the file's neighbour.
    let run = pytake(&["config", "check", file.to_str().unwrap()], home.path()).await;
    assert_eq!(run.code, 0, "{run:?}");
    let run = pytake(
        &[
            "--config",
            file.to_str().unwrap(),
            "config",
            "show",
            "--origin",
        ],
        home.path(),
    )
    .await;
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("secret ="))
        .unwrap();
    assert!(
        line.ends_with(&format!("# {} line 2", file.display())),
        "{line}"
    );
}

#[tokio::test]
async fn clients_read_their_token_from_a_file() {
    let server = TestServer::start().await;
    let admin = server.admin();
    server
        .publish(&admin, crate::support::custom("acme", "dashboard", 7))
        .await;
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("admin.jwt");
    std::fs::write(&file, format!("{admin}\n")).unwrap();
    let args = [
        "tail",
        "--server",
        &server.url,
        "--since",
        "0",
        "--no-follow",
        "--output",
        "json",
    ];
    let run = pytake_env(
        &args,
        home.path(),
        &[("PYTAKE_TOKEN_FILE", file.to_str().unwrap())],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.lines().count(), 1, "{run:?}");
    let mut with_flag = args.to_vec();
    with_flag.extend(["--token-file", file.to_str().unwrap()]);
    let run = pytake(&with_flag, home.path()).await;
    assert_eq!(run.code, 0, "{run:?}");
    // A token given both ways on one layer is a question, not a guess.
    with_flag.extend(["--token", &admin]);
    let run = pytake(&with_flag, home.path()).await;
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "error: --token and --token-file: both `client.token` and `client.token_file` are set: give one (the file keeps it out of argv and the environment)\n"
    );
}

#[tokio::test]
async fn secrets_too_weak_to_sign_with_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let run = pytake_env(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ],
        home.path(),
        &[("PYTAKE_SECRET", "hunter2")],
    )
    .await;
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "error: cannot start the server: the configured secret is 7 bytes; HS256 needs at least 32: \
         make one with `openssl rand -hex 32` and give it with --secret-file or PYTAKE_SECRET_FILE\n"
    );
    // A minted admin token is never sent to another machine.
    let run = pytake_env(
        &["tail", "--server", "https://rt.example.com"],
        home.path(),
        &[("PYTAKE_SECRET", &"x".repeat(32))],
    )
    .await;
    assert_eq!(run.code, 4);
    assert_eq!(
        run.stderr,
        "error: no token for https://rt.example.com: a token minted from this machine's secret is only sent \
         to a server on this machine; pass --token-file or --token (PYTAKE_TOKEN_FILE, PYTAKE_TOKEN)\n"
    );
}
