//! hyper answers a request it cannot parse (a bad request line or header,
//! a target over 64 KiB, a header over its buffer) itself, before any of
//! our code runs, with an empty 400, 414 or 431. This wrapper around the
//! connection gives those answers the API's JSON error body, so every
//! error a client can meet has one shape.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose parse-error answers are rewritten as JSON.
pub struct JsonParseErrors<T> {
    inner: T,
    /// A rewritten answer being written, and how much of it is out; the
    /// write it replaces reports done once all of it is.
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<T> JsonParseErrors<T> {
    pub fn new(inner: T) -> Self {
        JsonParseErrors {
            inner,
            pending: None,
        }
    }
}

/// hyper's whole automatic answer, e.g. `HTTP/1.1 414 URI Too Long\r\n
/// connection: close\r\ncontent-length: 0\r\ndate: ...\r\n\r\n`, as JSON.
/// Anything else (every response of ours has a body or a content type) is
/// `None`.
fn rewrite(head: &[u8]) -> Option<Vec<u8>> {
    const EMPTY: &str = "\r\ncontent-length: 0\r\n";
    if head.len() > 256 || !head.starts_with(b"HTTP/1.1 4") || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    if !text.contains(EMPTY) || text.contains("content-type") {
        return None;
    }
    let message = match &text[9..12] {
        "400" => "the request is not valid HTTP/1.1 (request line or a header)",
        "414" => "the request target is over 64 KiB (the API's limit is 8 KiB)",
        "431" => "the request header is too large",
        _ => return None,
    };
    let code = match &text[9..12] {
        "400" => "bad_message",
        _ => "payload_too_large",
    };
    let body = format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#);
    let head = text.replacen(
        EMPTY,
        &format!(
            "\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ),
        1,
    );
    Some([head.as_bytes(), body.as_bytes()].concat())
}

impl<T: AsyncWrite + Unpin> JsonParseErrors<T> {
    /// Writes the rewritten answer; `Ready(Ok(n))` with the length of the
    /// write it replaced once all of it is out.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        while let Some((bytes, written, replaced)) = self.pending.as_mut() {
            if *written == bytes.len() {
                let n = *replaced;
                self.pending = None;
                return Poll::Ready(Ok(n));
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        unreachable!("called with an answer pending")
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonParseErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.pending.is_none() {
            match rewrite(buf) {
                Some(answer) => self.pending = Some((answer, 0, buf.len())),
                None => return Pin::new(&mut self.inner).poll_write(cx, buf),
            }
        }
        self.poll_pending(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.pending.is_none() {
            // hyper's automatic answer is a head alone: one buffer.
            let mut used = bufs.iter().filter(|b| !b.is_empty());
            match (used.next(), used.next()) {
                (Some(only), None) if rewrite(only).is_some() => {
                    let answer = rewrite(only).expect("checked");
                    self.pending = Some((answer, 0, only.len()));
                }
                _ => return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
            }
        }
        self.poll_pending(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_empty_answers_become_json_and_nothing_else_changes() {
        let head = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 14:19:25 GMT\r\n\r\n";
        let answer = String::from_utf8(rewrite(head).unwrap()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains("\r\ncontent-type: application/json\r\n"),
            "{head}"
        );
        assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "payload_too_large");
        for ours in [
            &b"HTTP/1.1 414 URI Too Long\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 12\r\n\r\n",
            b"\x81\x05hello",
        ] {
            assert_eq!(rewrite(ours), None);
        }
    }
}
