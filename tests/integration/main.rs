//! Integration tests: a real `pytake serve` process per test, on port 0 with
//! a temporary data dir, driven over HTTP and WebSocket like a user would.

mod support;

mod cli;
mod docs;
mod gateway_auth;
mod gateway_limits;
mod gateway_protocol;
mod gateway_rfc6455;
mod history;
mod http_errors;
mod intake;
mod loadtest;
mod resume;
mod security;
mod shutdown;
mod strict_input;
mod tail_history;
mod token_cli;
