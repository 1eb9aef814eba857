//! `--spawn`: a throwaway `pytake serve` on a free loopback port with a
//! temporary data dir, so a CI job needs one command.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use rand::RngCore;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long the spawned server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running spawned server; stopped with SIGTERM by [`Spawned::stop`],
/// killed if dropped.
pub struct Spawned {
    child: Child,
    pub url: String,
    pub secret: String,
    dir: tempfile::TempDir,
}

impl Spawned {
    /// Starts `pytake serve` (this very binary) and waits for its address.
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
        let mut child = Command::new(exe)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--secret", &secret])
            .args(extra)
            .env("RUST_LOG", "warn")
            .env_remove("PYTAKE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start pytake serve")?;
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(START_TIMEOUT, lines.next_line()).await;
        let Ok(Ok(Some(line))) = line else {
            let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
            bail!("the spawned server did not start:\n{log}");
        };
        let Some(url) = line.strip_prefix("listening on ") else {
            bail!("the spawned server printed `{line}` instead of its address");
        };
        Ok(Spawned {
            url: url.to_string(),
            child,
            secret,
            dir,
        })
    }

    /// Stops the server with SIGTERM and waits for it; returns its log if it
    /// did not exit cleanly.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(pid) = self.child.id() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            _ => {
                Err(std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default())
            }
        }
    }
}
