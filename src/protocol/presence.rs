//! Presence and typing on the wire: the statuses a user may set, the
//! `Presence` and `Typing` frame payloads, and the `GET /api/v1/presence`
//! listing. Neither is stored: a client that missed a change reads the
//! listing, or waits for the next change.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The room of a tenant that carries its `Presence` frames.
pub const PRESENCE_ROOM: &str = "presence";

/// A typing state not refreshed with `typing: true` within this is ended
/// by the server, which sends `typing: false` itself: a client that
/// crashed mid-sentence does not type forever. Clients refresh every few
/// seconds while the user types.
pub const TYPING_TTL: Duration = Duration::from_secs(10);

/// `typing: true` repeated within this of the last one sent on is not
/// sent on again (only the state is refreshed): a keystroke-per-frame
/// client costs the room one frame a second.
pub const TYPING_REPEAT: Duration = Duration::from_secs(1);

/// A user's presence. `Offline` is never set by a client: the server says
/// it once the user's last connection closed and the grace period passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum Status {
    Online,
    Away,
    Busy,
    Offline,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Away => "away",
            Status::Busy => "busy",
            Status::Offline => "offline",
        }
    }

    /// A status a client may set with `Presence {status}`; the error
    /// names the field and the statuses that exist.
    pub fn settable(text: &str) -> Result<Status, String> {
        match text.parse::<Status>() {
            Ok(Status::Offline) | Err(_) => Err(format!(
                "payload.status: unknown status `{text}`: expected online, away or busy"
            )),
            Ok(status) => Ok(status),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "online" => Ok(Status::Online),
            "away" => Ok(Status::Away),
            "busy" => Ok(Status::Busy),
            "offline" => Ok(Status::Offline),
            other => Err(format!(
                "unknown status `{other}`: expected online, away, busy or offline"
            )),
        }
    }
}

impl TryFrom<String> for Status {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// The `Presence` frame's payload: a join, a leave or a status change of
/// one user, with the user's open connections (every node's) and how many
/// users of the tenant are online after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceChange {
    pub tenant_id: String,
    pub user_id: String,
    pub status: Status,
    pub connections: u32,
    pub online_count: u32,
    pub timestamp: DateTime<Utc>,
}

/// The `Typing` frame's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingChange {
    pub conversation_id: String,
    pub user_id: String,
    pub typing: bool,
}

/// One online user in `GET /api/v1/presence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlineUser {
    pub tenant_id: String,
    pub user_id: String,
    pub status: Status,
    /// When the user came online (its first connection after being offline).
    pub since: DateTime<Utc>,
    pub connections: u32,
}

/// `GET /api/v1/presence`: the online users of a tenant (or of every
/// tenant, for an admin who named none), by tenant then user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceList {
    pub tenant_id: Option<String>,
    pub online_count: u32,
    pub users: Vec<OnlineUser>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_three_statuses_are_settable() {
        assert_eq!(Status::settable("away"), Ok(Status::Away));
        let e = Status::settable("offline").unwrap_err();
        assert!(
            e.starts_with("payload.status: unknown status `offline`"),
            "{e}"
        );
        assert!(Status::settable("sleeping")
            .unwrap_err()
            .contains("online, away or busy"));
        assert_eq!(serde_json::to_string(&Status::Busy).unwrap(), r#""busy""#);
    }
}
