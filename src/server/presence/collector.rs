//! Presence in `/metrics`: this node's share, read at scrape time. The
//! tenant-wide list needs Redis with several nodes, which a scrape must not
//! wait on: `GET /api/v1/presence` answers that.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::Presence;
use crate::server::telemetry::collector::gauge;

/// Writes the presence families on every scrape.
pub struct PresenceCollector(pub Presence);

impl fmt::Debug for PresenceCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresenceCollector").finish_non_exhaustive()
    }
}

impl Collector for PresenceCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let (users, typing) = self.0.local_counts();
        gauge(
            &mut e,
            "pytake_presence_users",
            "Users with a connection on this node, or in their grace period after the last closed.",
            None,
            users as i64,
        )?;
        gauge(
            &mut e,
            "pytake_presence_typing",
            "Typing states held on this node (each ends within 10 s unless refreshed).",
            None,
            typing as i64,
        )
    }
}
