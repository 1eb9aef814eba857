//! Waking workers on every node: an enqueue notifies `pytake_jobs` in its
//! transaction, and each node listens on a connection of its own.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::{oneshot, watch, OnceCell};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::super::CONNECT_TIMEOUT;
use crate::server::storage::StoreError;

/// The notification channel of enqueues (and of retried jobs, due at once).
pub(in crate::server::storage::postgres) const CHANNEL: &str = "pytake_jobs";

/// Reconnect backoff of the listener: from the first, doubling up to the
/// last. The workers' poll covers the outage, so the cap can be long.
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(10);

/// What a node keeps about the queue: the counter its workers wait on, the
/// task that moves it on other nodes' enqueues, and the minute it last
/// expired the run counts.
pub(in crate::server::storage::postgres) struct Wake {
    counter: watch::Sender<u64>,
    /// Set once the listener has made its first attempt; started by the
    /// first [`Wake::subscribe`], so a store nobody waits on holds no
    /// listening connection.
    listening: OnceCell<()>,
    /// The minute of the last `job_minutes` expiry; `i64::MIN` before it.
    expired: AtomicI64,
    /// Ends the listener when the store is dropped without being closed.
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
}

impl Wake {
    pub(in crate::server::storage::postgres) fn new() -> Wake {
        let stop = CancellationToken::new();
        Wake {
            counter: watch::Sender::new(0),
            listening: OnceCell::new(),
            expired: AtomicI64::new(i64::MIN),
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
        }
    }

    /// Moves the counter: this node enqueued (its own notification comes
    /// back too, later, and moves it again, which costs a worker a look).
    pub(in crate::server::storage::postgres) fn bump(&self) {
        bump(&self.counter);
    }

    /// Whether the run counts are to be expired in `minute`: once a minute
    /// per node, not on every finish.
    pub(super) fn expiry_due(&self, minute: i64) -> bool {
        self.expired.swap(minute, Ordering::Relaxed) != minute
    }

    /// The counter, once the listener has tried to listen: when that
    /// worked, every enqueue committed after this returns moves it. When
    /// it did not, the listener keeps trying in the background and moves
    /// the counter when it gets through; the workers' poll covers the gap.
    pub(super) async fn subscribe(
        &self,
        pool: &PgPool,
    ) -> Result<watch::Receiver<u64>, StoreError> {
        if pool.is_closed() {
            return Err(sqlx::Error::PoolClosed.into());
        }
        self.listening
            .get_or_init(|| async {
                let (tried, first) = oneshot::channel();
                let listener = Listener {
                    store: pool.clone(),
                    stop: self.stop.clone(),
                    counter: self.counter.clone(),
                    tried: Some(tried),
                };
                tokio::spawn(listener.run());
                // Dropped unsent if the store closed first: nothing to wait for.
                let _ = first.await;
            })
            .await;
        Ok(self.counter.subscribe())
    }
}

/// The task that listens for other nodes' enqueues.
struct Listener {
    /// The store's pool: its connect options, and its close ends the task.
    store: PgPool,
    /// Cancelled when the store is dropped.
    stop: CancellationToken,
    counter: watch::Sender<u64>,
    /// Told after the first attempt to listen, whatever its result.
    tried: Option<oneshot::Sender<()>>,
}

impl Listener {
    /// Listens until the store closes or is dropped, reconnecting with
    /// backoff.
    ///
    /// The listening connection is a pool of its own, built from the
    /// store's options: a connection held for ever would count as in use
    /// in the store pool's figures and leave one fewer for queries. It has
    /// room for two: a listener that failed gives its connection back
    /// after an `UNLISTEN`, which a half-open connection can hold up for
    /// long, and the next listener must not wait for it.
    async fn run(mut self) {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(CONNECT_TIMEOUT)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with((*self.store.connect_options()).clone());
        let (store, stop) = (self.store.clone(), self.stop.clone());
        let mut backoff = RECONNECT_MIN;
        let mut down = false;
        loop {
            let error = tokio::select! {
                _ = store.close_event() => break,
                _ = stop.cancelled() => break,
                error = self.session(&pool, &mut down) => error,
            };
            if down {
                tracing::debug!(%error, "the job queue still cannot listen on PostgreSQL");
            } else {
                // Said once per outage, not at every attempt of it.
                tracing::warn!(%error, "the job queue cannot listen on PostgreSQL for enqueues; workers poll until it can");
                down = true;
                backoff = RECONNECT_MIN;
            }
            self.tried();
            tokio::select! {
                _ = store.close_event() => break,
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(RECONNECT_MAX);
        }
        pool.close().await;
    }

    /// Listens on one connection (the listener reconnects by itself after
    /// a plain disconnection); the error that ended it.
    async fn session(&mut self, pool: &PgPool, down: &mut bool) -> sqlx::Error {
        let mut listener = match PgListener::connect_with(pool).await {
            Ok(listener) => listener,
            Err(e) => return e,
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            return e;
        }
        if std::mem::take(down) {
            tracing::info!("the job queue listens on PostgreSQL again");
        }
        // Enqueues may have committed while nobody listened.
        bump(&self.counter);
        self.tried();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => bump(&self.counter),
                // Reconnected: what was notified meanwhile is lost.
                Ok(None) => bump(&self.counter),
                Err(e) => return e,
            }
        }
    }

    fn tried(&mut self) {
        if let Some(tried) = self.tried.take() {
            let _ = tried.send(());
        }
    }
}

fn bump(counter: &watch::Sender<u64>) {
    counter.send_modify(|n| *n = n.wrapping_add(1));
}
