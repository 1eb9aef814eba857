//! Alerting: rules evaluated by one node at a time, alerts that fire and
//! resolve with a pending duration and a hysteresis band, incidents that
//! group a tenant's alerts, and notifications as queue jobs.
//!
//! Exactly once across nodes: the evaluator holds a lease in the store
//! and writes each evaluation's transitions with one fenced commit that
//! also enqueues the `SystemAlert` events and the notifications, so a
//! transition is recorded, published and notified once, and a node that
//! lost the lease cannot write.

pub mod evaluate;
pub mod machine;
pub mod notification;
pub mod publish;
pub mod runner;
pub mod status;
pub mod values;

/// The job kind that stores a transition's `SystemAlert` event.
pub const EVENT_KIND: &str = "alert.event";

/// The store lease of the evaluator.
pub const LEASE: &str = "alerts.evaluator";
