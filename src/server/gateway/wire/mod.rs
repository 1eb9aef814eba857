//! A connection's socket, shared by the hub and the connection's task.
//!
//! The hub writes an event's frame straight to the socket when the
//! connection has nothing queued: no channel, no task wake and no poll per
//! delivery, which were over a third of the server's CPU in profiles of a
//! 1,000-connection fan-out. When the socket is full, the hub is behind the
//! bus, or the connection is answering a subscription (replay first, live
//! after), frames queue here and the connection's task writes them, many
//! per syscall. Whatever the task writes itself (replies, pings, Close)
//! joins the same queue through [`WireStream`], so frames never interleave.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{ready, Context, Poll, Waker};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;

use super::deflate;
use crate::protocol::{Event, EventId, ServerFrame};
pub use crate::server::replay::Seam;

/// The byte stream under a connection: the upgraded HTTP connection in the
/// server, an in-memory pipe in tests.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// Frames written with one syscall when the task catches up.
const WRITE_BATCH: usize = 64;

/// Segments the task's own writes may queue behind a full socket before
/// they wait for it: replay pages and replies stay bounded too.
const RAW_BACKLOG: usize = 64;

/// A complete WebSocket frame, built once and written to every subscriber
/// as the same bytes: a stored event's, or a frame with no event id (a
/// metrics push, a presence change) that replay and resume never see.
/// Its permessage-deflate twin is built once too, by the first
/// compressing subscriber to be offered it, and shared by all of them:
/// no context takeover makes one compressed message valid for every
/// connection.
pub struct Delivery {
    /// The stored event the frame carries, if any: the seams between a
    /// replay and live delivery are decided by its id.
    pub event: Option<Arc<Event>>,
    pub frame: Bytes,
    /// The compressed frame, or `None` when the plain one goes to
    /// compressing connections too (small, or incompressible).
    compressed: OnceLock<Option<Bytes>>,
}

impl Delivery {
    /// A stored event's frame.
    pub fn event(event: Arc<Event>) -> Delivery {
        let frame = framed(ServerFrame::event_text(&event));
        Delivery {
            event: Some(event),
            frame,
            compressed: OnceLock::new(),
        }
    }

    /// Any other server frame.
    pub fn frame(frame: &ServerFrame) -> Delivery {
        Delivery {
            event: None,
            frame: framed(frame.to_text()),
            compressed: OnceLock::new(),
        }
    }

    /// The bytes a connection writes: the compressed frame if it
    /// negotiated permessage-deflate and compressing pays, else the plain
    /// one. Compresses on the first call that asks for it.
    pub fn bytes(&self, deflate: bool) -> &Bytes {
        if !deflate {
            return &self.frame;
        }
        self.compressed
            .get_or_init(|| deflate::compress_frame(&self.frame))
            .as_ref()
            .unwrap_or(&self.frame)
    }
}

fn framed(text: String) -> Bytes {
    let mut frame = Vec::with_capacity(text.len() + 10);
    Frame::message(Bytes::from(text), OpCode::Data(Data::Text), true)
        .format(&mut frame)
        .expect("formatting into a Vec cannot fail");
    Bytes::from(frame)
}

impl Seam {
    /// Whether a delivery is a live copy of what the seam sent.
    fn covers_delivery(&self, d: &Delivery) -> bool {
        d.event.as_ref().is_some_and(|e| self.covers(e))
    }
}

enum Segment {
    Event(Arc<Delivery>),
    Raw(Bytes),
}

impl Segment {
    /// The bytes to write on a connection that negotiated permessage-deflate
    /// or not (fixed for the connection's life, so a partly written
    /// segment's length never changes).
    fn bytes(&self, deflate: bool) -> &[u8] {
        match self {
            Segment::Event(d) => d.bytes(deflate),
            Segment::Raw(b) => b,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Live events may be written by the hub.
    Live,
    /// A subscription is being answered: live events wait aside until its
    /// reply (and replay) is out.
    Parked,
    /// Closing: no more events.
    Closed,
}

/// What became of an offered event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Written,
    Queued,
    /// A replay on this connection sends it: a duplicate, dropped.
    Replayed,
    /// The queue is at capacity: a slow consumer.
    Full,
    Closed,
}

struct State {
    io: Box<dyn Io>,
    /// Complete frames to write, in order.
    queue: VecDeque<Segment>,
    /// Bytes of the queue's head already written.
    written: usize,
    /// Live events held while a subscription is answered.
    parked: Vec<Arc<Delivery>>,
    /// The scope a replay in progress has read from the store so far.
    replaying: Option<Seam>,
    seams: Vec<Seam>,
    /// Event frames in `queue` and `parked`, bounded by the capacity.
    events: usize,
    mode: Mode,
    /// The connection's task, woken when there is something to write.
    waker: Option<Waker>,
    /// The connection negotiated permessage-deflate: event frames go
    /// compressed.
    deflate: bool,
}

impl State {
    /// A replay sent or sends this event. Checked before an event is
    /// parked or queued, so copies that a hub behind the bus offers during
    /// and after a replay never count against the queue's capacity.
    fn replayed(&self, d: &Delivery) -> bool {
        self.replaying
            .iter()
            .chain(&self.seams)
            .any(|s| s.covers_delivery(d))
    }

    fn push(&mut self, segment: Segment) {
        if self.queue.is_empty() {
            if let Some(waker) = &self.waker {
                waker.wake_by_ref();
            }
        }
        self.queue.push_back(segment);
    }

    /// Drops queued events that a replay already sent, retiring seams that
    /// live events have passed.
    fn drop_replayed(&mut self) {
        if self.seams.is_empty() {
            return;
        }
        let skip_head = usize::from(self.written > 0);
        let (seams, mut dropped) = (&mut self.seams, 0);
        let mut index = 0;
        self.queue.retain(|segment| {
            index += 1;
            let Segment::Event(d) = segment else {
                return true;
            };
            let Some(event) = d.event.as_ref() else {
                return true;
            };
            if index <= skip_head || seams.is_empty() {
                return true;
            }
            seams.retain(|s| s.floor >= event.id);
            let covered = seams.iter().any(|s| s.covers(event));
            dropped += usize::from(covered);
            !covered
        });
        self.events -= dropped;
    }

    /// Writes the queue until it is empty (ready) or the socket is full
    /// (pending, woken when it drains).
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.drop_replayed();
        while !self.queue.is_empty() {
            let mut slices = [IoSlice::new(&[]); WRITE_BATCH];
            let mut count = 0;
            for (i, segment) in self.queue.iter().take(WRITE_BATCH).enumerate() {
                let bytes = segment.bytes(self.deflate);
                slices[i] = IoSlice::new(if i == 0 {
                    &bytes[self.written..]
                } else {
                    bytes
                });
                count += 1;
            }
            let n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
            while let Some(head) = self.queue.front() {
                let len = head.bytes(self.deflate).len();
                if self.written < len {
                    break;
                }
                self.written -= len;
                if let Some(Segment::Event(_)) = self.queue.pop_front() {
                    self.events -= 1;
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// The shared socket of one connection.
pub struct Wire {
    state: Mutex<State>,
    capacity: usize,
}

impl Wire {
    pub fn new(io: Box<dyn Io>, capacity: usize) -> Wire {
        Wire {
            state: Mutex::new(State {
                io,
                queue: VecDeque::new(),
                written: 0,
                parked: Vec::new(),
                replaying: None,
                seams: Vec::new(),
                events: 0,
                mode: Mode::Live,
                waker: None,
                deflate: false,
            }),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only byte queues behind;
        // the connection fails on its next write if they are inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Event frames go compressed from now on: called once, when the
    /// connection starts, before it can be offered any.
    pub fn set_deflate(&self) {
        self.lock().deflate = true;
    }

    /// The hub's side: writes the event now if nothing is queued and `now`
    /// allows (the hub is not behind), else queues it for the task.
    pub fn offer(&self, delivery: &Arc<Delivery>, now: bool) -> Offer {
        let mut s = self.lock();
        if s.mode == Mode::Closed {
            return Offer::Closed;
        }
        if s.replayed(delivery) {
            return Offer::Replayed;
        }
        if s.mode == Mode::Parked {
            if s.events >= self.capacity {
                return Offer::Full;
            }
            s.parked.push(delivery.clone());
            s.events += 1;
            return Offer::Queued;
        }
        if now && s.queue.is_empty() && s.seams.is_empty() {
            // A no-op waker: if the socket is full, the task is woken below
            // and registers its own waker when it writes.
            let mut cx = Context::from_waker(Waker::noop());
            let frame = delivery.bytes(s.deflate);
            match Pin::new(&mut s.io).poll_write(&mut cx, frame) {
                Poll::Ready(Ok(n)) if n == frame.len() => return Offer::Written,
                Poll::Ready(Ok(n)) => s.written = n,
                // A broken socket shows again when the task writes.
                Poll::Ready(Err(_)) | Poll::Pending => {}
            }
        } else if s.events >= self.capacity {
            return Offer::Full;
        }
        s.events += 1;
        s.push(Segment::Event(delivery.clone()));
        Offer::Queued
    }

    /// Remembers the task's waker; true if frames are waiting.
    pub fn poll_pending(&self, cx: &mut Context<'_>) -> bool {
        let mut s = self.lock();
        if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.waker = Some(cx.waker().clone());
        }
        !s.queue.is_empty()
    }

    /// Wakes the task (a verdict was given).
    pub fn wake(&self) {
        if let Some(waker) = &self.lock().waker {
            waker.wake_by_ref();
        }
    }

    /// Writes what is queued.
    pub fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.lock().drain(cx)
    }

    /// Holds live events aside while the task answers a request; see
    /// [`ParkGuard`].
    pub fn park(self: &Arc<Self>) -> ParkGuard {
        let mut s = self.lock();
        if s.mode == Mode::Live {
            s.mode = Mode::Parked;
        }
        ParkGuard {
            wire: self.clone(),
            answered: false,
        }
    }

    /// A replay of `scope` from `scope.floor` begins (the wire is parked).
    pub fn begin_replay(&self, scope: Seam) {
        self.lock().replaying = Some(scope);
    }

    /// The replay will send everything in its scope up to `id`: it has
    /// read the store's head, and pages until it has sent all of it, or
    /// the connection closes.
    pub fn replaying_to(&self, id: EventId) {
        let mut s = self.lock();
        let State {
            replaying,
            parked,
            events,
            ..
        } = &mut *s;
        let Some(seam) = replaying else { return };
        seam.floor = seam.floor.max(id);
        // Copies parked before the floor reached them stop counting now.
        let before = parked.len();
        parked.retain(|d| !seam.covers_delivery(d));
        *events -= before - parked.len();
    }

    /// The replay is out: its seam drops live copies of what it sent until
    /// live events pass it.
    pub fn end_replay(&self) {
        let mut s = self.lock();
        if let Some(seam) = s.replaying.take() {
            s.seams.push(seam);
        }
    }

    /// No more events: the connection is closing. Events not yet begun are
    /// dropped (the client resumes with `since`), so its Error and Close
    /// frames are not stuck behind a slow consumer's backlog.
    pub fn close(&self) {
        let mut s = self.lock();
        s.mode = Mode::Closed;
        s.parked.clear();
        let keep_head = s.written > 0;
        let mut index = 0;
        s.queue.retain(|segment| {
            index += 1;
            matches!(segment, Segment::Raw(_)) || (index == 1 && keep_head)
        });
        s.events = s
            .queue
            .iter()
            .filter(|segment| matches!(segment, Segment::Event(_)))
            .count();
    }
}

/// Live events held aside while a request is answered. Released, they
/// follow the answer. Dropped unreleased (the answer failed or was
/// abandoned, so the connection is ending), the wire closes at once: a
/// live event written after a partial replay would make the client resume
/// past the events the replay never sent.
pub struct ParkGuard {
    wire: Arc<Wire>,
    answered: bool,
}

impl ParkGuard {
    /// The answer is out: parked events go to the queue, behind it.
    pub fn release(mut self) {
        self.answered = true;
    }
}

impl Drop for ParkGuard {
    fn drop(&mut self) {
        if !self.answered {
            self.wire.close();
            return;
        }
        let mut s = self.wire.lock();
        if s.mode != Mode::Parked {
            return;
        }
        s.mode = Mode::Live;
        // A replay that did not end sent nothing it may vouch for.
        s.replaying = None;
        for delivery in std::mem::take(&mut s.parked) {
            s.push(Segment::Event(delivery));
        }
    }
}

mod stream;
#[cfg(test)]
mod tests;

pub use stream::WireStream;
