//! The server: HTTP API, WebSocket gateway, ingest, store and bus.
//!
//! `Server::new` opens everything, `listen` serves a bound listener until the
//! shutdown token is cancelled, then drains: sockets closed with 1001,
//! accepted events flushed to the store, store closed.

pub mod api;
pub mod bus;
pub mod demo;
pub mod gateway;
pub mod http;
pub mod ingest;
pub mod state;
pub mod storage;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{load_or_create_secret, open_data_dir, Keys};
use crate::config::Settings;
use gateway::hub::Hub;
use ingest::Ingest;
use state::{AppState, Shared};

/// How long shutdown waits for connections and the writer before giving up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the store")]
    Store(#[from] storage::StoreError),
    #[error("cannot open the bus")]
    Bus(#[from] bus::BusError),
    #[error("cannot create the data dir {path}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot read or create the secret in {path}")]
    Secret {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the configured secret is {len} bytes; HS256 needs at least {}: make one with \
         `openssl rand -hex 32` and give it with --secret-file or PYTAKE_SECRET_FILE",
        crate::auth::MIN_SECRET_BYTES
    )]
    WeakSecret { len: usize },
    #[error("serving HTTP failed")]
    Serve(#[source] std::io::Error),
}

/// A running pytake server.
pub struct Server {
    state: AppState,
}

impl Server {
    /// Opens the store and bus and starts the background tasks.
    pub async fn new(settings: &Settings) -> Result<Server, ServerError> {
        let data_dir = settings.data_dir();
        open_data_dir(&data_dir).map_err(|source| ServerError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let secret = match &settings.auth.secret {
            Some(secret) if secret.len() < crate::auth::MIN_SECRET_BYTES => {
                return Err(ServerError::WeakSecret { len: secret.len() })
            }
            Some(secret) => secret.clone(),
            None => load_or_create_secret(&data_dir).map_err(|source| ServerError::Secret {
                path: data_dir.display().to_string(),
                source,
            })?,
        };
        let store = storage::open(&settings.store_url()).await?;
        let bus = bus::open(&settings.bus.url).await?;
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let hub = Hub::new(store.last_event_id().await?);
        tracker.spawn(hub.clone().run(bus.subscribe(), shutdown.clone()));
        let ingest = Ingest::start(store.clone(), bus.clone(), &tracker, shutdown.clone());
        let state = Arc::new(Shared {
            gateway: settings.gateway.clone(),
            keys: Keys::with_settings(secret.as_bytes(), &settings.tokens()),
            store,
            store_url: settings.store_url(),
            bus,
            hub,
            ingest,
            shutdown,
            tracker,
            started: Instant::now(),
            long_polls: Default::default(),
        });
        Ok(Server { state })
    }

    /// The token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// The shared state (tests and the demo feed reach ingest through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Starts the demo traffic generator.
    pub fn start_demo(&self) {
        let state = self.state.clone();
        self.state.tracker.spawn(demo::run(state));
    }

    /// Serves until shutdown, then drains and closes the store.
    pub async fn listen(self, listener: TcpListener) -> Result<(), ServerError> {
        let state = self.state;
        let app = api::router(state.clone());
        let served = http::serve(listener, app, state.shutdown.clone()).await;
        // Make sure every task sees the shutdown even if serve failed.
        state.shutdown.cancel();
        state.tracker.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, state.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(tasks = state.tracker.len(), "shutdown drain timed out");
        }
        state.store.close().await;
        tracing::info!("stopped");
        served.map_err(ServerError::Serve)
    }
}
