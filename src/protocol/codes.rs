//! Error codes carried in `Error` frames and REST error bodies, and the
//! WebSocket close codes. Clients switch on these, so they never change.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Machine-readable error code, `snake_case` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame or body could not be understood; the message names the field.
    BadMessage,
    /// Missing, expired or invalid credentials.
    Unauthorized,
    /// Valid credentials, but not for this tenant, room or action.
    Forbidden,
    /// Too many messages; `retry_after` says when to try again.
    RateLimited,
    /// The outbound queue filled up; reconnect with `since`.
    SlowConsumer,
    /// No such resource.
    NotFound,
    /// The body is larger than the server accepts.
    PayloadTooLarge,
    /// Well-formed JSON that breaks a rule (missing field, wrong type).
    Unprocessable,
    /// The request contradicts the resource's state (retrying a job that
    /// is not dead).
    Conflict,
    /// The server is shutting down or overloaded; retry later.
    Unavailable,
    /// Understood but not offered by this server version.
    Unsupported,
    /// A fault of the server; details are in its log, never in the reply.
    Internal,
}

impl ErrorCode {
    /// The wire name, as in `{"code": "bad_message"}`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadMessage => "bad_message",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::SlowConsumer => "slow_consumer",
            ErrorCode::NotFound => "not_found",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Unprocessable => "unprocessable",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket close codes (the 4xxx range is ours; see the design's table).
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// Server going away (shutdown, or idle timeout).
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke RFC 6455 framing (reserved bits or opcodes, an
    /// unmasked or oversized control frame, a stray continuation, an
    /// invalid close code).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame (or a close reason) that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A frame larger than the limit (RFC 6455 "message too big").
    pub const TOO_BIG: u16 = 1009;
    /// No valid `Auth` within the timeout, or a bad token.
    pub const UNAUTHORIZED: u16 = 4001;
    /// RFC 6455 "try again later": the token's tenant is at its
    /// connection cap on this node (`[gateway] max_connections_per_tenant`).
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The endpoint names a tenant or room the token may not see.
    pub const FORBIDDEN: u16 = 4003;
    /// The connection kept flooding after `Error rate_limited`.
    pub const RATE_LIMITED: u16 = 4008;
    /// The outbound queue filled up; resume with `since`.
    pub const SLOW_CONSUMER: u16 = 4009;
    /// Binary or otherwise unusable frames, repeatedly.
    pub const BAD_MESSAGE: u16 = 4400;
}
