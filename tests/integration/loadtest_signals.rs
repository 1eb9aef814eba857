//! `pytake loadtest --spawn` stopped by a signal, as an operator's Ctrl-C or a
//! CI runner's cancel does: the summary so far on stdout, the documented
//! exit code, the spawned server stopped and reaped, its temporary
//! directory removed; and the server's command line never shows the secret.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use crate::support::ClearPytake;
use crate::support::{bin, DEADLINE};

/// `pytake` with the clean environment of `support::pytake`, and `TMPDIR`
/// pointed at `home/tmp` so the spawned server's directory can be watched.
pub fn command(args: &[&str], home: &Path) -> Command {
    let tmp = home.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_clear_pytake()
        .env("XDG_CONFIG_HOME", home.join("no-config"))
        .env("XDG_DATA_HOME", home.join("no-data"))
        .env("TMPDIR", &tmp)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// The field after a process's `(comm)` in `/proc/PID/stat`: index 0 is the
/// state, 1 the parent pid.
fn stat_field(pid: i32, index: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(index).map(str::to_string)
}

/// The pids whose parent is `parent`.
fn children(parent: i32) -> Vec<i32> {
    let parent = parent.to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| stat_field(pid, 1).as_deref() == Some(parent.as_str()))
        .collect()
}

/// The TCP port process `pid` listens on (IPv4), from its socket fds and
/// `/proc/PID/net/tcp`.
fn listening_port(pid: i32) -> Option<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| {
            let link = std::fs::read_link(e.ok()?.path()).ok()?;
            let link = link.to_str()?;
            Some(
                link.strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // st 0A is LISTEN; column 9 is the socket's inode.
        if cols.get(3) != Some(&"0A") || !inodes.iter().any(|i| Some(&i.as_str()) == cols.get(9)) {
            return None;
        }
        u16::from_str_radix(cols[1].rsplit(':').next()?, 16).ok()
    })
}

/// Entries of the spawned servers' temporary directory's parent.
fn temp_dirs(home: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(home.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// Orphans of the processes this test starts become children of this test
/// process instead of init, so a server that loadtest did not reap stays
/// visible (running, or a zombie) after loadtest has exited.
fn adopt_orphans() {
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
}

/// Kills (and, once adopted, reaps) a server that a failing test would
/// otherwise leave running.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if Path::new(&format!("/proc/{}", self.0)).exists() {
            let pid = Pid::from_raw(self.0);
            let _ = kill(pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}

/// A `loadtest --spawn` run long enough to be interrupted.
struct Interruptible {
    child: Child,
    home: tempfile::TempDir,
}

/// What an interrupted run left behind.
struct Ended {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    server_pid: i32,
}

impl Interruptible {
    /// Starts the run; `own_group` puts it in a process group of its own,
    /// like a shell's foreground job.
    fn start(own_group: bool) -> Interruptible {
        let home = tempfile::tempdir().unwrap();
        let mut cmd = command(
            &[
                "loadtest",
                "--output",
                "json",
                "--spawn",
                "--duration",
                "60s",
                "--connections",
                "5",
                "--rate",
                "20",
                "--threshold",
                "loss==0",
            ],
            home.path(),
        );
        // An inherited secret must not change the spawned server.
        cmd.env("PYTAKE_SECRET", "inherited-from-the-shell");
        if own_group {
            cmd.process_group(0);
        }
        Interruptible {
            child: cmd.spawn().unwrap(),
            home,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id().unwrap() as i32
    }

    /// Waits until the spawned server holds all 5 connections and has
    /// accepted events; returns its pid.
    async fn wait_for_load(&self) -> i32 {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let http = reqwest::Client::new();
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the load never started"
            );
            let server = children(self.pid()).into_iter().next();
            if let Some((pid, port)) = server.and_then(|pid| Some((pid, listening_port(pid)?))) {
                let health = http
                    .get(format!("http://127.0.0.1:{port}/health"))
                    .send()
                    .await;
                if let Ok(resp) = health {
                    let h: Value = resp.json().await.unwrap_or(Value::Null);
                    if h["websocket"]["authenticated"] == 5 && h["last_event_id"].as_i64() > Some(0)
                    {
                        return pid;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn ended(mut self, server_pid: i32) -> Ended {
        let status = tokio::time::timeout(DEADLINE * 2, self.child.wait())
            .await
            .expect("loadtest did not exit after the signal")
            .unwrap();
        let mut stdout = String::new();
        let mut stderr = String::new();
        let mut out = self.child.stdout.take().unwrap();
        let mut err = self.child.stderr.take().unwrap();
        out.read_to_string(&mut stdout).await.unwrap();
        err.read_to_string(&mut stderr).await.unwrap();
        assert_eq!(
            temp_dirs(self.home.path()),
            Vec::<PathBuf>::new(),
            "the spawned server's directory was left behind"
        );
        Ended {
            code: status.code(),
            stdout,
            stderr,
            server_pid,
        }
    }
}

impl Ended {
    /// The summary is of the run so far, marked interrupted; thresholds
    /// were evaluated; the server was stopped and reaped.
    fn assert_interrupted_cleanly(&self, code: i32, signal: &str) {
        assert_eq!(self.code, Some(code), "stderr: {}", self.stderr);
        let r: Value = serde_json::from_str(&self.stdout).expect("one JSON summary");
        assert_eq!(r["interrupted"], true);
        assert_eq!(r["valid"], false);
        let reason = r["invalid_reason"].as_str().unwrap();
        assert!(reason.starts_with("interrupted after "), "{reason}");
        // `--duration 60s`, printed back the way every duration is.
        assert!(reason.ends_with("s of 1m"), "{reason}");
        assert_eq!(r["connections"]["established"], 5);
        assert!(r["events"]["published"].as_u64().unwrap() > 0, "{r}");
        let published_for = r["events"]["published_for_s"].as_f64().unwrap();
        assert!(published_for > 0.0 && published_for < 60.0, "{r}");
        // The load stopped before the server did: nothing was cut off.
        assert_eq!(r["errors"], serde_json::json!({}), "{r}");
        assert_eq!(r["deliveries"]["lost"], 0, "{r}");
        assert_eq!(
            r["thresholds"],
            serde_json::json!([{"threshold": "loss==0", "actual": 0.0, "ok": true}])
        );
        assert_eq!(
            self.stderr,
            format!("error: interrupted by {signal}: the summary covers the run until then\n")
        );
        let pid = self.server_pid;
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "the spawned server {pid} is still there (state {:?}): not reaped",
            stat_field(pid, 0)
        );
    }
}

#[tokio::test]
async fn sigterm_prints_the_summary_so_far_and_stops_the_spawned_server() {
    adopt_orphans();
    let run = Interruptible::start(false);
    let server_pid = run.wait_for_load().await;
    let _leak_guard = KillOnDrop(server_pid);
    kill(Pid::from_raw(run.pid()), Signal::SIGTERM).unwrap();
    run.ended(server_pid)
        .await
        .assert_interrupted_cleanly(143, "SIGTERM");
}

#[tokio::test]
async fn ctrl_c_reaches_loadtest_only_and_the_secret_is_never_in_argv() {
    adopt_orphans();
    let run = Interruptible::start(true);
    let server_pid = run.wait_for_load().await;
    let _leak_guard = KillOnDrop(server_pid);

    // `ps` shows every user the command line: the secret is not on it, and
    // the one inherited from the shell did not reach the server.
    let cmdline = std::fs::read(format!("/proc/{server_pid}/cmdline")).unwrap();
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(!args.iter().any(|a| a == "--secret"), "{args:?}");
    let environ = std::fs::read(format!("/proc/{server_pid}/environ")).unwrap();
    let secret = environ
        .split(|&b| b == 0)
        .find_map(|v| v.strip_prefix(b"PYTAKE_SECRET="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .expect("the secret is passed in the environment");
    assert_eq!(secret.len(), 48, "{secret}");
    assert_ne!(secret, "inherited-from-the-shell");
    assert!(
        !args.iter().any(|a| a.contains(&secret)),
        "the secret is in argv: {args:?}"
    );

    // A terminal's Ctrl-C signals the whole foreground process group.
    killpg(Pid::from_raw(run.pid()), Signal::SIGINT).unwrap();
    run.ended(server_pid)
        .await
        .assert_interrupted_cleanly(130, "SIGINT");
}

#[tokio::test]
async fn a_second_signal_stops_at_once_and_still_reaps_the_server() {
    adopt_orphans();
    let run = Interruptible::start(false);
    let server_pid = run.wait_for_load().await;
    let _leak_guard = KillOnDrop(server_pid);
    // Two different signals: two pending SIGTERMs could merge into one.
    kill(Pid::from_raw(run.pid()), Signal::SIGTERM).unwrap();
    kill(Pid::from_raw(run.pid()), Signal::SIGINT).unwrap();
    let ended = run.ended(server_pid).await;
    // Pending together, they are delivered lowest number first: either may
    // be the second. The exit code is the second one's.
    let (code, last) = if ended.stderr.contains("last by SIGINT") {
        (130, "SIGINT")
    } else {
        (143, "SIGTERM")
    };
    assert_eq!(ended.code, Some(code), "stderr: {}", ended.stderr);
    assert_eq!(ended.stdout, "");
    assert_eq!(
        ended.stderr,
        format!("error: interrupted twice (last by {last}): stopped at once, without a summary\n")
    );
    assert!(
        !Path::new(&format!("/proc/{server_pid}")).exists(),
        "the spawned server is still there (state {:?}): not reaped",
        stat_field(server_pid, 0)
    );
}

#[tokio::test]
async fn a_loadtest_killed_outright_does_not_leave_its_server_running() {
    adopt_orphans();
    let mut run = Interruptible::start(false);
    let server_pid = run.wait_for_load().await;
    let _leak_guard = KillOnDrop(server_pid);
    // SIGKILL: no handler runs, but the kernel closes loadtest's end of
    // the server's stdin, and the server stops on that.
    kill(Pid::from_raw(run.pid()), Signal::SIGKILL).unwrap();
    run.child.wait().await.unwrap();
    // Adopted by this test process (a subreaper), so ours to reap: wait
    // for its exit itself, not on a clock.
    let status = tokio::time::timeout(
        DEADLINE,
        tokio::task::spawn_blocking(move || {
            nix::sys::wait::waitpid(Pid::from_raw(server_pid), None).unwrap()
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("the spawned server {server_pid} outlived its loadtest"))
    .unwrap();
    // It shut down cleanly rather than being killed.
    assert_eq!(
        status,
        nix::sys::wait::WaitStatus::Exited(Pid::from_raw(server_pid), 0)
    );
    // Its temporary dir is what SIGKILL leaves behind: loadtest could not
    // remove it. Tidy up for it.
    for dir in temp_dirs(run.home.path()) {
        std::fs::remove_dir_all(dir).unwrap();
    }
}
