//! Turns at writing. SQLite has one writer at a time; left to SQLite, a
//! second writer sleeps in the busy handler in steps of 1, 2, 5, 10 ...
//! 100 ms and can wait long after the lock is free (webhook
//! acknowledgements at 500/s had a p99 of 150 ms). So every write takes a
//! turn here first, and at most one connection asks SQLite for the lock.
//!
//! Writes someone waits on (an enqueue acknowledging a webhook, an append
//! acknowledging a producer) are urgent; the queue's leases and finishes,
//! gauges and sweeps are not. Non-urgent writes queue among themselves
//! and send one at a time to the turn, so an urgent write waits for at
//! most the write under way and one other before its own; they still get
//! every other turn when urgent writes keep coming.

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
