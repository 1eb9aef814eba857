//! The server: HTTP API, WebSocket gateway, ingest, store and bus.
//!
//! `Server::new` opens what can fail (data dir, secret, store, bus) and
//! starts nothing; `listen` starts the background tasks and serves a bound
//! listener until the shutdown token is cancelled, then drains: sockets
//! closed with 1001, accepted events flushed to the store, store closed.
//! Tests build one in-process with [`ServerOptions::clock`] on tokio's
//! clock, so `tokio::time::pause()` drives every timer and timestamp.

pub mod alerts;
pub mod api;
pub mod bus;
pub mod caps;
pub mod clock;
pub mod conversations;
pub mod demo;
pub mod demo_webhooks;
pub mod gateway;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod presence;
pub mod queue;
pub mod ratelimit;
pub mod replay;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod webhooks;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{load_or_create_secret, open_data_dir, Keys};
use crate::config::Settings;
use clock::Clock;
use gateway::hub::Hub;
use ingest::Ingest;
use metrics::aggregator::Aggregator;
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
    #[error("[[alerts.rules]] number {number} (`{name}`): {error}")]
    AlertRule {
        number: usize,
        name: String,
        error: crate::protocol::alerts::RuleError,
    },
    #[error("serving HTTP failed")]
    Serve(#[source] std::io::Error),
}

/// What a server is built from.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub settings: Settings,
    /// Where the server reads the time: the system's, or tokio's in tests.
    pub clock: Clock,
}

impl ServerOptions {
    pub fn new(settings: Settings) -> ServerOptions {
        ServerOptions {
            settings,
            clock: Clock::System,
        }
    }

    /// Reads the time from tokio's clock, which a test may pause.
    pub fn clock(mut self, clock: Clock) -> ServerOptions {
        self.clock = clock;
        self
    }
}

/// A task `listen` starts.
pub(crate) type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A pytake server, opened but not yet serving.
pub struct Server {
    state: AppState,
    /// Started by `listen`, so nothing runs before the server serves.
    tasks: Vec<Task>,
}

impl Server {
    /// Opens the data dir, secret, store and bus; starts nothing.
    pub async fn new(options: ServerOptions) -> Result<Server, ServerError> {
        let ServerOptions {
            mut settings,
            clock,
        } = options;
        for (i, rule) in settings.alerts.rules.iter_mut().enumerate() {
            rule.check().map_err(|error| ServerError::AlertRule {
                number: i + 1,
                name: rule.name.clone(),
                error,
            })?;
        }
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
        let stores = storage::open(&settings.store_url(), &settings.store_options()).await?;
        let store = stores.events.clone();
        let bus = bus::open(&settings.bus.url, store.clone()).await?;
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let hub = Hub::new(store.last_event_id().await?);
        let telemetry = Arc::new(telemetry::Telemetry::new());
        let (handoff, handed) = metrics::handoff::channel();
        let (ingest, writer) = Ingest::new(
            store.clone(),
            bus.clone(),
            clock.clone(),
            telemetry.intake.clone(),
            handoff,
        );
        let started = Instant::now();
        telemetry.register_collector(Box::new(telemetry::collector::ServerCollector {
            hub: hub.clone(),
            intake: ingest.shared_stats(),
            bus: bus.clone(),
            started: (telemetry.started, started),
        }));
        let aggregator = Aggregator::new(
            settings.metrics.clone(),
            clock.clone(),
            stores.metrics.clone(),
            bus.clone(),
            hub.clone(),
            handed,
        );
        telemetry.register_collector(Box::new(metrics::prometheus::AggregatorCollector(
            aggregator.clone(),
        )));
        let breakers = queue::Queue::breakers_for(&settings.queue);
        let mut handlers = queue::handlers::Handlers::default();
        handlers.register("noop", Arc::new(queue::handlers::Noop));
        handlers.register(
            "http",
            Arc::new(queue::http::HttpDelivery::new(
                settings.queue.http_timeout,
                breakers.clone(),
            )),
        );
        handlers.register(
            alerts::notification::NOTIFY_KIND,
            Arc::new(alerts::notify::Notifier::new(&settings, breakers.clone())),
        );
        for (source, tenants) in [
            (
                queue::webhook::Source::Whatsapp,
                settings.webhooks.whatsapp.as_ref().map(|w| &w.tenants),
            ),
            (
                queue::webhook::Source::Evolution,
                settings.webhooks.evolution.as_ref().map(|e| &e.tenants),
            ),
        ] {
            // Registered configured or not: jobs stored while it was
            // configured still run after it is removed.
            handlers.register(
                source.kind(),
                Arc::new(queue::webhook::WebhookHandler {
                    source,
                    tenants: tenants.cloned().unwrap_or_default(),
                    ingest: ingest.clone(),
                    clock: clock.clone(),
                }),
            );
        }
        handlers.register(
            alerts::EVENT_KIND,
            Arc::new(alerts::publish::PublishAlert {
                ingest: ingest.clone(),
                clock: clock.clone(),
            }),
        );
        handlers.register(
            conversations::OUTBOX_KIND,
            Arc::new(conversations::PublishTransfer {
                ingest: ingest.clone(),
                clock: clock.clone(),
                store: stores.conversations.clone(),
            }),
        );
        let job_queue = queue::Queue::new(
            stores.jobs.clone(),
            settings.queue.clone(),
            clock.clone(),
            handlers,
            breakers,
        );
        let queue_stats = Arc::new(queue::monitor::Latest::default());
        telemetry.register_collector(Box::new(queue::monitor::QueueCollector {
            queue: job_queue.clone(),
            latest: queue_stats.clone(),
        }));
        let mut tasks: Vec<Task> = vec![
            Box::pin(
                hub.clone()
                    .run(bus.subscribe(), bus.subscribe_frames(), shutdown.clone()),
            ),
            Box::pin(writer.run(shutdown.clone())),
            Box::pin(aggregator.clone().run(shutdown.clone())),
        ];
        let node_id = metrics::system::node_id();
        let presence = presence::Presence::new(
            settings.gateway.presence_grace,
            settings.gateway.presence_ttl,
            clock.clone(),
            bus.clone(),
            &node_id,
        );
        tasks.push(Box::pin(presence.clone().run(shutdown.clone())));
        telemetry.register_collector(Box::new(presence::PresenceCollector(presence.clone())));
        let caps = Arc::new(caps::Caps::new(
            &settings.gateway,
            &settings.server.trusted_proxies,
        ));
        telemetry.register_collector(Box::new(caps::CapsCollector(caps.clone())));
        let rate_limits = ratelimit::RateLimits::new(&settings.server, bus.clone(), &telemetry);
        let state = Arc::new(Shared {
            presence,
            caps,
            rate_limits,
            gateway: settings.gateway.clone(),
            keys: Keys::with_settings(secret.as_bytes(), &settings.tokens()),
            store,
            stores,
            store_url: settings.store_url(),
            bus_url: settings.bus.url.clone(),
            bus,
            hub,
            ingest,
            clock,
            shutdown,
            tracker,
            started,
            long_polls: Default::default(),
            metrics: aggregator,
            node_id,
            telemetry,
            queue: job_queue.clone(),
            queue_stats,
            webhooks: settings.webhooks.clone(),
            alerting: Arc::default(),
            alert_channels: alerts::configured_channels(&settings),
        });
        tasks.extend(job_queue.workers(state.tracker.clone(), state.shutdown.clone()));
        tasks.push(Box::pin(queue::monitor::run(
            state.clone(),
            state.shutdown.clone(),
        )));
        let evaluator = Arc::new(alerts::runner::Evaluator {
            sources: alerts::values::Sources {
                metrics: state.metrics.clone(),
                stores: state.stores.clone(),
                alerts: state.stores.alerts.clone(),
                system_tenant: settings.alerts.system_tenant.clone(),
            },
            settings: settings.alerts.clone(),
            max_attempts: settings.queue.max_attempts,
            clock: state.clock.clone(),
            // 64 random bits: two nodes under one name would both hold
            // the lease.
            node: format!("{}-{:016x}", state.node_id, rand::random::<u64>()),
            status: state.alerting.clone(),
            channels: state.alert_channels.clone(),
        });
        tasks.push(Box::pin(evaluator.run(state.shutdown.clone())));
        tasks.push(Box::pin(metrics::system::run(
            state.clone(),
            state.shutdown.clone(),
        )));
        tasks.push(Box::pin(metrics::push::dashboard(
            state.clone(),
            state.shutdown.clone(),
        )));
        tasks.push(Box::pin(metrics::push::campaigns(
            state.clone(),
            state.shutdown.clone(),
        )));
        Ok(Server { state, tasks })
    }

    /// The token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// The shared state (tests and the demo feed reach ingest through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Generates demo traffic once the server serves: events through
    /// ingest, and webhooks posted to `addr`, this server's own address.
    pub fn start_demo(&mut self, addr: std::net::SocketAddr) {
        self.tasks.push(Box::pin(demo::run(self.state.clone())));
        self.tasks.push(Box::pin(demo_webhooks::run(
            addr,
            self.state.webhooks.clone(),
            self.state.shutdown.clone(),
        )));
    }

    /// Starts the background tasks and serves until shutdown, then drains
    /// and closes the store.
    pub async fn listen(self, listener: TcpListener) -> Result<(), ServerError> {
        let state = self.state;
        for task in self.tasks {
            state.tracker.spawn(task);
        }
        let app = api::router(state.clone());
        let served = http::serve(
            listener,
            app,
            state.shutdown.clone(),
            state.gateway.write_stall,
        )
        .await;
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
