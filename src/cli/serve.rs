//! `pytake serve`.

use std::io::Write;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::server::{Server, ServerOptions};

/// What `serve` has besides its settings groups.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Feed realistic synthetic traffic of three tenants (acme, globex, initech)
    #[arg(long)]
    pub demo: bool,

    /// Stop when stdin closes. For `loadtest --spawn`: its server then
    /// stops even when loadtest is killed with SIGKILL (the kernel closes
    /// the pipe), which no signal handler can see. Hidden: a server run by
    /// a service manager has a stdin that is closed from the start.
    #[arg(long, hide = true)]
    pub stop_when_stdin_closes: bool,
}

pub const AFTER_HELP: &str = "\
Examples:
  pytake serve --demo                        # a server with synthetic traffic to look at
  pytake serve --listen 0.0.0.0:8080         # every interface
  PYTAKE_SECRET_FILE=/etc/pytake/secret pytake serve --log-format json
  pytake config init && pytake serve         # settings from ~/.config/pytake/config.toml

Prints `listening on http://ADDR` once it accepts connections; stops on SIGINT or SIGTERM.

Exit status: 0 stopped cleanly, 1 failure (e.g. the address is in use), 2 a bad flag,
variable or config file.";

/// Starts the server, prints `listening on URL` once it accepts connections,
/// and serves until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs, settings: Settings) -> anyhow::Result<()> {
    let (open_files, _) = super::fdlimit::raise();
    let mut settings = settings;
    if args.demo {
        crate::server::demo_webhooks::configure(&mut settings);
    }
    let mut server = Server::new(ServerOptions::new(settings.clone()))
        .await
        .context("cannot start the server")?;
    let listen = &settings.server.listen;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| bind_error(listen, e))?;
    let addr = listener.local_addr()?;
    if args.demo {
        server.start_demo(addr);
    }
    tracing::info!(%addr, store = %crate::config::mask_url(&settings.store_url()), bus = %crate::config::mask_url(&settings.bus.url), data_dir = %settings.data_dir().display(), open_files, alert_channels = %crate::server::alerts::notify::destinations(&settings), "pytake serving");
    let signals = shutdown_signals()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
    }
    let token = server.shutdown_token();
    if args.stop_when_stdin_closes {
        let token = token.clone();
        tokio::spawn(async move {
            wait_for_eof(tokio::io::stdin()).await;
            tracing::info!("stdin closed: shutting down");
            token.cancel();
        });
    }
    tokio::spawn(async move {
        signals.await;
        tracing::info!("shutting down");
        token.cancel();
    });
    server.listen(listener).await?;
    Ok(())
}

/// Returns once `input` is at its end (or unreadable).
async fn wait_for_eof(mut input: impl tokio::io::AsyncRead + Unpin) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 256];
    while matches!(input.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// A bind failure in words that say what to do.
fn bind_error(listen: &str, e: std::io::Error) -> anyhow::Error {
    use std::io::ErrorKind;
    let hint = match e.kind() {
        ErrorKind::AddrInUse => {
            "another process has it (another `pytake serve`?): stop it, or choose another address with --listen or PYTAKE_LISTEN"
        }
        ErrorKind::PermissionDenied => {
            "ports below 1024 need privileges: choose a port above 1024 with --listen or PYTAKE_LISTEN"
        }
        ErrorKind::AddrNotAvailable => {
            "no interface of this machine has that address: use 127.0.0.1 or 0.0.0.0 (--listen, PYTAKE_LISTEN)"
        }
        _ => "check --listen or PYTAKE_LISTEN",
    };
    anyhow::anyhow!("cannot listen on {listen}: {e}; {hint}")
}

/// SIGINT and SIGTERM, listened for from the moment this returns: a script
/// that signals the server as soon as it printed its address must get a
/// clean shutdown, not the default action of a signal nobody handles yet.
#[cfg(unix)]
fn shutdown_signals() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signals() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
