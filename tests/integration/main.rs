//! Integration tests: a real `pytake serve` process per test, on port 0 with
//! a temporary data dir, driven over HTTP and WebSocket like a user would.

mod support;

mod alert_notify;
mod backend_faults;
mod broken_pipe;
mod bus_conformance;
mod campaigns;
mod cli;
mod config_cli;
mod dashboard;
mod docs;
mod docs_check;
mod gateway_auth;
mod gateway_limits;
mod gateway_protocol;
mod gateway_rfc6455;
mod history;
mod http_errors;
mod in_process;
mod intake;
mod loadtest;
mod loadtest_nodes;
mod loadtest_signals;
mod metrics_cli;
mod metrics_push;
mod postgres_serve;
mod prometheus;
mod queue;
mod queue_bench;
mod queue_cli;
mod queue_crash;
mod resume;
mod security;
mod services;
mod several_nodes;
mod shutdown;
mod status;
mod store_conformance;
mod strict_input;
mod tail_history;
mod token_cli;
mod webhooks;
