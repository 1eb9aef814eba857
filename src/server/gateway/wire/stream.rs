//! The connection task's side of the wire.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Segment, Wire, RAW_BACKLOG};
use crate::server::gateway::deflate::{self, Inflater};

/// The task's view of the socket, for tungstenite: reads go straight
/// through; writes join the queue, so they never split a frame the hub
/// wrote. tungstenite hands over whole frames, and every write is accepted
/// whole or not at all.
///
/// On a connection that negotiated permessage-deflate, reads go through an
/// [`Inflater`], which turns compressed client messages into plain frames
/// (tungstenite refuses RSV1), and the wire writes event frames compressed.
/// The task's own text frames (replies, replayed events) are compressed
/// one by one when they are large enough; control frames never are.
pub struct WireStream {
    wire: Arc<Wire>,
    inflater: Option<Box<Inflater>>,
}

impl WireStream {
    /// A stream without compression.
    pub fn new(wire: Arc<Wire>) -> WireStream {
        WireStream {
            wire,
            inflater: None,
        }
    }

    /// A stream for a connection that negotiated permessage-deflate:
    /// client messages up to `max_message` bytes once inflated are read
    /// (tungstenite's limit: the same figure), and the wire sends event
    /// frames compressed from now on.
    pub fn deflating(wire: Arc<Wire>, max_message: usize) -> WireStream {
        wire.set_deflate();
        WireStream {
            wire,
            inflater: Some(Box::new(Inflater::new(max_message))),
        }
    }
}

impl AsyncRead for WireStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let WireStream { wire, inflater } = self.get_mut();
        match inflater {
            None => Pin::new(&mut wire.lock().io).poll_read(cx, buf),
            Some(inflater) => inflater.poll_read(cx, buf, |cx, buf| {
                Pin::new(&mut wire.lock().io).poll_read(cx, buf)
            }),
        }
    }
}

impl AsyncWrite for WireStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut s = this.wire.lock();
        if !s.queue.is_empty() {
            if let Poll::Ready(Err(e)) = s.drain(cx) {
                return Poll::Ready(Err(e));
            }
            if s.queue.len() >= RAW_BACKLOG {
                return Poll::Pending;
            }
        }
        // tungstenite writes one whole frame per call (its write buffer
        // is off); one that is a whole text or binary message goes
        // compressed if the connection negotiated it and it pays.
        let compressed = match this.inflater {
            Some(_) => deflate::compress_frame(buf),
            None => None,
        };
        let frame: &[u8] = compressed.as_deref().unwrap_or(buf);
        if s.queue.is_empty() {
            match Pin::new(&mut s.io).poll_write(cx, frame) {
                Poll::Ready(Ok(n)) if n == frame.len() => return Poll::Ready(Ok(buf.len())),
                Poll::Ready(Ok(n)) => s.written = n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        let frame = compressed.unwrap_or_else(|| Bytes::copy_from_slice(buf));
        s.push(Segment::Raw(frame));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.wire.lock();
        ready!(s.drain(cx))?;
        Pin::new(&mut s.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.wire.lock();
        ready!(s.drain(cx))?;
        Pin::new(&mut s.io).poll_shutdown(cx)
    }
}
