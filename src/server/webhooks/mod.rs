//! Webhooks of the WhatsApp platforms, turned into pytake events.
//!
//! The HTTP endpoint only checks who is calling
//! ([`whatsapp::verify_signature`], [`whatsapp::handshake`],
//! [`evolution::check_api_key`]) and stores the raw body as a job; a worker
//! later calls the source's `translate` on it. Translating is pure: the
//! same bytes give the same events with the same idempotency keys, so a
//! webhook the platform redelivers, or a job that runs twice, stores each
//! event once. A body that cannot be turned into events is [`Unusable`],
//! and its job is dead-lettered with the reason.
//!
//! - [`whatsapp`]: the WhatsApp Cloud API (Meta).
//! - [`evolution`]: the Evolution API v2 (WhatsApp Web through Baileys).
//! - `batch`: one payload's events, each key once.
//! - `ids`: conversation ids, idempotency keys, phone numbers.
//! - `node`: reading JSON with the path of every value, for the reasons.
//!
//! docs/webhooks.md is the operator's side: set-up, the mapping, what is
//! skipped and what is dead-lettered.

mod batch;
pub mod evolution;
mod ids;
mod node;
pub mod whatsapp;

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::protocol::rooms::validate_tenant;
use crate::protocol::NewEvent;
use node::{shown, Node};

/// Why a payload that arrived could not be turned into events: the job goes to dead letters
/// with this text, which an operator reads in `pytake queue dead`, so say what was wrong
/// and where (JSON path), e.g. "entry[0].changes[0].value.metadata.phone_number_id `123` is
/// not mapped to a tenant: add it to [webhooks.whatsapp] tenants".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unusable(pub String);

/// What one payload became: events ready for intake (each a
/// `crate::protocol::NewEvent` with `tenant_id: Some(..)`, `idempotency_key: Some(..)`,
/// `timestamp: Some(..)` from the payload), plus what was deliberately not turned into an
/// event (e.g. an Evolution `connection.update`), in words, so the worker can log it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Translation {
    pub events: Vec<NewEvent>,
    pub skipped: Vec<String>,
}

/// The tenant a provider's account id (`phone_number_id`, an Evolution
/// `instance`) is mapped to by the config `section`. An unmapped id, or a
/// mapping to a malformed tenant id, dead-letters the payload: retried
/// after the config is fixed, it translates in full.
fn tenant<'t>(
    tenants: &'t BTreeMap<String, String>,
    node: &Node,
    id: &str,
    section: &str,
) -> Result<&'t str, Unusable> {
    let Some(tenant) = tenants.get(id) else {
        return Err(node.unusable(format!(
            "`{}` is not mapped to a tenant: add it to [{section}] tenants",
            shown(id)
        )));
    };
    validate_tenant(tenant).map_err(|e| {
        Unusable(format!(
            "[{section}] tenants maps `{}` to a tenant id pytake refuses: {e}",
            shown(id)
        ))
    })?;
    Ok(tenant)
}

/// Whether a secret someone presented equals the configured one, in time
/// that depends on neither: both are MACed to a fixed length first and the
/// MACs compared in constant time, so not even the length leaks.
fn same_secret(presented: &str, configured: &str) -> bool {
    let mac = |s: &str| {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"pytake webhook secret comparison")
            .expect("HMAC takes a key of any length");
        mac.update(s.as_bytes());
        mac.finalize()
    };
    // `CtOutput`'s equality is constant-time (subtle).
    mac(presented) == mac(configured)
}

#[cfg(test)]
mod tests;
