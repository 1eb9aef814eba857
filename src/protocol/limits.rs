//! Default limits and timeouts. Each one is configurable (see `config`); these
//! are the values a server starts with when nothing says otherwise.

use std::time::Duration;

/// Seed 000: 100 client messages per minute per connection, enough for a
/// dashboard that subscribes and heartbeats, far below what a flood needs.
pub const RATE_LIMIT_PER_MINUTE: u32 = 100;

/// Rejected messages in a row after which a flooding connection is closed
/// (4008); one burst over the limit only earns an `Error rate_limited`.
pub const RATE_LIMIT_STRIKES: u32 = 10;

/// Largest client frame (64 KiB): a subscription or a publish fits many times
/// over; anything larger is a bug or an attack, and the connection is closed.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Frames queued for one connection before it counts as a slow consumer and is
/// closed with 4009. Bounded so that one stalled browser cannot grow memory;
/// the client resumes with `since` and loses nothing.
pub const OUTBOUND_QUEUE: usize = 1024;

/// A connection that has not sent `Auth` by then is closed with 4001.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// Server pings this often, below the 30 s idle timeout of common proxies.
pub const PING_INTERVAL: Duration = Duration::from_secs(25);

/// A connection silent for this long (no frame, no pong) is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A write that makes no progress for this long means the peer stopped
/// reading: it is closed as a slow consumer (4009).
pub const WRITE_STALL: Duration = Duration::from_secs(10);

/// A user stays online this long after its last connection closed, so a
/// page reload (close, then open) does not show it leaving and coming back.
pub const PRESENCE_GRACE: Duration = Duration::from_secs(5);

/// With several nodes, a node whose presence heartbeat (every third of
/// this) stops for this long counts as dead: its users leave every node's
/// listing, and a surviving node announces them offline.
pub const PRESENCE_TTL: Duration = Duration::from_secs(15);

/// Largest `POST /api/v1/events` body (1 MiB); larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Most events in one `POST /api/v1/events` batch.
pub const MAX_BATCH_EVENTS: usize = 1000;

/// Most events one history page (`GET /api/v1/events`) or replay page returns.
pub const MAX_PAGE: u32 = 1000;

/// Default history page size.
pub const DEFAULT_PAGE: u32 = 100;

/// Longest long-poll (`wait=`) a client may ask for; proxies cut longer ones.
pub const MAX_LONG_POLL: Duration = Duration::from_secs(60);

/// Seed 001: clients reconnect after 3 s first, doubling up to 30 s.
pub const RECONNECT_INITIAL: Duration = Duration::from_secs(3);

/// Cap of the reconnect backoff.
pub const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// Rooms one `Subscription` may name.
pub const MAX_ROOMS_PER_SUBSCRIPTION: usize = 100;

/// Rooms one event may be published to: each is a hub lookup on delivery
/// and an index row in the store, so a 1 MiB body cannot name 60,000.
pub const MAX_ROOMS_PER_EVENT: usize = 100;

/// Rooms one connection may be in at once: membership costs hub memory and
/// lock time, so a client cannot join thousands of keyed rooms.
pub const MAX_ROOMS_PER_CONNECTION: usize = 256;

/// Entries of an `event_types` filter (checked for every delivery).
pub const MAX_EVENT_TYPES: usize = 32;

/// How long a request's `Idempotency-Key` is honoured after its first
/// use: far longer than any client's retry loop, short enough that the
/// keys stay few. After it the key is forgotten (ignored by lookups at
/// once, swept hourly).
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// How long an event's own `idempotency_key` is honoured: a week, because
/// such keys are usually the platform's message ids (`wamid`), and the
/// WhatsApp Cloud API keeps redelivering an unacknowledged webhook for up
/// to seven days.
pub const EVENT_KEY_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Longest idempotency key; keys are opaque, usually a UUID.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;

/// A client must send a request's whole header within this, or the
/// connection is closed: a slowloris client dribbling a byte a second
/// would otherwise hold a socket (and a file descriptor) forever.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A request body must keep arriving: a gap longer than this between two
/// of its chunks fails the request (400) and frees the connection.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A request body must have arrived whole within this (1 MiB needs 35 KB/s),
/// or the request is answered 408: a body trickled just inside the gap
/// limit above would otherwise hold its connection for days.
pub const BODY_TOTAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest request target (path and query); longer ones get 414. Every
/// parameter of the API fits many times over.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Long-polls (`GET /api/v1/events?wait=`) held at once, server-wide. Each
/// holds a connection and a task; past this, 503 with `Retry-After`.
pub const MAX_LONG_POLLS: usize = 1024;

/// Long-polls one token subject may hold at once: a browser needs one or
/// two; past this, 429 with `Retry-After`.
pub const MAX_LONG_POLLS_PER_TOKEN: usize = 8;

/// An SSE stream (`GET /api/v1/stream`) with nothing to send writes a
/// `: keep-alive` comment this often: below the 30 to 60 s idle timeouts
/// of common proxies and load balancers, which would otherwise cut a quiet
/// stream.
pub const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The `retry:` hint an SSE stream opens with: how long `EventSource`
/// waits before it reconnects (with `Last-Event-ID`), the same first
/// delay as the other clients' backoff.
pub const SSE_RETRY: Duration = RECONNECT_INITIAL;

/// REST requests per minute per token subject for people's tokens (viewer,
/// operator): seed 003's quota. A dashboard polls a few endpoints every
/// few seconds; more than one a second is a script, which should have a
/// service token.
pub const REST_RATE_LIMIT_PEOPLE: u32 = 60;

/// REST requests per minute per token subject for machines' tokens
/// (service, which posts intake, and admin, which the operator's own tools
/// and the load generator use): 1000 a second, each request up to
/// [`MAX_BATCH_EVENTS`] events, well above what one node stores, so
/// intake is never throttled by it while a runaway client still is.
pub const REST_RATE_LIMIT_MACHINES: u32 = 60_000;

/// Connections not yet authenticated that one source address may hold:
/// enough for a NAT full of browsers reconnecting at once, far too few to
/// exhaust the server from one address (each is closed after the auth
/// timeout anyway).
pub const MAX_UNAUTHENTICATED_PER_ADDRESS: u32 = 64;

/// Most connections a node serves when the open-file limit allows more:
/// past this the hub's fan-out, not descriptors, is what runs out.
pub const MAX_CONNECTIONS_CEILING: u32 = 20_000;
