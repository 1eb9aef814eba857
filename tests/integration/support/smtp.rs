//! A real SMTP server for the email tests: Python's aiosmtpd on a free
//! loopback port, delivering every message it accepts into a Maildir of
//! its own (`aiosmtpd.handlers.Mailbox`), read back as [`Received`].
//!
//! ```ignore
//! let Some(smtp) = SmtpSink::start_or_skip("my_test").await else { return };
//! ```
//!
//! Where aiosmtpd is not installed (Debian's `python3-aiosmtpd`) a test
//! prints `skipped: ...` and returns; with `CI=true` it fails instead.
//! The `python3` first on PATH may not be the one Debian's package is
//! for (pyenv's shims come first on these machines), so each candidate
//! is asked whether it can import aiosmtpd.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::services::{free_port, require, Service, Unavailable};
use super::DEADLINE;

/// The interpreters tried, in order.
const PYTHONS: [&str; 2] = ["python3", "/usr/bin/python3"];

/// A running aiosmtpd; dropping it stops the server and removes its
/// Maildir.
pub struct SmtpSink {
    port: u16,
    maildir: TempDir,
    _server: Child,
}

/// One message as the server stored it.
#[derive(Debug, Clone)]
pub struct Received {
    /// In order, continuation lines unfolded. aiosmtpd adds `X-Peer`,
    /// `X-MailFrom` (the envelope sender) and `X-RcptTo` (the envelope
    /// recipients, comma-separated).
    pub headers: Vec<(String, String)>,
    /// With `\n` line ends.
    pub body: String,
}

impl Received {
    /// The first header of that name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn parse(text: &str) -> Received {
        let text = text.replace("\r\n", "\n");
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            match headers.last_mut() {
                Some((_, value)) if line.starts_with([' ', '\t']) => {
                    value.push(' ');
                    value.push_str(line.trim());
                }
                _ => {
                    if let Some((name, value)) = line.split_once(':') {
                        headers.push((name.to_string(), value.trim().to_string()));
                    }
                }
            }
        }
        Received {
            headers,
            body: body.to_string(),
        }
    }
}

impl SmtpSink {
    /// Starts aiosmtpd on a free port and waits for its greeting.
    pub async fn start() -> Result<SmtpSink, Unavailable> {
        let python = python_with_aiosmtpd().await?;
        let maildir = tempfile::Builder::new()
            .prefix("pytake-smtp-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let mut clashes = 0;
        loop {
            let port = free_port()?;
            let log = maildir.path().join(format!("aiosmtpd-{port}.log"));
            let stderr = std::fs::File::create(&log).map_err(|e| format!("aiosmtpd log: {e}"))?;
            let mut server = Command::new(&python)
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(maildir.path().join("mail"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("run {python} -m aiosmtpd: {e}"))?;
            match greeted(port, &mut server, &log).await {
                Ok(()) => {
                    return Ok(SmtpSink {
                        port,
                        maildir,
                        _server: server,
                    })
                }
                // Someone took the free port first: another one.
                Err(e) if e.contains("Address already in use") && clashes < 10 => {
                    clashes += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A server, or `None` (after saying so) where aiosmtpd is not
    /// available; under `CI=true` a panic instead.
    pub async fn start_or_skip(test: &str) -> Option<SmtpSink> {
        require(test, Service::Aiosmtpd, SmtpSink::start().await)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits until `n` messages have been delivered; returns them.
    pub async fn wait_for_messages(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let messages = read_maildir(&self.maildir.path().join("mail").join("new"));
            if messages.len() >= n {
                return messages;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {n} messages arrived at the SMTP server",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The first interpreter that can import aiosmtpd.
async fn python_with_aiosmtpd() -> Result<String, Unavailable> {
    for python in PYTHONS {
        let imports = Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if imports {
            return Ok(python.to_string());
        }
    }
    Err(format!(
        "none of {} can import aiosmtpd",
        PYTHONS.join(", ")
    ))
}

/// Waits for the server's `220` greeting on `port`, or for it to exit.
async fn greeted(port: u16, server: &mut Child, log: &Path) -> Result<(), Unavailable> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await {
            let mut greeting = [0u8; 64];
            let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut greeting));
            if let Ok(Ok(n)) = read.await {
                if greeting[..n].starts_with(b"220") {
                    return Ok(());
                }
            }
        }
        if let Some(status) = server.try_wait().map_err(|e| e.to_string())? {
            let stderr = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!(
                "aiosmtpd on port {port} exited with {status}: {}",
                stderr.trim()
            ));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("aiosmtpd on port {port} did not greet in time"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The messages of a Maildir's `new/`, oldest file name first.
fn read_maildir(dir: &Path) -> Vec<Received> {
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => return Vec::new(),
    };
    paths.sort();
    paths
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|text| Received::parse(&text))
        .collect()
}
