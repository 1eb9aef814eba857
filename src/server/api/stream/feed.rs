//! What one SSE stream sends: a `retry:` hint, the stored events after its
//! resume point, then live events, one record each, until the client goes,
//! it falls behind, or the server shuts down.

use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse;
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::protocol::limits::SSE_RETRY;
use crate::protocol::Event;
use crate::server::bus::{BusEvent, BusReceiver, Interest};
use crate::server::replay::{Replay, Seam};
use crate::server::storage::EventStore;

/// One stream's state. Its only queue is its receiver of the node's bus:
/// a cursor into the bus's ring of [`BUS_CAPACITY`] messages, so a stream
/// holds no events of its own beyond the replay page being sent.
///
/// Full-queue policy: a stream that falls [`BUS_CAPACITY`] messages
/// behind the bus (its client reads too slowly, or a replay took that
/// long on a busy node) is ended with a `: slow consumer` comment. The
/// client reconnects with `Last-Event-ID` (`EventSource` does so by
/// itself) and resumes from the store, losing nothing.
///
/// [`BUS_CAPACITY`]: crate::server::bus::BUS_CAPACITY
pub struct Feed {
    store: Arc<dyn EventStore>,
    /// The stream's scope; its floor is the last id sent or vouched for
    /// by the replay: live events at or below it are duplicates.
    seam: Seam,
    /// `Some` until the replay has caught up with the store.
    replay: Option<Replay>,
    /// The rest of the replay page being sent.
    page: std::vec::IntoIter<Event>,
    live: BusReceiver,
    /// Keeps this node receiving the stream's tenant(s) from the bus.
    _interest: Interest,
    shutdown: CancellationToken,
    started: bool,
    done: bool,
}

/// What a stream sends next.
#[derive(Debug)]
enum Next {
    /// The `retry:` hint that opens the stream.
    Retry,
    Event(Arc<Event>),
    /// The stream ends, for this reason (sent as a comment).
    End(&'static str),
}

impl Feed {
    /// A stream of `seam`'s scope from after `seam.floor`. `live` and
    /// `interest` must have been taken before anything else read the
    /// store for this stream (see [`crate::server::replay`]).
    pub fn new(
        store: Arc<dyn EventStore>,
        seam: Seam,
        live: BusReceiver,
        interest: Interest,
        shutdown: CancellationToken,
    ) -> Feed {
        Feed {
            store,
            replay: Some(Replay::new(&seam, seam.floor)),
            seam,
            page: Vec::new().into_iter(),
            live,
            _interest: interest,
            shutdown,
            started: false,
            done: false,
        }
    }

    /// The records, for [`sse::Sse`].
    pub fn into_stream(self) -> impl Stream<Item = Result<sse::Event, Infallible>> + Send {
        futures_util::stream::unfold(self, |mut feed| async move {
            let record = match feed.next().await? {
                Next::Retry => sse::Event::default().retry(SSE_RETRY),
                Next::Event(event) => record(&event),
                Next::End(why) => sse::Event::default().comment(why),
            };
            Some((Ok(record), feed))
        })
    }

    /// What to send next, or `None` once the stream has ended.
    async fn next(&mut self) -> Option<Next> {
        if self.done {
            return None;
        }
        if !self.started {
            self.started = true;
            return Some(Next::Retry);
        }
        loop {
            if self.shutdown.is_cancelled() {
                return self.end("server shutting down: reconnect with Last-Event-ID");
            }
            if let Some(event) = self.page.next() {
                return Some(Next::Event(Arc::new(event)));
            }
            if let Some(replay) = &mut self.replay {
                let page = tokio::select! {
                    biased;
                    _ = self.shutdown.cancelled() => continue,
                    page = replay.next_page(&*self.store) => page,
                };
                match page {
                    Ok(page) => {
                        self.seam.floor = replay.floor();
                        if page.last {
                            self.replay = None;
                        }
                        self.page = page.events.into_iter();
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reading history for an SSE stream failed");
                        return self.end("history is unavailable: reconnect with Last-Event-ID");
                    }
                }
                continue;
            }
            let received = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => continue,
                received = self.live.recv() => received,
            };
            match received {
                Ok(BusEvent { event, .. }) => {
                    // Outside the scope, or a copy of what the replay sent.
                    if event.id > self.seam.floor && self.seam.matches(&event) {
                        self.seam.floor = event.id;
                        return Some(Next::Event(event));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(missed, "SSE stream fell behind the bus; ending it");
                    return self.end("slow consumer: reconnect with Last-Event-ID");
                }
                Err(RecvError::Closed) => {
                    return self.end("server shutting down: reconnect with Last-Event-ID");
                }
            }
        }
    }

    /// The last record: a comment saying why the stream ends.
    fn end(&mut self, why: &'static str) -> Option<Next> {
        self.done = true;
        tracing::debug!(why, last_id = self.seam.floor, "SSE stream ends");
        Some(Next::End(why))
    }
}

/// One SSE record: `id:` the event id, `event:` its type, `data:` the
/// same JSON as a WebSocket `Event` frame's payload, on one line.
pub(super) fn record(event: &Event) -> sse::Event {
    // Compact JSON has no raw newline (strings escape theirs), so the
    // payload is one `data:` line; event types are `[A-Za-z0-9_.-]`.
    sse::Event::default()
        .id(event.id.to_string())
        .event(&event.event_type)
        .data(serde_json::to_string(event).expect("events serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Scope, TenantId};
    use crate::server::bus::{Bus, BusMessage, MemoryBus};
    use crate::server::storage::{open, StoreOptions};
    use chrono::Utc;
    use serde_json::json;

    fn event(id: i64, tenant: &str) -> Arc<Event> {
        Arc::new(Event {
            id,
            event_type: "TestEvent".into(),
            tenant_id: tenant.into(),
            room: "erp".into(),
            rooms: vec!["erp".into()],
            data: json!({}),
            timestamp: Utc::now(),
        })
    }

    /// A feed of acme's events on an empty store and a bus of `capacity`.
    async fn feed(
        dir: &tempfile::TempDir,
        capacity: usize,
        shutdown: CancellationToken,
    ) -> (Feed, MemoryBus) {
        let url = format!("sqlite://{}/pytake.db", dir.path().display());
        let stores = open(&url, &StoreOptions::default()).await.unwrap();
        let bus = MemoryBus::new(capacity);
        let seam = Seam {
            floor: 0,
            tenant: Scope::Only(TenantId::parse("acme").unwrap()),
            rooms: Scope::All,
            types: None,
        };
        let live = bus.subscribe();
        let feed = Feed::new(stores.events, seam, live, Interest::free(), shutdown);
        (feed, bus)
    }

    async fn publish(bus: &MemoryBus, event: Arc<Event>) {
        let prev = event.id - 1;
        bus.publish(vec![BusMessage::Event { event, prev }])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn live_events_of_other_tenants_and_repeats_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut feed, bus) = feed(&dir, 16, CancellationToken::new()).await;
        assert!(matches!(feed.next().await, Some(Next::Retry)));
        for (id, tenant) in [(1, "acme"), (2, "globex"), (1, "acme"), (3, "acme")] {
            publish(&bus, event(id, tenant)).await;
        }
        let mut ids = Vec::new();
        for _ in 0..2 {
            match feed.next().await {
                Some(Next::Event(e)) => ids.push(e.id),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(ids, [1, 3]);
    }

    #[tokio::test]
    async fn a_stream_that_falls_behind_the_bus_ends_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let (mut feed, bus) = feed(&dir, 4, CancellationToken::new()).await;
        assert!(matches!(feed.next().await, Some(Next::Retry)));
        for id in 1..=10 {
            publish(&bus, event(id, "acme")).await;
        }
        match feed.next().await {
            Some(Next::End(why)) => assert!(why.starts_with("slow consumer"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(feed.next().await.is_none());
    }

    #[tokio::test]
    async fn shutdown_ends_a_waiting_stream() {
        let dir = tempfile::tempdir().unwrap();
        let shutdown = CancellationToken::new();
        let (mut feed, _bus) = feed(&dir, 4, shutdown.clone()).await;
        assert!(matches!(feed.next().await, Some(Next::Retry)));
        let waiting = tokio::spawn(async move { feed.next().await });
        tokio::task::yield_now().await;
        shutdown.cancel();
        match waiting.await.unwrap() {
            Some(Next::End(why)) => assert!(why.starts_with("server shutting down"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
