//! Frames that are not stored (presence, typing) on Redis: their own
//! channel per tenant, `pytake:frames:{tenant}`, subscribed together with
//! the tenant's events channel but never through the sequencer, which
//! would look for them in the store.
//!
//! A node subscribed to a tenant's channel and to the pattern of all of
//! them (a tenant's client and an admin's) gets each frame twice, once per
//! subscription, so every frame carries its publisher and a number, and a
//! node delivers a frame it has recently seen only once ([`Recent`]).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use crate::protocol::{Room, Scope, ServerFrame, TenantId};
use crate::server::bus::BusFrame;

pub(super) const FRAME_PREFIX: &str = "pytake:frames:";
const FRAME_PATTERN: &str = "pytake:frames:*";

/// Frames remembered per node to drop a second copy. The copies of one
/// PUBLISH reach a subscriber back to back, so a short memory suffices.
const RECENT: usize = 1024;

/// A frame as it crosses Redis: the publishing bus's `origin` lets it drop
/// its own echo (it delivered the frame locally already); `origin` and
/// `seq` together name the frame.
#[derive(serde::Serialize, serde::Deserialize)]
struct WireFrame {
    origin: u64,
    seq: u64,
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

/// The channel and payload that carry `frame`, the `seq`th of the bus
/// `origin`.
pub(super) fn encode(origin: u64, seq: u64, frame: &BusFrame) -> (String, Vec<u8>) {
    let wire = WireFrame {
        origin,
        seq,
        tenant: frame.tenant.to_string(),
        room: frame.room.to_string(),
        frame: (*frame.frame).clone(),
    };
    let payload = serde_json::to_vec(&wire).expect("frames serialize");
    (format!("{FRAME_PREFIX}{}", frame.tenant), payload)
}

/// The frames a node delivered lately, by publisher and number.
#[derive(Default)]
pub(super) struct Recent {
    order: VecDeque<(u64, u64)>,
    seen: HashSet<(u64, u64)>,
}

impl Recent {
    /// True the first time a frame is offered.
    fn first(&mut self, id: (u64, u64)) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > RECENT {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

/// Another node's frame from `payload`, if this node should deliver it:
/// `None` for this bus's own echo and for a copy already delivered.
pub(super) fn decode(
    origin: u64,
    payload: &[u8],
    recent: &mut Recent,
) -> Result<Option<BusFrame>, String> {
    let wire = serde_json::from_slice::<WireFrame>(payload).map_err(|e| e.to_string())?;
    if wire.origin == origin || !recent.first((wire.origin, wire.seq)) {
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

    #[test]
    fn a_frame_crosses_without_its_except_and_its_echo_is_dropped() {
        let (channel, payload) = encode(1, 0, &frame());
        assert_eq!(channel, "pytake:frames:acme");
        let got = decode(2, &payload, &mut Recent::default())
            .unwrap()
            .expect("delivered");
        assert_eq!(
            (got.tenant.as_str(), got.room.as_str()),
            ("acme", "presence")
        );
        assert_eq!(got.except, None, "connection ids are the publisher's own");
        assert!(decode(1, &payload, &mut Recent::default())
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_second_copy_is_dropped_and_old_ones_are_forgotten() {
        let mut recent = Recent::default();
        let (_, first) = encode(1, 0, &frame());
        assert!(decode(2, &first, &mut recent).unwrap().is_some());
        assert!(
            decode(2, &first, &mut recent).unwrap().is_none(),
            "the copy"
        );
        let (_, other) = encode(7, 0, &frame());
        assert!(
            decode(2, &other, &mut recent).unwrap().is_some(),
            "another publisher"
        );
        for seq in 1..=RECENT as u64 {
            let (_, next) = encode(1, seq, &frame());
            assert!(decode(2, &next, &mut recent).unwrap().is_some());
        }
        assert!(recent.seen.len() <= RECENT, "memory stays bounded");
    }

    #[test]
    fn an_unreadable_frame_is_an_error() {
        assert!(decode(2, b"{", &mut Recent::default()).is_err());
    }
}
