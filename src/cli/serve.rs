//! `pytake serve`.

use std::io::Write;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;

use crate::config::{Settings, Sources};
use crate::server::Server;

/// Every setting of the server, as a flag; each also has a `PYTAKE_*`
/// variable and a config-file key of the same name.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free one [env: PYTAKE_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// JWT HS256 secret [env: PYTAKE_SECRET] [default: generated into <data-dir>/secret, mode 0600]
    #[arg(long, value_name = "SECRET")]
    pub secret: Option<String>,

    /// Event store [env: PYTAKE_STORE] [default: sqlite://<data-dir>/pytake.db]
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,

    /// Event bus [env: PYTAKE_BUS] [default: memory]
    #[arg(long, value_name = "URL")]
    pub bus: Option<String>,

    /// Feed realistic synthetic traffic of three tenants (acme, globex, initech)
    #[arg(long)]
    pub demo: bool,

    /// Client messages per minute per WebSocket connection [env: PYTAKE_RATE_LIMIT] [default: 100]
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<u32>,

    /// Largest WebSocket frame a client may send [env: PYTAKE_MAX_FRAME_BYTES] [default: 65536]
    #[arg(long, value_name = "BYTES")]
    pub max_frame_bytes: Option<usize>,

    /// Frames queued per connection before it is closed as a slow consumer (4009) [env: PYTAKE_OUTBOUND_QUEUE] [default: 1024]
    #[arg(long, value_name = "N")]
    pub outbound_queue: Option<usize>,

    /// Close connections that have not authenticated by then (4001) [env: PYTAKE_AUTH_TIMEOUT] [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub auth_timeout: Option<String>,

    /// How often the server pings each connection [env: PYTAKE_PING_INTERVAL] [default: 25s]
    #[arg(long, value_name = "DURATION")]
    pub ping_interval: Option<String>,

    /// Close connections silent for this long [env: PYTAKE_IDLE_TIMEOUT] [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub idle_timeout: Option<String>,

    /// Close a connection as a slow consumer (4009) when a write makes no progress for this long [env: PYTAKE_WRITE_STALL] [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub write_stall: Option<String>,

    /// Clock skew tolerated on a token's exp, nbf and iat [env: PYTAKE_TOKEN_LEEWAY] [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub token_leeway: Option<String>,

    /// Refuse tokens whose aud is not (or does not include) this; unset: aud is not checked [env: PYTAKE_TOKEN_AUDIENCE]
    #[arg(long, value_name = "AUD")]
    pub token_audience: Option<String>,

    /// Refuse tokens whose iss is not this; unset: iss is not checked [env: PYTAKE_TOKEN_ISSUER]
    #[arg(long, value_name = "ISS")]
    pub token_issuer: Option<String>,

    /// Refuse tokens whose exp - iat is longer, or `none` [env: PYTAKE_TOKEN_MAX_LIFETIME] [default: 366d]
    #[arg(long, value_name = "DURATION")]
    pub token_max_lifetime: Option<String>,
}

impl ServeArgs {
    pub fn add_flags(&self, s: &mut Sources) {
        s.flag("listen", self.listen.as_ref());
        s.flag("secret", self.secret.as_ref());
        s.flag("store", self.store.as_ref());
        s.flag("bus", self.bus.as_ref());
        s.flag("rate_limit", self.rate_limit);
        s.flag("max_frame_bytes", self.max_frame_bytes);
        s.flag("outbound_queue", self.outbound_queue);
        s.flag("auth_timeout", self.auth_timeout.as_ref());
        s.flag("ping_interval", self.ping_interval.as_ref());
        s.flag("idle_timeout", self.idle_timeout.as_ref());
        s.flag("write_stall", self.write_stall.as_ref());
        s.flag("token_leeway", self.token_leeway.as_ref());
        s.flag("token_audience", self.token_audience.as_ref());
        s.flag("token_issuer", self.token_issuer.as_ref());
        s.flag("token_max_lifetime", self.token_max_lifetime.as_ref());
    }
}

/// Starts the server, prints `listening on URL` once it accepts connections,
/// and serves until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs, settings: Settings) -> anyhow::Result<()> {
    let (open_files, _) = super::fdlimit::raise();
    let server = Server::new(&settings)
        .await
        .context("cannot start the server")?;
    let listener = TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    if args.demo {
        server.start_demo();
    }
    tracing::info!(%addr, store = %settings.store, data_dir = %settings.data_dir.display(), open_files, "pytake serving");
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
    }
    let token = server.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        token.cancel();
    });
    server.listen(listener).await?;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
