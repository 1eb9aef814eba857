//! Throwaway PostgreSQL and Redis servers for the backend tests, on free
//! loopback ports with their data in temp dirs.
//!
//! Most tests share one server of each per test process and isolate
//! themselves inside it:
//!
//! ```ignore
//! let Some(url) = Postgres::database_or_skip("my_test").await else { return };
//! let Some(redis) = Redis::shared_or_skip("my_test").await else { return };
//! ```
//!
//! `database_or_skip` hands out a fresh database each call. A shared Redis
//! is shared: use key and channel names of your own (a tenant named after
//! the test). A test that stops, restarts or flushes a server starts a
//! private one with `Postgres::start_or_skip` / `Redis::start_or_skip`.
//!
//! Where PostgreSQL or Redis is not installed (or cannot start) a test prints
//! `skipped: ...` and returns; with `CI=true` it fails instead.
//!
//! Cleanup does not depend on `Drop` (statics are never dropped, and a test
//! process can die by a signal): every server has a reaper, a `sh` child
//! blocked reading a pipe that only this process holds. When the pipe closes
//! (on drop, on exit, on a crash) the reaper stops the server and removes its
//! dir. `PR_SET_PDEATHSIG` was not used: it fires when the *thread* that
//! spawned the child ends, which for a shared server started from one
//! `#[tokio::test]` thread is the end of that test, not of the process; and
//! setting it needs `pre_exec`, which is unsafe code (forbidden here).
//!
//! PostgreSQL refuses to run as root. As root (CI, these machines), `initdb`,
//! `pg_ctl` and so `postgres` run as `nobody` through `setpriv` (else
//! `runuser`), in a temp dir chowned to `nobody`; the clients (`psql`,
//! `createdb`) connect over TCP and run as the test's user.

use std::ffi::{OsStr, OsString};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::sync::OnceCell;

use super::DEADLINE;

/// Why a service cannot be had here (not installed, cannot start).
pub type Unavailable = String;

/// A service a test may need.
#[derive(Clone, Copy, Debug)]
pub enum Service {
    Postgres,
    Redis,
    /// Python's aiosmtpd, the SMTP server of the email tests
    /// ([`super::smtp`]).
    Aiosmtpd,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Postgres => "PostgreSQL",
            Service::Redis => "Redis",
            Service::Aiosmtpd => "aiosmtpd",
        }
    }

    /// The Debian package that provides it.
    fn package(self) -> &'static str {
        match self {
            Service::Postgres => "postgresql",
            Service::Redis => "redis-server",
            Service::Aiosmtpd => "python3-aiosmtpd",
        }
    }
}

/// Whether a missing service fails the test (`CI` is `true` or `1`) rather
/// than skipping it.
pub fn strict() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true" | "1"))
}

/// The value, or — for a service that is not available — `None` after
/// printing that `test` is skipped; under `CI=true` a panic instead.
pub fn require<T>(test: &str, service: Service, result: Result<T, Unavailable>) -> Option<T> {
    let reason = match result {
        Ok(value) => return Some(value),
        Err(reason) => reason,
    };
    match verdict(strict(), test, service, &reason) {
        Ok(skip) => {
            // Straight to the process's stderr: `eprintln!` is captured by
            // the test harness and never shown for a test that passes.
            let line = format!("{skip}\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
            None
        }
        Err(failure) => panic!("{failure}"),
    }
}

/// What [`require`] does about a service that is not available, given
/// whether it is `strict`: `Ok` with the line it prints when skipping, or
/// `Err` with the message it panics with.
pub fn verdict(strict: bool, test: &str, service: Service, reason: &str) -> Result<String, String> {
    let (name, package) = (service.name(), service.package());
    if strict {
        Err(format!(
            "{test}: {name} is not available ({reason}); CI is set, so this fails instead of skipping (install {package})"
        ))
    } else {
        Ok(format!(
            "skipped: {test}: {name} is not available ({reason}); install {package}, or set CI=true to make this a failure"
        ))
    }
}

// ---------------------------------------------------------------- PostgreSQL

/// A PostgreSQL server of its own data dir and port, run by `pg_ctl`.
/// Dropping it stops the server (`-m immediate`) and removes the dir.
pub struct Postgres {
    /// The temp dir: `data/` (the cluster), `postgres.log`, the socket.
    root: PathBuf,
    port: u16,
    running: bool,
    bins: &'static PgBins,
    databases: AtomicU32,
    /// Runs `pg_ctl -m immediate stop` and removes `root` when dropped.
    _reaper: Reaper,
}

/// Where the PostgreSQL binaries are, and how to run the server's side.
struct PgBins {
    dir: PathBuf,
    user: &'static ServerUser,
}

static PG_BINS: OnceLock<Result<PgBins, Unavailable>> = OnceLock::new();
/// A cluster `initdb` made once per process, copied for each server (a copy
/// takes a fraction of an `initdb`).
static PG_TEMPLATE: OnceCell<Result<(PathBuf, Reaper), Unavailable>> = OnceCell::const_new();
static PG_SHARED: OnceCell<Result<Postgres, Unavailable>> = OnceCell::const_new();

/// The server's side of the reaper: stop the cluster, remove the dir.
const PG_REAPER: &str = r#"dir=$1; shift; "$@" >/dev/null 2>&1; rm -rf "$dir""#;

/// The PostgreSQL server shared by this test process (started on first use,
/// stopped when the process exits).
pub async fn shared_postgres() -> Result<&'static Postgres, Unavailable> {
    PG_SHARED
        .get_or_init(Postgres::start)
        .await
        .as_ref()
        .map_err(Clone::clone)
}

impl Postgres {
    /// Starts a private server: a fresh cluster (user `pytake`, trust
    /// authentication, UTF8, C locale, fsync off) on a free port.
    pub async fn start() -> Result<Postgres, Unavailable> {
        let bins = pg_bins()?;
        let template = PG_TEMPLATE
            .get_or_init(|| make_template(bins))
            .await
            .as_ref()
            .map_err(Clone::clone)?;
        let root = temp_dir("pytake-pg-", bins.user)?;
        let mut reaper_args = vec![root.clone().into_os_string()];
        reaper_args.extend(bins.stop_command(&root.join("data")));
        let reaper = Reaper::spawn(PG_REAPER, &reaper_args)?;
        let copy = Command::new("cp")
            .arg("-a")
            .arg(template.0.join("data"))
            .arg(root.join("data"))
            .output()
            .await
            .map_err(|e| format!("cp: {e}"))?;
        if !copy.status.success() {
            return Err(format!("copying the cluster: {}", output_text(&copy)));
        }
        let mut pg = Postgres {
            root,
            port: 0,
            running: false,
            bins,
            databases: AtomicU32::new(0),
            _reaper: reaper,
        };
        pg.launch(None).await?;
        Ok(pg)
    }

    /// A private server, or `None` (after saying so) where PostgreSQL is not
    /// available; under `CI=true` a panic instead.
    pub async fn start_or_skip(test: &str) -> Option<Postgres> {
        require(test, Service::Postgres, Postgres::start().await)
    }

    /// This process's shared server, or `None` as [`Postgres::start_or_skip`].
    pub async fn shared_or_skip(test: &str) -> Option<&'static Postgres> {
        require(test, Service::Postgres, shared_postgres().await)
    }

    /// The URL of a fresh database on the shared server, or `None` as
    /// [`Postgres::start_or_skip`]. What most tests want.
    pub async fn database_or_skip(test: &str) -> Option<String> {
        let pg = Postgres::shared_or_skip(test).await?;
        Some(pg.fresh_database().await)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://pytake@127.0.0.1:PORT/postgres` (the default database).
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of `database` on this server.
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://pytake@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates database `name` (letters, digits, `_`); returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "database names here are letters, digits and _: {name:?}"
        );
        let output = self
            .client("createdb")
            .arg(name)
            .output()
            .await
            .expect("run createdb");
        assert!(
            output.status.success(),
            "createdb {name}: {}",
            output_text(&output)
        );
        self.url_for(name)
    }

    /// Creates a database of a name not used before on this server; returns
    /// its URL.
    pub async fn fresh_database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed) + 1;
        self.create_database(&format!("test_{n}")).await
    }

    /// Runs `sql` in `database` with `psql`; its output unaligned, tuples
    /// only (`select 1` gives `1`). Panics when it fails.
    pub async fn psql(&self, database: &str, sql: &str) -> String {
        self.try_psql(database, sql)
            .await
            .unwrap_or_else(|e| panic!("psql {sql:?}: {e}"))
    }

    /// [`Postgres::psql`] that returns the failure (e.g. while stopped).
    pub async fn try_psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let run = self
            .client("psql")
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(database)
            .arg("-c")
            .arg(sql)
            .output();
        let output = tokio::time::timeout(DEADLINE, run)
            .await
            .map_err(|_| "psql did not finish in time".to_string())?
            .map_err(|e| format!("run psql: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout)
                .trim_end()
                .to_string())
        } else {
            Err(output_text(&output))
        }
    }

    /// Stops the server at once, as a crash would (`pg_ctl -m immediate`):
    /// connections break; the data stays, recovered on the next start.
    pub async fn stop(&mut self) {
        assert!(self.running, "PostgreSQL is not running");
        let output = self
            .bins
            .server_command(&self.root, "pg_ctl")
            .arg("-D")
            .arg(self.root.join("data"))
            .args(["-m", "immediate", "-w", "-t"])
            .arg(DEADLINE.as_secs().to_string())
            .arg("stop")
            .output()
            .await
            .expect("run pg_ctl stop");
        assert!(
            output.status.success(),
            "pg_ctl stop: {}\n{}",
            output_text(&output),
            self.log()
        );
        self.running = false;
    }

    /// Starts a stopped server again: same data, same port.
    pub async fn restart_stopped(&mut self) {
        assert!(!self.running, "PostgreSQL is still running");
        let port = self.port;
        if let Err(e) = self.launch(Some(port)).await {
            panic!("PostgreSQL did not start again on port {port}: {e}");
        }
    }

    /// [`Postgres::stop`], then [`Postgres::restart_stopped`].
    pub async fn restart(&mut self) {
        self.stop().await;
        self.restart_stopped().await;
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    /// The server's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("postgres.log")).unwrap_or_default()
    }

    /// `pg_ctl start` on `port`, or on a free port, retried on a clash: a
    /// free port is only free until someone takes it.
    async fn launch(&mut self, port: Option<u16>) -> Result<(), Unavailable> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let mut clashes = 0;
        loop {
            let try_port = match port {
                Some(p) => p,
                None => free_port()?,
            };
            let log_len = self.log().len();
            let options = format!(
                "-k {} -c listen_addresses=127.0.0.1 -p {try_port} -c fsync=off -c max_connections=200",
                shell_quote(self.root.as_os_str())
            );
            let output = self
                .bins
                .server_command(&self.root, "pg_ctl")
                .arg("-D")
                .arg(self.root.join("data"))
                .arg("-l")
                .arg(self.root.join("postgres.log"))
                .arg("-o")
                .arg(options)
                .arg("-w")
                .arg("-t")
                .arg(DEADLINE.as_secs().to_string())
                .arg("start")
                .output()
                .await
                .map_err(|e| format!("run pg_ctl: {e}"))?;
            if output.status.success() {
                self.port = try_port;
                self.running = true;
                return Ok(());
            }
            let log = self.log().get(log_len..).unwrap_or_default().to_string();
            let clash = log.contains("Address already in use");
            // A port of our choosing: pick another. Ours (a restart): wait
            // for whoever has it to let go.
            let again = match port {
                None => {
                    clashes += 1;
                    clashes < 10
                }
                Some(_) => tokio::time::Instant::now() < deadline,
            };
            if clash && again {
                if port.is_some() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
            return Err(format!(
                "pg_ctl start on port {try_port}: {}; log: {}",
                output_text(&output),
                log.trim()
            ));
        }
    }

    /// A client binary pointed at this server, clean of the caller's `PG*`.
    fn client(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.bins.client(name));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                cmd.env_remove(key);
            }
        }
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "pytake",
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true);
        cmd
    }
}

impl PgBins {
    /// The path of a client binary: next to `initdb`, else on PATH.
    fn client(&self, name: &str) -> PathBuf {
        let path = self.dir.join(name);
        if is_executable(&path) {
            path
        } else {
            PathBuf::from(name)
        }
    }

    /// A server-side binary, run as the server's user, in `cwd` (somewhere
    /// that user may read: PostgreSQL's tools look up their working dir).
    fn server_command(&self, cwd: &Path, name: &str) -> Command {
        let mut argv = self.user.prefix.clone();
        argv.push(self.dir.join(name).into_os_string());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(cwd)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// The reaper's stop command for the cluster in `data`.
    fn stop_command(&self, data: &Path) -> Vec<OsString> {
        let mut argv = self.user.prefix.clone();
        argv.push(self.dir.join("pg_ctl").into_os_string());
        argv.extend(
            ["-D".as_ref(), data.as_os_str()]
                .into_iter()
                .map(OsStr::to_os_string),
        );
        argv.extend(
            ["-m", "immediate", "-w", "-t", "15", "stop"]
                .into_iter()
                .map(OsString::from),
        );
        argv
    }
}

/// Finds the PostgreSQL server binaries: `pg_config --bindir`, else
/// Debian's `/usr/lib/postgresql/15/bin`, else PATH.
fn pg_bins() -> Result<&'static PgBins, Unavailable> {
    PG_BINS
        .get_or_init(|| {
            let mut candidates = Vec::new();
            if let Ok(out) = std::process::Command::new("pg_config")
                .arg("--bindir")
                .output()
            {
                if out.status.success() {
                    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
                    candidates.push(PathBuf::from(dir));
                }
            }
            candidates.push(PathBuf::from("/usr/lib/postgresql/15/bin"));
            if let Some(initdb) = which("initdb") {
                // Through a symlink (/usr/local/bin/initdb -> .../bin/initdb)
                // to the dir that has pg_ctl and postgres too.
                let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
                candidates.extend(real.parent().map(Path::to_path_buf));
            }
            let dir = candidates
                .into_iter()
                .find(|d| is_executable(&d.join("initdb")) && is_executable(&d.join("pg_ctl")))
                .ok_or_else(|| {
                    "no initdb and pg_ctl in `pg_config --bindir`, /usr/lib/postgresql/15/bin or on PATH".to_string()
                })?;
            let user = server_user()?;
            Ok(PgBins { dir, user })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Runs `initdb` once, into a dir of its own that the reaper removes at exit.
async fn make_template(bins: &'static PgBins) -> Result<(PathBuf, Reaper), Unavailable> {
    let root = temp_dir("pytake-pg-template-", bins.user)?;
    let reaper = Reaper::spawn(r#"rm -rf "$1""#, &[root.clone().into_os_string()])?;
    let output = bins
        .server_command(&root, "initdb")
        .arg("-D")
        .arg(root.join("data"))
        .args(["-A", "trust", "-U", "pytake", "--no-sync", "-E", "UTF8"])
        .arg("--no-locale")
        .output()
        .await
        .map_err(|e| format!("run initdb: {e}"))?;
    if !output.status.success() {
        return Err(format!("initdb: {}", output_text(&output)));
    }
    Ok((root, reaper))
}

// --------------------------------------------------------------------- Redis

/// A `redis-server` child on its own port and dir, nothing persisted.
/// Dropping it kills the server and removes the dir.
pub struct Redis {
    child: Option<Child>,
    root: PathBuf,
    port: u16,
    /// Removes `root` when dropped (after `Drop` has killed the server).
    _reaper: Reaper,
}

static REDIS_SHARED: OnceCell<Result<Redis, Unavailable>> = OnceCell::const_new();

/// Kills the server whose pid `Redis` wrote, removes the dir.
const REDIS_REAPER: &str =
    r#"pid=$(cat "$1/redis.pid" 2>/dev/null) && kill -9 "$pid" 2>/dev/null; rm -rf "$1""#;

/// The Redis server shared by this test process (started on first use,
/// killed when the process exits).
pub async fn shared_redis() -> Result<&'static Redis, Unavailable> {
    REDIS_SHARED
        .get_or_init(Redis::start)
        .await
        .as_ref()
        .map_err(Clone::clone)
}

impl Redis {
    /// Starts a private server on a free port.
    pub async fn start() -> Result<Redis, Unavailable> {
        if which("redis-server").is_none() {
            return Err("no redis-server on PATH".into());
        }
        let root = temp_dir("pytake-redis-", &NO_USER_CHANGE)?;
        let reaper = Reaper::spawn(REDIS_REAPER, &[root.clone().into_os_string()])?;
        let mut redis = Redis {
            child: None,
            root,
            port: 0,
            _reaper: reaper,
        };
        redis.launch(None).await?;
        Ok(redis)
    }

    /// A private server, or `None` (after saying so) where Redis is not
    /// available; under `CI=true` a panic instead.
    pub async fn start_or_skip(test: &str) -> Option<Redis> {
        require(test, Service::Redis, Redis::start().await)
    }

    /// This process's shared server, or `None` as [`Redis::start_or_skip`].
    /// Other tests use it at the same time: keys and channels of your own.
    pub async fn shared_or_skip(test: &str) -> Option<&'static Redis> {
        require(test, Service::Redis, shared_redis().await)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends `PING`; fine when the answer is `+PONG`.
    pub async fn ping(&self) -> Result<(), String> {
        ping(self.port).await
    }

    /// Kills the server (SIGKILL: Redis lost) and waits for it to exit.
    pub async fn stop(&mut self) {
        let mut child = self.child.take().expect("Redis is not running");
        kill_and_wait(&mut child);
        let _ = std::fs::remove_file(self.root.join("redis.pid"));
    }

    /// Starts a stopped server again on the same port (empty: nothing is
    /// persisted).
    pub async fn restart_stopped(&mut self) {
        assert!(self.child.is_none(), "Redis is still running");
        let port = self.port;
        if let Err(e) = self.launch(Some(port)).await {
            panic!("Redis did not start again on port {port}: {e}");
        }
    }

    /// [`Redis::stop`], then [`Redis::restart_stopped`].
    pub async fn restart(&mut self) {
        self.stop().await;
        self.restart_stopped().await;
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The server's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("redis.log")).unwrap_or_default()
    }

    /// Spawns `redis-server` on `port` or a free one and waits until it
    /// answers PING; on a port clash, another port (or, for a fixed port,
    /// again until the deadline).
    async fn launch(&mut self, port: Option<u16>) -> Result<(), Unavailable> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let mut clashes = 0;
        'attempt: loop {
            let try_port = match port {
                Some(p) => p,
                None => free_port()?,
            };
            let log_len = self.log().len();
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.root.join("redis.log"))
                .map_err(|e| format!("redis log: {e}"))?;
            let mut child = std::process::Command::new("redis-server")
                .args(["--port", &try_port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(&self.root)
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log)
                .spawn()
                .map_err(|e| format!("run redis-server: {e}"))?;
            std::fs::write(self.root.join("redis.pid"), child.id().to_string())
                .map_err(|e| format!("redis pid file: {e}"))?;
            loop {
                if ping(try_port).await.is_ok() {
                    self.child = Some(child);
                    self.port = try_port;
                    return Ok(());
                }
                let exited = child.try_wait().map_err(|e| e.to_string())?;
                let late = tokio::time::Instant::now() >= deadline;
                if exited.is_none() && !late {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                kill_and_wait(&mut child);
                let _ = std::fs::remove_file(self.root.join("redis.pid"));
                let log = self.log().get(log_len..).unwrap_or_default().to_string();
                let again = match port {
                    None => {
                        clashes += 1;
                        clashes < 10
                    }
                    Some(_) => !late,
                };
                if exited.is_some() && log.contains("Address already in use") && again {
                    if port.is_some() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue 'attempt;
                }
                let how = match exited {
                    Some(status) => format!("exited with {status}"),
                    None => format!("no PONG within {DEADLINE:?}"),
                };
                return Err(format!(
                    "redis-server on port {try_port} {how}; log: {}",
                    log.trim()
                ));
            }
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_wait(&mut child);
            let _ = std::fs::remove_file(self.root.join("redis.pid"));
        }
        // Then the reaper (a field) removes the dir.
    }
}

/// One raw `PING` (no client library): `+PONG` or why not.
async fn ping(port: u16) -> Result<(), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(b"PING\r\n").await?;
        let mut reply = [0u8; 64];
        let n = stream.read(&mut reply).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&reply[..n]).into_owned())
    };
    match tokio::time::timeout(Duration::from_secs(1), exchange).await {
        Ok(Ok(reply)) if reply.starts_with("+PONG") => Ok(()),
        Ok(Ok(reply)) => Err(format!("PING answered {:?}", reply.trim_end())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer to PING".into()),
    }
}

fn kill_and_wait(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

// ------------------------------------------------------------------- Common

/// The user a server runs as: ours, or — when we are root — `nobody`, by
/// the command `prefix` and owning the server's dir.
struct ServerUser {
    prefix: Vec<OsString>,
    owner: Option<(u32, u32)>,
}

const NO_USER_CHANGE: ServerUser = ServerUser {
    prefix: Vec::new(),
    owner: None,
};

static SERVER_USER: OnceLock<Result<ServerUser, Unavailable>> = OnceLock::new();

/// For PostgreSQL, which will not run as root.
fn server_user() -> Result<&'static ServerUser, Unavailable> {
    SERVER_USER
        .get_or_init(|| {
            if id(&["-u"])? != 0 {
                return Ok(NO_USER_CHANGE);
            }
            let uid = id(&["-u", "nobody"])?;
            let gid = id(&["-g", "nobody"])?;
            let prefix: Vec<String> = if let Some(setpriv) = which_sbin("setpriv") {
                vec![
                    setpriv.display().to_string(),
                    format!("--reuid={uid}"),
                    format!("--regid={gid}"),
                    "--clear-groups".into(),
                ]
            } else if let Some(runuser) = which_sbin("runuser") {
                vec![
                    runuser.display().to_string(),
                    "-u".into(),
                    "nobody".into(),
                    "--".into(),
                ]
            } else {
                return Err("running as root, and neither setpriv nor runuser is here to run it as nobody (PostgreSQL refuses root)".into());
            };
            Ok(ServerUser {
                prefix: prefix.into_iter().map(OsString::from).collect(),
                owner: Some((uid, gid)),
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// `id ARGS` as a number.
fn id(args: &[&str]) -> Result<u32, Unavailable> {
    let out = std::process::Command::new("id")
        .args(args)
        .output()
        .map_err(|e| format!("run id: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| format!("id {}: {}", args.join(" "), output_text(&out)))
}

/// A new temp dir that outlives its `TempDir` (the reaper removes it),
/// owned by the server's user.
fn temp_dir(prefix: &str, user: &ServerUser) -> Result<PathBuf, Unavailable> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?
        .keep();
    if let Some((uid, gid)) = user.owner {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", dir.display()))?;
    }
    Ok(dir)
}

/// A `sh` that waits for its stdin to close — on drop, at exit, or when
/// this process dies any other way — then runs a cleanup `script` (with
/// `args` as `$1`...). Signals to the process group (Ctrl-C) do not stop it
/// before it has cleaned up.
struct Reaper {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Reaper {
    fn spawn(script: &str, args: &[OsString]) -> Result<Reaper, Unavailable> {
        let mut child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(
                "trap '' INT HUP TERM QUIT; PATH=$PATH:/usr/bin:/bin; read _ || :; {script}"
            ))
            .arg("reaper")
            .args(args)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("run sh: {e}"))?;
        let stdin = child.stdin.take();
        Ok(Reaper { child, stdin })
    }
}

impl Drop for Reaper {
    /// Cleans up now and waits until that is done: dropping a `Postgres`
    /// returns once its server is stopped and its dir removed.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on at the moment.
pub(super) fn free_port() -> Result<u16, Unavailable> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| is_executable(path))
}

/// [`which`], then the system dirs a user's PATH may lack (runuser is in
/// /usr/sbin).
fn which_sbin(name: &str) -> Option<PathBuf> {
    which(name).or_else(|| {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .into_iter()
            .map(|dir| Path::new(dir).join(name))
            .find(|path| is_executable(path))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Single-quotes `s` for `sh` (pg_ctl passes `-o` through a shell).
fn shell_quote(s: &OsStr) -> String {
    format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"))
}

fn output_text(output: &std::process::Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stderr).trim().to_string();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !stdout.trim().is_empty() {
        text = format!("{text} {}", stdout.trim());
    }
    if text.is_empty() {
        text = output.status.to_string();
    }
    text
}
