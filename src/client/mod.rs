//! Clients of a pytake server, shared by every client subcommand: REST
//! ([`ApiClient`]) and a WebSocket event stream that reconnects with backoff
//! and resumes from the last event it saw ([`follow`]).

pub mod alerts;
mod backoff;
mod credentials;
mod dashboard;
pub mod loadtest;
pub mod queue;
mod rest;
mod stream;

pub use backoff::Backoff;
pub use credentials::TokenSource;
pub use dashboard::{read_series, BrokeOff, EventExport, ExportBody, Fetched};
pub use rest::{ApiClient, HistoryParams};
pub use stream::{follow, StreamItem, StreamOptions};

/// A client failure. `Unreachable` maps to exit code 3 and `Unauthorized`
/// to 4 in the CLI.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the server at {url}: {reason}; is `pytake serve` running there? (--server, PYTAKE_SERVER)")]
    Unreachable { url: String, reason: String },
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("no credentials: pass --token-file or --token (PYTAKE_TOKEN_FILE, PYTAKE_TOKEN), or run where the server's data dir ({data_dir}) holds its secret (--data-dir, PYTAKE_DATA_DIR)")]
    NoCredentials { data_dir: String },
    #[error("no token for {server}: a token minted from this machine's secret is only sent to a server on this machine; pass --token-file or --token (PYTAKE_TOKEN_FILE, PYTAKE_TOKEN)")]
    RemoteNeedsToken { server: String },
    #[error("server answered {status}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected reply from the server: {0}")]
    Protocol(String),
}
