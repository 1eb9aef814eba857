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
use crate::server::bus::{BusMessage, BusReceiver, Interest};
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
            let record = feed.next().await?;
            Some((Ok(record), feed))
        })
    }

    /// The next record, or `None` once the stream has ended.
    async fn next(&mut self) -> Option<sse::Event> {
        if self.done {
            return None;
        }
        if !self.started {
            self.started = true;
            return Some(sse::Event::default().retry(SSE_RETRY));
        }
        loop {
            if self.shutdown.is_cancelled() {
                return self.end("server shutting down: reconnect with Last-Event-ID");
            }
            if let Some(event) = self.page.next() {
                return Some(record(&event));
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
                Ok(BusMessage::Event { event, .. }) => {
                    if let Some(record) = self.live_record(&event) {
                        return Some(record);
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

    /// A live event's record, unless it is outside the stream's scope or
    /// at or below its floor (a copy of what the replay sent).
    fn live_record(&mut self, event: &Event) -> Option<sse::Event> {
        if event.id <= self.seam.floor || !self.seam.matches(event) {
            return None;
        }
        self.seam.floor = event.id;
        Some(record(event))
    }

    /// The last record: a comment saying why the stream ends.
    fn end(&mut self, why: &str) -> Option<sse::Event> {
        self.done = true;
        tracing::debug!(why, last_id = self.seam.floor, "SSE stream ends");
        Some(sse::Event::default().comment(why))
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
