//! `TestWs`: a WebSocket client that speaks the pytake protocol, with a
//! deadline on every wait.

use futures_util::{SinkExt, StreamExt};
use pytake::protocol::frames::{Subscribed, Welcome};
use pytake::protocol::{ClientFrame, Event, ServerFrame, Subscription};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::DEADLINE;

/// A WebSocket client speaking the pytake protocol.
pub struct TestWs {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a connection ended.
#[derive(Debug, PartialEq)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

impl TestWs {
    pub async fn connect(url: &str) -> TestWs {
        let (ws, _) = tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect timed out")
            .expect("connect");
        TestWs { ws }
    }

    pub async fn connect_with_header(url: &str, name: &str, value: &str) -> TestWs {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = url.into_client_request().expect("request");
        req.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("connect");
        TestWs { ws }
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws
            .send(Message::Text(text.into().into()))
            .await
            .expect("send");
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .expect("send");
    }

    pub async fn send(&mut self, frame: ClientFrame) {
        self.send_text(frame.to_text()).await;
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send_text(value.to_string()).await;
    }

    /// The next frame from the server (pings skipped, and the queue's
    /// `QueueStats` pushes, which a `dashboard` subscriber gets at any
    /// moment and no test here reads); panics on close.
    pub async fn recv(&mut self) -> ServerFrame {
        loop {
            match self.next().await {
                Ok(ServerFrame::QueueStats(_)) => continue,
                Ok(frame) => return frame,
                Err(closed) => panic!("connection closed: {closed:?}"),
            }
        }
    }

    /// The next text frame as the server wrote it.
    pub async fn next_text(&mut self) -> String {
        loop {
            let msg = tokio::time::timeout(DEADLINE, self.ws.next())
                .await
                .expect("no frame from the server in time");
            match msg {
                Some(Ok(Message::Text(text))) => return text.to_string(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next `Event` frame's text as the server wrote it, skipping the
    /// figures pushed to `dashboard` (`Metrics`, `QueueStats`).
    pub async fn next_event_text(&mut self) -> String {
        loop {
            let text = self.next_text().await;
            if !text.starts_with(r#"{"message_type":"Metrics""#)
                && !text.starts_with(r#"{"message_type":"QueueStats""#)
            {
                return text;
            }
        }
    }

    /// The next frame, or how the connection closed.
    pub async fn next(&mut self) -> Result<ServerFrame, Closed> {
        loop {
            let msg = tokio::time::timeout(DEADLINE, self.ws.next())
                .await
                .expect("no frame from the server in time");
            match msg {
                Some(Ok(Message::Text(text))) => {
                    return Ok(ServerFrame::parse(text.as_str())
                        .unwrap_or_else(|e| panic!("bad frame {text}: {e}")))
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(match frame {
                        Some(f) => Closed {
                            code: u16::from(f.code),
                            reason: f.reason.to_string(),
                        },
                        None => Closed {
                            code: u16::from(CloseCode::Status),
                            reason: String::new(),
                        },
                    })
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    return Err(Closed {
                        code: 0,
                        reason: e.to_string(),
                    })
                }
                None => {
                    return Err(Closed {
                        code: 0,
                        reason: "stream ended".into(),
                    })
                }
            }
        }
    }

    /// Reads until the connection closes; returns the close frame. Frames
    /// before it are returned too, for assertions.
    pub async fn closed(&mut self) -> (Vec<ServerFrame>, Closed) {
        let mut frames = Vec::new();
        loop {
            match self.next().await {
                Ok(frame) => frames.push(frame),
                Err(closed) => return (frames, closed),
            }
        }
    }

    pub async fn auth(&mut self, token: &str) -> Welcome {
        self.send(ClientFrame::Auth {
            token: token.into(),
        })
        .await;
        self.welcome().await
    }

    pub async fn welcome(&mut self) -> Welcome {
        match self.recv().await {
            ServerFrame::Welcome(w) => w,
            other => panic!("expected Welcome, got {other:?}"),
        }
    }

    pub async fn subscribe(&mut self, sub: Subscription) -> Subscribed {
        self.send(ClientFrame::Subscription(sub)).await;
        match self.recv().await {
            ServerFrame::Subscribed(s) => s,
            other => panic!("expected Subscribed, got {other:?}"),
        }
    }

    /// The next `Event` frame. `Metrics` and `QueueStats` pushes, and
    /// `Presence` and `Typing` frames, on the way (the `dashboard`,
    /// campaign, `presence` and conversation rooms get them) are skipped:
    /// they are not events and carry no id.
    pub async fn event(&mut self) -> Event {
        loop {
            match self.recv().await {
                ServerFrame::Event(e) => return e,
                ServerFrame::Metrics(_)
                | ServerFrame::QueueStats(_)
                | ServerFrame::Presence(_)
                | ServerFrame::Typing(_) => continue,
                other => panic!("expected Event, got {other:?}"),
            }
        }
    }

    /// The next `Error` frame's code and message.
    pub async fn error(&mut self) -> (String, String) {
        match self.recv().await {
            ServerFrame::Error(e) => (e.code.to_string(), e.message),
            other => panic!("expected Error, got {other:?}"),
        }
    }

    /// Checks the connection still answers (Heartbeat → HeartbeatAck).
    pub async fn alive(&mut self) {
        self.send(ClientFrame::Heartbeat).await;
        loop {
            match self.recv().await {
                ServerFrame::HeartbeatAck { .. } => return,
                ServerFrame::Event(_) => continue,
                other => panic!("expected HeartbeatAck, got {other:?}"),
            }
        }
    }
}
