//! pytake: the realtime operations stack of a WhatsApp Business platform.
//!
//! # Layout
//!
//! - [`protocol`]: the wire contract (WebSocket frames, REST bodies, events,
//!   error and close codes, limits). Serde types only.
//! - [`config`]: layered settings (flags > `PYTAKE_*` > file > defaults).
//! - [`auth`]: HS256 tokens and the local secret.
//! - [`build_info`]: the version, git revision and build date.
//! - [`server`]: `Server` with its HTTP API, WebSocket gateway and hub,
//!   ingest, store (SQLite) and bus (in-process).
//! - [`client`]: REST and WebSocket clients with reconnect and resume.
//! - [`cli`]: the `pytake` command line; the only layer that prints.
//!
//! Imports point one way: `server` and `client` use `protocol`; `cli` uses
//! them all; `server` never uses `client` or `cli`.

pub mod auth;
pub mod build_info;
pub mod cli;
pub mod client;
pub mod config;
pub mod protocol;
pub mod server;
