//! Test helpers: a real `pytake serve` process on port 0 with a temporary
//! data dir (`TestServer`), a WebSocket client that speaks the protocol
//! (`TestWs`), and runs of the binary (`pytake`). No fixed ports, no sleeps:
//! every wait is for a condition, with a deadline.

#![allow(dead_code)]

pub mod metrics;
pub mod peer;
pub mod services;
pub mod smtp;
pub mod sse;
pub mod ws;

pub use ws::TestWs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use pytake::auth::Keys;
use pytake::config::Settings;
use pytake::protocol::frames::Subscribed;
use pytake::protocol::{Event, Role, Subscription};
use pytake::server::clock::Clock;
use pytake::server::{Server, ServerOptions};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// How long any single wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// The pytake binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pytake")
}

/// A `pytake serve` process, or a server in the test's own runtime
/// ([`TestServer::in_process`]). Dropping it stops the server.
pub struct TestServer {
    run: Option<Serving>,
    pub addr: SocketAddr,
    pub url: String,
    pub data_dir: Arc<TempDir>,
    pub secret: Option<String>,
    args: Vec<String>,
    /// The settings of an in-process server, to start it again.
    settings: Option<Settings>,
}

/// How the server runs.
enum Serving {
    Process(Child),
    /// On the test's runtime, reading tokio's clock: a test that calls
    /// `tokio::time::pause()` and `advance` moves the server's time.
    InProcess {
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<Result<(), pytake::server::ServerError>>,
    },
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A process is killed by `kill_on_drop`.
        if let Some(Serving::InProcess { shutdown, .. }) = &self.run {
            shutdown.cancel();
        }
    }
}

/// Options for starting a server.
#[derive(Clone, Default)]
pub struct Options {
    /// Extra `serve` flags.
    pub args: Vec<String>,
    /// Let the server generate its secret instead of passing `--secret`.
    pub generated_secret: bool,
}

impl Options {
    pub fn args(args: &[&str]) -> Options {
        Options {
            args: args.iter().map(|a| a.to_string()).collect(),
            generated_secret: false,
        }
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> TestServer {
        let data_dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let secret =
            (!options.generated_secret).then(|| format!("test-secret-{:0>32}", std::process::id()));
        TestServer::launch(data_dir, secret, "127.0.0.1:0".into(), options.args).await
    }

    async fn launch(
        data_dir: Arc<TempDir>,
        secret: Option<String>,
        listen: String,
        args: Vec<String>,
    ) -> TestServer {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.path().join("server.log"))
            .expect("log file");
        let mut cmd = Command::new(bin());
        cmd.arg("--data-dir")
            .arg(data_dir.path())
            .arg("serve")
            .arg("--listen")
            .arg(&listen)
            .args(&args)
            .env_clear_pytake()
            .env("XDG_CONFIG_HOME", data_dir.path().join("no-config"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        // As an operator should: in the environment, where `ps` does not show it.
        if let Some(secret) = &secret {
            cmd.env("PYTAKE_SECRET", secret);
        }
        let mut child = cmd.spawn().expect("spawn pytake serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("server did not print its address in time")
            .expect("read stdout")
            .unwrap_or_else(|| panic!("server exited early; log:\n{}", read_log(data_dir.path())));
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_string();
        let addr: SocketAddr = url.trim_start_matches("http://").parse().expect("address");
        TestServer {
            run: Some(Serving::Process(child)),
            addr,
            url,
            data_dir,
            secret,
            args,
            settings: None,
        }
    }

    /// A server on this test's runtime, on port 0 with a temporary data
    /// dir, its time read from tokio's clock. `configure` edits its
    /// settings (defaults otherwise, like `pytake serve` with no flags).
    pub async fn in_process(configure: impl FnOnce(&mut Settings)) -> TestServer {
        let data_dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let secret = format!("test-secret-{:0>32}", std::process::id());
        let mut settings = Settings::default();
        settings.server.data_dir = Some(data_dir.path().to_path_buf());
        settings.auth.secret = Some(secret.clone());
        configure(&mut settings);
        TestServer::serve_in_process(data_dir, secret, settings, "127.0.0.1:0").await
    }

    async fn serve_in_process(
        data_dir: Arc<TempDir>,
        secret: String,
        settings: Settings,
        listen: &str,
    ) -> TestServer {
        let options = ServerOptions::new(settings.clone()).clock(Clock::tokio());
        let server = Server::new(options).await.expect("server opens");
        let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let shutdown = server.shutdown_token();
        let task = tokio::spawn(server.listen(listener));
        TestServer {
            run: Some(Serving::InProcess { shutdown, task }),
            addr,
            url: format!("http://{addr}"),
            data_dir,
            secret: Some(secret),
            args: Vec::new(),
            settings: Some(settings),
        }
    }

    /// The secret tokens are signed with.
    pub fn keys(&self) -> Keys {
        let secret = match &self.secret {
            Some(s) => s.clone(),
            None => {
                pytake::auth::read_local_secret(self.data_dir.path()).expect("generated secret")
            }
        };
        Keys::new(secret.as_bytes())
    }

    pub fn token(&self, tenant: Option<&str>, role: Role) -> String {
        self.keys()
            .mint_for("test", tenant, role, Duration::from_secs(3600))
    }

    pub fn admin(&self) -> String {
        self.token(None, Role::Admin)
    }

    pub fn operator(&self, tenant: &str) -> String {
        self.token(Some(tenant), Role::Operator)
    }

    pub fn viewer(&self, tenant: &str) -> String {
        self.token(Some(tenant), Role::Viewer)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Opens a WebSocket to `path` (e.g. `/ws`, `/ws/dashboard?token=...`).
    pub async fn ws(&self, path: &str) -> TestWs {
        TestWs::connect(&self.ws_url(path)).await
    }

    /// Opens `/ws`, authenticates with `token` and subscribes.
    pub async fn subscribed(&self, token: &str, sub: Subscription) -> (TestWs, Subscribed) {
        let mut ws = self.ws("/ws").await;
        ws.auth(token).await;
        let subscribed = ws.subscribe(sub).await;
        (ws, subscribed)
    }

    /// POSTs a JSON body to `/api/v1/events`.
    pub async fn post(
        &self,
        token: Option<&str>,
        body: impl Into<String>,
        key: Option<&str>,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .post(format!("{}/api/v1/events", self.url))
            .header("content-type", "application/json")
            .body(body.into());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let resp = req.send().await.expect("POST");
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// POSTs events that must be accepted; returns their ids.
    pub async fn publish(&self, token: &str, body: Value) -> Vec<i64> {
        let (status, reply) = self.post(Some(token), body.to_string(), None).await;
        assert!(
            status == 201 || status == 200,
            "publish failed: {status} {reply}"
        );
        reply["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
    }

    /// GETs a path with a token; returns status and JSON.
    pub async fn get(&self, token: Option<&str>, path_and_query: &str) -> (u16, Value) {
        let mut req = reqwest::Client::new().get(format!("{}{path_and_query}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("GET");
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    }

    /// Any request with a JSON body (or none); returns status and JSON.
    pub async fn call(
        &self,
        method: reqwest::Method,
        token: Option<&str>,
        path_and_query: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req =
            reqwest::Client::new().request(method, format!("{}{path_and_query}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    }

    /// Every event of the store (admin), for counting what was stored.
    pub async fn history(&self, query: &str) -> Vec<Event> {
        let (status, body) = self
            .get(
                Some(&self.admin()),
                &format!("/api/v1/events?limit=1000&{query}"),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_value(body["events"].clone()).expect("events")
    }

    /// Waits until `n` WebSocket connections are authenticated (per `/health`).
    pub async fn wait_for_subscribers(&self, n: u64) {
        self.wait_for_health("/websocket/authenticated", n).await;
    }

    /// Waits until the `/health` value at `pointer` (a JSON pointer) is `n`.
    pub async fn wait_for_health(&self, pointer: &str, n: u64) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while self.get(None, "/health").await.1.pointer(pointer) != Some(&Value::from(n)) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "/health {pointer} never reached {n}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Sends SIGTERM and waits for the process to exit (in process: stops
    /// the server the same way and waits for its drain).
    pub async fn stop(&mut self) -> ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        let mut child = match self.run.take().expect("running") {
            Serving::Process(child) => child,
            Serving::InProcess { shutdown, task } => {
                shutdown.cancel();
                let stopped = tokio::time::timeout(DEADLINE, task)
                    .await
                    .expect("server did not stop in time")
                    .expect("server task");
                return ExitStatus::from_raw(if stopped.is_ok() { 0 } else { 1 << 8 });
            }
        };
        let pid = nix::unistd::Pid::from_raw(child.id().expect("pid") as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        tokio::time::timeout(DEADLINE, child.wait())
            .await
            .expect("server did not exit after SIGTERM")
            .expect("wait")
    }

    /// Kills the process outright (SIGKILL), as a crash or the OOM killer
    /// would: no drain, no goodbye to its clients.
    pub async fn kill(&mut self) {
        let Some(Serving::Process(mut child)) = self.run.take() else {
            panic!("kill is for a server process");
        };
        child.start_kill().expect("SIGKILL");
        tokio::time::timeout(DEADLINE, child.wait())
            .await
            .expect("killed server did not exit")
            .expect("wait");
    }

    /// Sends a signal to the server process: `SIGSTOP` and `SIGCONT` make
    /// it stall as a long GC pause or a frozen VM would.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let Some(Serving::Process(child)) = &self.run else {
            panic!("signals are for a server process");
        };
        let pid = nix::unistd::Pid::from_raw(child.id().expect("pid") as i32);
        nix::sys::signal::kill(pid, signal).expect("signal");
    }

    /// Stops the server and starts it again on the same address and data dir.
    pub async fn restart(&mut self) {
        let status = self.stop().await;
        assert!(status.success(), "server exited with {status}");
        self.restart_stopped().await;
    }

    /// Starts a stopped server again on the same address and data dir.
    pub async fn restart_stopped(&mut self) {
        assert!(self.run.is_none(), "still running");
        let listen = self.addr.to_string();
        if let Some(settings) = self.settings.clone() {
            let secret = self.secret.clone().expect("in-process secret");
            let next =
                TestServer::serve_in_process(self.data_dir.clone(), secret, settings, &listen)
                    .await;
            *self = next;
            return;
        }
        let next = TestServer::launch(
            self.data_dir.clone(),
            self.secret.clone(),
            listen,
            self.args.clone(),
        )
        .await;
        *self = next;
    }

    pub fn log(&self) -> String {
        read_log(self.data_dir.path())
    }

    pub fn path(&self) -> &Path {
        self.data_dir.path()
    }
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
}

/// A subscription to some rooms.
pub fn rooms(rooms: &[&str]) -> Subscription {
    Subscription {
        rooms: rooms.iter().map(|r| r.to_string()).collect(),
        ..Subscription::default()
    }
}

/// A custom event body for a tenant and room, with a marker in its data.
pub fn custom(tenant: &str, room: &str, n: i64) -> Value {
    serde_json::json!({"event_type": "TestEvent", "tenant_id": tenant, "rooms": [room], "data": {"n": n}})
}

/// A valid MessageSent body.
pub fn message_sent(tenant: &str, id: &str) -> Value {
    serde_json::json!({"event_type": "MessageSent", "tenant_id": tenant,
        "data": {"message_id": id, "to": "+5511999999999", "status": "sent"}})
}

/// Output of a finished `pytake` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the binary to completion with a clean environment for pytake.
pub async fn pytake(args: &[&str], home: &Path) -> Run {
    pytake_env(args, home, &[]).await
}

/// [`pytake`] with extra environment variables.
pub async fn pytake_env(args: &[&str], home: &Path, env: &[(&str, &str)]) -> Run {
    let output = tokio::time::timeout(
        DEADLINE * 2,
        Command::new(bin())
            .args(args)
            .env_clear_pytake()
            .env("XDG_CONFIG_HOME", home.join("no-config"))
            .env("XDG_DATA_HOME", home.join("no-data"))
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("pytake did not finish in time")
    .expect("run pytake");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Repository root, for the checked-in generated files.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Drops every `PYTAKE_*` variable of the developer's shell from a child's
/// environment, so exact-output tests see only what they set.
pub trait ClearPytake {
    fn env_clear_pytake(&mut self) -> &mut Self;
}

impl ClearPytake for Command {
    fn env_clear_pytake(&mut self) -> &mut Self {
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PYTAKE_") {
                self.env_remove(key);
            }
        }
        self
    }
}
