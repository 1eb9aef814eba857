//! The wire contract shared by the server and its clients: serde types only,
//! no I/O. Changing anything here changes what browsers and services see.

pub mod alerts;
pub mod api;
pub mod campaigns;
pub mod claims;
pub mod codes;
pub mod conversations;
pub mod dashboard;
pub mod events;
pub mod frames;
pub mod latency;
pub mod limits;
pub mod metrics;
pub mod presence;
pub mod rooms;
pub mod scope;

pub use claims::{Claims, Role};
pub use codes::{close, ErrorCode};
pub use events::{Event, EventId, NewEvent, ValidEvent};
pub use frames::{ClientFrame, ServerFrame, Subscription};
pub use scope::{Room, Scope, TenantId};
