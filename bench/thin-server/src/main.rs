//! The thinnest server `pytake loadtest --server` can drive: WebSocket
//! subscribers by room, `POST /api/v1/events` fanned out to them, and the
//! health and history answers the generator asks for. No token check, no
//! store, no filters, no limits: what is left is the cost of the machine,
//! tokio, tungstenite and the generator. Measured beside pytake by
//! `bench/thin.sh`, it shows how much of a latency figure is pytake's own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use pytake::protocol::api::{ConnectionStats, EventsPage, Health, ProcessStats, PublishResponse};
use pytake::protocol::frames::Subscribed;
use pytake::protocol::{ClientFrame, Event, ServerFrame};
use tokio::sync::mpsc;

type Key = (String, String);

#[derive(Default)]
struct Hub {
    rooms: RwLock<HashMap<Key, Vec<mpsc::UnboundedSender<Utf8Bytes>>>>,
    last: AtomicI64,
}

type AppState = Arc<Hub>;

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!("listening on http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/health", get(health))
        .route("/api/v1/events", get(history).post(publish))
        .route("/ws", get(upgrade))
        .with_state(Arc::new(Hub::default()));
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await.expect("serve");
}

async fn health(State(hub): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: "thin".into(),
        uptime_seconds: 0,
        store: "none".into(),
        bus: "none".into(),
        last_event_id: hub.last.load(Ordering::Relaxed),
        websocket: ConnectionStats {
            total: 0,
            authenticated: 0,
            rooms: 0,
            slow_consumers_closed: 0,
        },
        process: ProcessStats {
            // Read as pytake reads its own, so the two compare.
            rss_bytes: pytake::server::api::resident_memory(),
        },
    })
}

async fn history(State(hub): State<AppState>) -> Json<EventsPage> {
    let head = hub.last.load(Ordering::Relaxed);
    Json(EventsPage {
        events: Vec::new(),
        next_since: head,
        head,
    })
}

async fn publish(State(hub): State<AppState>, body: axum::body::Bytes) -> impl IntoResponse {
    let values: Vec<serde_json::Value> = match serde_json::from_slice(&body) {
        Ok(serde_json::Value::Array(items)) => items,
        Ok(one) => vec![one],
        Err(e) => return (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let mut ids = Vec::with_capacity(values.len());
    for v in values {
        let id = hub.last.fetch_add(1, Ordering::Relaxed) + 1;
        let tenant = v["tenant_id"].as_str().unwrap_or_default().to_string();
        let rooms: Vec<String> = v["rooms"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let event = Event {
            id,
            event_type: v["event_type"].as_str().unwrap_or_default().to_string(),
            tenant_id: tenant.clone(),
            room: rooms.first().cloned().unwrap_or_default(),
            rooms: rooms.clone(),
            data: v["data"].clone(),
            timestamp: chrono::Utc::now(),
        };
        // Serialized once; the same bytes to every subscriber.
        let frame = Utf8Bytes::from(ServerFrame::event_text(&event));
        let map = hub.rooms.read().unwrap();
        for room in rooms {
            if let Some(subscribers) = map.get(&(tenant.clone(), room)) {
                for tx in subscribers {
                    let _ = tx.send(frame.clone());
                }
            }
        }
        ids.push(id);
    }
    (
        axum::http::StatusCode::CREATED,
        Json(PublishResponse {
            ids,
            duplicate: false,
        }),
    )
        .into_response()
}

async fn upgrade(State(hub): State<AppState>, ws: WebSocketUpgrade) -> impl IntoResponse {
    ws.read_buffer_size(1024)
        .on_upgrade(move |socket| connection(hub, socket))
}

async fn connection(hub: AppState, mut socket: WebSocket) {
    // Auth (not checked), then one Subscription.
    let subscription = loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => match ClientFrame::parse(text.as_str()) {
                Ok(ClientFrame::Subscription(s)) => break s,
                _ => continue,
            },
            Some(Ok(_)) => continue,
            _ => return,
        }
    };
    let tenant = subscription.tenant_id.clone().unwrap_or_default();
    let (tx, mut rx) = mpsc::unbounded_channel();
    {
        let mut map = hub.rooms.write().unwrap();
        for room in &subscription.rooms {
            map.entry((tenant.clone(), room.clone()))
                .or_default()
                .push(tx.clone());
        }
    }
    let reply = ServerFrame::Subscribed(Subscribed {
        rooms: subscription.rooms.clone(),
        tenant_id: Some(tenant),
        event_types: None,
        since: None,
        head: hub.last.load(Ordering::Relaxed),
    });
    if socket
        .send(Message::Text(reply.to_text().into()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            frame = rx.recv() => {
                let Some(frame) = frame else { return };
                // Everything queued, then one flush.
                if socket.feed(Message::Text(frame)).await.is_err() {
                    return;
                }
                while let Ok(more) = rx.try_recv() {
                    if socket.feed(Message::Text(more)).await.is_err() {
                        return;
                    }
                }
                if socket.flush().await.is_err() {
                    return;
                }
            }
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
