//! `--spawn`: a throwaway `pytake serve` on a free loopback port with a
//! temporary data dir, so a CI job needs one command.
//!
//! The server belongs to this process, which alone decides when it stops:
//! it runs in a process group of its own, so a terminal's Ctrl-C reaches
//! only `loadtest`, which stops the load first and the server after. Its
//! secret travels in its environment, because argv is world-readable
//! (`ps`, `/proc/PID/cmdline`). Whatever ends a run (a clean stop, an error,
//! a panic, a second signal), dropping the [`Spawned`] kills and reaps the
//! server before its directory is removed.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use rand::RngCore;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long the spawned server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the server may take to exit after SIGTERM before it is killed:
/// its own drain timeout (10 s) plus closing the store.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// How long a drop waits for a killed server to be reaped. SIGKILL cannot
/// be caught, so this is only the kernel tearing the process down.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// A running spawned server: stopped gently by [`Spawned::stop`], killed
/// and reaped when dropped, its directory removed after either.
pub struct Spawned {
    child: Child,
    pub url: String,
    pub secret: String,
    // Dropped after `Drop::drop` has reaped the child.
    dir: tempfile::TempDir,
}

impl Spawned {
    /// Starts `pytake serve` (this very binary) and waits for its address.
    ///
    /// The server's store, bus and secret are its own, whatever the
    /// caller's `PYTAKE_*` variables or config file say. If this future is
    /// dropped before it resolves, the server is killed and reaped.
    pub async fn start(extra: &[&str]) -> anyhow::Result<Spawned> {
        let dir = tempfile::Builder::new()
            .prefix("pytake-loadtest-")
            .tempdir()
            .context("cannot create a temporary data dir")?;
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let exe = std::env::current_exe().context("cannot find the pytake binary")?;
        let store = format!("sqlite://{}", dir.path().join("pytake.db").display());
        // An empty config file of its own, so the user's is not read.
        let config = dir.path().join("config.toml");
        std::fs::write(&config, "").context("cannot write the spawned server's config")?;
        let mut command = Command::new(exe);
        // None of the caller's settings: PYTAKE_SECRET_FILE beside our
        // PYTAKE_SECRET, say, would be refused as two secrets.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PYTAKE_") {
                command.env_remove(key);
            }
        }
        let child = command
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--bus", "memory"])
            .args(["--store", &store, "--stop-when-stdin-closes"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .env("PYTAKE_SECRET", &secret)
            .process_group(0)
            // Held open by us: if we die, even by SIGKILL, it closes and
            // the server stops.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start pytake serve")?;
        let mut spawned = Spawned {
            child,
            url: String::new(),
            secret,
            dir,
        };
        let stdout = spawned.child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(START_TIMEOUT, lines.next_line()).await;
        let Ok(Ok(Some(line))) = line else {
            bail!("the spawned server did not start:\n{}", spawned.log());
        };
        let Some(url) = line.strip_prefix("listening on ") else {
            bail!("the spawned server printed `{line}` instead of its address");
        };
        spawned.url = url.to_string();
        tracing::info!(
            pid = spawned.child.id(),
            url,
            dir = %spawned.dir.path().display(),
            "spawned pytake serve"
        );
        Ok(spawned)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the server with SIGTERM, kills it if it has not exited within
    /// [`STOP_GRACE`], and reaps it; returns its log unless it exited
    /// cleanly. The directory is removed when this returns.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(pid) = self.child.id() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        let status = match tokio::time::timeout(STOP_GRACE, self.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                tracing::warn!(
                    grace = %crate::config::duration::format(STOP_GRACE),
                    "the spawned server did not stop after SIGTERM: killing it"
                );
                let _ = self.child.kill().await;
                None
            }
        };
        match status {
            Some(status) if status.success() => Ok(()),
            _ => Err(self.log()),
        }
    }
}

impl Drop for Spawned {
    /// Kills and reaps a server still running (after an error, a panic or
    /// a second signal): an orphan would keep its port and its directory,
    /// and a zombie its pid. Blocks for at most [`KILL_WAIT`].
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let _ = self.child.start_kill();
        let deadline = std::time::Instant::now() + KILL_WAIT;
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
