//! Alerting: rules evaluated by one node at a time, alerts that fire and
//! resolve with a pending duration and a hysteresis band, incidents that
//! group a tenant's alerts, and notifications as queue jobs.

pub mod notification;
pub mod notify;
