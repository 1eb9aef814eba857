//! The Autobahn testsuite's peer: the gateway's connection code with an
//! echo handler (see `pytake::server::gateway::conformance`). Run by
//! `conformance/autobahn.sh`; not part of `pytake serve`.
//!
//! `cargo run --release --features conformance --example autobahn_echo -- 127.0.0.1:0`

use anyhow::Context;
use tokio::net::TcpListener;

/// Autobahn's 9.x cases echo messages of up to 16 MiB.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!("listening on ws://{}", listener.local_addr()?);
    pytake::server::gateway::conformance::serve(listener, MAX_MESSAGE_BYTES)
        .await
        .context("serving the echo endpoint failed")
}
