//! Frames that are not stored (presence, typing) on Redis: their own
//! channel per tenant, `pytake:frames:{tenant}`, subscribed together with
//! the tenant's events channel but never through the sequencer, which
//! would look for them in the store.

use std::sync::Arc;

use crate::protocol::{Room, Scope, ServerFrame, TenantId};
use crate::server::bus::BusFrame;

pub(super) const FRAME_PREFIX: &str = "pytake:frames:";
const FRAME_PATTERN: &str = "pytake:frames:*";

/// A frame as it crosses Redis: the publishing bus's `origin` lets it drop
/// its own echo (it delivered the frame locally already).
#[derive(serde::Serialize, serde::Deserialize)]
struct WireFrame {
    origin: u64,
    tenant: String,
    room: String,
    frame: ServerFrame,
}

/// A scope's frames channel (or pattern).
pub(super) fn frame_channel(scope: &Scope<TenantId>) -> String {
    match scope {
        Scope::All => FRAME_PATTERN.to_string(),
        Scope::Only(tenant) => format!("{FRAME_PREFIX}{tenant}"),
    }
}

/// The channel and payload that carry `frame` from the bus `origin`.
pub(super) fn encode(origin: u64, frame: &BusFrame) -> (String, Vec<u8>) {
    let wire = WireFrame {
        origin,
        tenant: frame.tenant.to_string(),
        room: frame.room.to_string(),
        frame: (*frame.frame).clone(),
    };
    let payload = serde_json::to_vec(&wire).expect("frames serialize");
    (format!("{FRAME_PREFIX}{}", frame.tenant), payload)
}

/// Which subscriptions of the node a frame arrived through may deliver it.
pub(super) struct Route {
    /// The message came through the `*` pattern (an admin watching every
    /// tenant), not through the tenant's own channel.
    pub from_pattern: bool,
    /// The node watches the frame's tenant by itself.
    pub tenant_watched: bool,
    /// The node watches every tenant.
    pub all_watched: bool,
}

impl Route {
    /// A node subscribed both to a tenant's channel and to the pattern gets
    /// each frame twice, and frames have no id to drop a copy by: the
    /// tenant's own subscription delivers while it exists, the pattern's
    /// only for tenants without one. While a subscription comes or goes a
    /// frame may be lost, never doubled (frames are at most once).
    fn delivers(&self) -> bool {
        if self.from_pattern {
            self.all_watched && !self.tenant_watched
        } else {
            self.tenant_watched
        }
    }
}

/// Another node's frame from `payload`, if this node should deliver it:
/// `None` for this bus's own echo and for a copy `route` rules out.
pub(super) fn decode(
    origin: u64,
    payload: &[u8],
    route: impl FnOnce(&str) -> Route,
) -> Result<Option<BusFrame>, String> {
    let wire = serde_json::from_slice::<WireFrame>(payload).map_err(|e| e.to_string())?;
    if wire.origin == origin || !route(&wire.tenant).delivers() {
        return Ok(None);
    }
    Ok(Some(BusFrame {
        tenant: TenantId::parse(&wire.tenant)?,
        room: Room::parse(&wire.room)?,
        frame: Arc::new(wire.frame),
        except: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> BusFrame {
        BusFrame {
            tenant: TenantId::parse("acme").unwrap(),
            room: Room::parse("presence").unwrap(),
            frame: Arc::new(ServerFrame::Presence(serde_json::json!({"n": 1}))),
            except: Some(3),
        }
    }

    fn route(from_pattern: bool, tenant_watched: bool, all_watched: bool) -> Route {
        Route {
            from_pattern,
            tenant_watched,
            all_watched,
        }
    }

    #[test]
    fn a_frame_crosses_without_its_except_and_its_echo_is_dropped() {
        let (channel, payload) = encode(1, &frame());
        assert_eq!(channel, "pytake:frames:acme");
        let got = decode(2, &payload, |_| route(false, true, false))
            .unwrap()
            .expect("delivered");
        assert_eq!(
            (got.tenant.as_str(), got.room.as_str()),
            ("acme", "presence")
        );
        assert_eq!(got.except, None, "connection ids are the publisher's own");
        assert!(decode(1, &payload, |_| route(false, true, false))
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_node_watching_a_tenant_and_every_tenant_delivers_one_copy() {
        let (_, payload) = encode(1, &frame());
        let delivered = |from_pattern, tenant_watched, all_watched| {
            decode(2, &payload, |_| {
                route(from_pattern, tenant_watched, all_watched)
            })
            .unwrap()
            .is_some()
        };
        // Both subscriptions: the tenant's own delivers, the pattern not.
        assert!(delivered(false, true, true));
        assert!(!delivered(true, true, true));
        // Only the pattern.
        assert!(delivered(true, false, true));
        // A late message of a tenant's channel just left: the pattern's
        // copy delivers, or nobody wants it.
        assert!(!delivered(false, false, true));
        assert!(!delivered(false, false, false));
    }

    #[test]
    fn an_unreadable_frame_is_an_error() {
        assert!(decode(2, b"{", |_| route(false, true, false)).is_err());
    }
}
