//! The groups this node's writer stored, each with the rollup the store
//! wrote for it in the same transaction. The aggregator adds that rollup
//! rather than counting the group's events again when they reach it on
//! the bus: counting every event a second time on its own node cost about
//! a tenth of intake's throughput (BENCHMARKS.md, metrics). Events stored
//! by other nodes arrive only on the bus and are counted from it.
//!
//! Exactness does not depend on timing. A group commits atomically, so
//! the aggregator's snapshot (head `H`) holds all of it or none of it. A
//! group is added from here only while none of its events has come on
//! the bus (its first id is above `H` and above every id seen there), and
//! its events are then skipped on the bus; otherwise it is ignored here
//! and its events are counted from the bus, like another node's. The
//! writer hands a group over before publishing it, so on one node every
//! group is added from here; with Redis, another node's event can make
//! the bus fetch one of ours from the store first, and that group is
//! counted from the bus. A group that does not fit is counted from the
//! bus too.

use std::collections::VecDeque;
use tokio::sync::mpsc;

use super::rollup::Rollup;
use crate::protocol::EventId;

/// Groups the writer may be ahead of the aggregator by. Full-queue policy:
/// the writer never waits; a group that does not fit is counted from the
/// bus instead, at the cost of counting its events a second time.
pub const HANDOFF_CAPACITY: usize = 4096;

/// One stored group: the ids of its new events, ascending, and what they
/// add to the figures.
#[derive(Debug)]
pub struct LocalGroup {
    pub ids: Vec<EventId>,
    pub rollup: Rollup,
}

/// The writer's end.
#[derive(Clone)]
pub struct Handoff {
    tx: mpsc::Sender<LocalGroup>,
}

/// The aggregator's end.
pub struct Handed {
    rx: mpsc::Receiver<LocalGroup>,
}

pub fn channel() -> (Handoff, Handed) {
    let (tx, rx) = mpsc::channel(HANDOFF_CAPACITY);
    (Handoff { tx }, Handed { rx })
}

impl Handoff {
    /// Hands a committed group over. Call it after the commit and before
    /// publishing the group, so the aggregator holds the rollup before
    /// any of the group's events reaches it on the bus.
    pub fn send(&self, group: LocalGroup) {
        if !group.ids.is_empty() {
            // Full, or no aggregator: the events are counted from the bus.
            let _ = self.tx.try_send(group);
        }
    }
}

impl Handed {
    pub fn try_recv(&mut self) -> Option<LocalGroup> {
        self.rx.try_recv().ok()
    }
}

/// Groups added from the handoff whose events are still to come on the
/// bus, to be skipped there.
#[derive(Debug, Default)]
pub struct Awaited {
    groups: VecDeque<AwaitedGroup>,
}

#[derive(Debug)]
struct AwaitedGroup {
    /// Ascending.
    ids: Vec<EventId>,
    taken: Vec<bool>,
    left: usize,
}

impl Awaited {
    pub fn add(&mut self, ids: Vec<EventId>) {
        let left = ids.len();
        self.groups.push_back(AwaitedGroup {
            taken: vec![false; left],
            ids,
            left,
        });
    }

    /// Whether `id` belongs to an added group; each id answers true once.
    pub fn take(&mut self, id: EventId) -> bool {
        // Groups are added in commit order, so by ascending ids: another
        // node's event (a miss) stops at the first group above it.
        let found = self
            .groups
            .iter()
            .enumerate()
            .take_while(|(_, group)| group.ids.first().is_some_and(|first| *first <= id))
            .find_map(|(g, group)| {
                let i = group.ids.binary_search(&id).ok()?;
                (!group.taken[i]).then_some((g, i))
            });
        let Some((g, i)) = found else {
            return false;
        };
        let group = &mut self.groups[g];
        group.taken[i] = true;
        group.left -= 1;
        if group.left == 0 {
            self.groups.remove(g);
        }
        true
    }

    /// Groups whose events have not all come yet: those between handoff
    /// and publish, as a group is added only while none of its events has
    /// come and each comes once.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_id_of_an_added_group_is_taken_once_and_the_group_then_forgotten() {
        let mut awaited = Awaited::default();
        awaited.add(vec![3, 4, 7]);
        awaited.add(vec![8, 9]);
        assert!(!awaited.take(1), "below every group: another node's");
        assert!(!awaited.take(5), "between the ids of a group, not in it");
        assert!(awaited.take(7));
        assert!(!awaited.take(7), "taken once");
        assert!(awaited.take(9));
        assert!(awaited.take(3));
        assert!(awaited.take(4));
        assert_eq!(awaited.len(), 1, "the first group is complete");
        assert!(awaited.take(8));
        assert!(awaited.is_empty());
        assert!(!awaited.take(10));
    }

    #[tokio::test]
    async fn a_full_handoff_keeps_what_it_holds_and_the_writer_never_waits() {
        let (handoff, mut handed) = channel();
        for id in 1..=HANDOFF_CAPACITY as EventId + 1 {
            handoff.send(LocalGroup {
                ids: vec![id],
                rollup: Rollup::default(),
            });
        }
        handoff.send(LocalGroup {
            ids: Vec::new(),
            rollup: Rollup::default(),
        });
        let mut got = Vec::new();
        while let Some(group) = handed.try_recv() {
            got.extend(group.ids);
        }
        let held: Vec<EventId> = (1..=HANDOFF_CAPACITY as EventId).collect();
        assert_eq!(
            got, held,
            "the group that did not fit, and the empty one, are not there"
        );
    }
}
