//! Turns at writing. SQLite has one writer at a time; left to SQLite, a
//! second writer sleeps in the busy handler in steps of 1, 2, 5, 10 ...
//! 100 ms and can wait long after the lock is free (webhook
//! acknowledgements at 500/s had a p99 of 150 ms). So every write takes a
//! turn here first, and at most one connection asks SQLite for the lock.
//!
//! Writes someone waits on (an enqueue acknowledging a webhook, an append
//! acknowledging a producer) are urgent; the queue's leases and finishes,
//! gauges and sweeps are not. Non-urgent writes queue among themselves
//! and send one at a time to the turn, so an urgent write waits for the
//! write under way, at most one background write, and the urgent writes
//! already in line (intake's one append group and the queue's one enqueue
//! group at most); background writes still get every other turn when
//! urgent writes keep coming.

use tokio::sync::{Mutex, MutexGuard};

#[derive(Default)]
pub(super) struct WriteGate {
    /// The turn itself, first come first served.
    turn: Mutex<()>,
    /// Where non-urgent writes wait for their place in the turn's queue.
    others: Mutex<()>,
}

/// A turn at writing, held until the transaction is over.
pub(super) struct WriteTurn<'a> {
    _other: Option<MutexGuard<'a, ()>>,
    _turn: MutexGuard<'a, ()>,
}

impl WriteGate {
    /// A turn for a write a caller is waiting on.
    pub(super) async fn urgent(&self) -> WriteTurn<'_> {
        WriteTurn {
            _other: None,
            _turn: self.turn.lock().await,
        }
    }

    /// A turn for background work.
    pub(super) async fn turn(&self) -> WriteTurn<'_> {
        let other = self.others.lock().await;
        WriteTurn {
            _other: Some(other),
            _turn: self.turn.lock().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex as StdMutex};

    use super::*;

    /// The order in which writes waiting behind one under way get their
    /// turns: background writes are in line one at a time.
    async fn order_behind(under_way_is_urgent: bool) -> Vec<&'static str> {
        let gate = Arc::new(WriteGate::default());
        let order = Arc::new(StdMutex::new(Vec::new()));
        let held = if under_way_is_urgent {
            gate.urgent().await
        } else {
            gate.turn().await
        };
        let mut tasks = Vec::new();
        for (name, urgent) in [
            ("background 1", false),
            ("background 2", false),
            ("urgent", true),
        ] {
            let (gate, order) = (gate.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = if urgent {
                    gate.urgent().await
                } else {
                    gate.turn().await
                };
                order.lock().unwrap().push(name);
            }));
            // On this one-thread runtime the spawned write runs until it
            // waits on the gate, so each is in line before the next starts.
            tokio::task::yield_now().await;
        }
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        order
    }

    #[tokio::test]
    async fn an_urgent_write_waits_for_at_most_one_background_write() {
        // Behind an urgent write, the first background write is already in
        // line for the turn; the urgent one passes the second.
        assert_eq!(
            order_behind(true).await,
            ["background 1", "urgent", "background 2"]
        );
        // Behind a background write, the others wait behind it: the urgent
        // write goes next.
        assert_eq!(
            order_behind(false).await,
            ["urgent", "background 1", "background 2"]
        );
    }
}
