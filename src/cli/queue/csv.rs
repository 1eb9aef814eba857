//! `pytake queue list|dead --output csv`: a row per job, its fields as
//! the API names them, but the payload (a webhook's whole body does not
//! belong in a spreadsheet; `--output json` has it). Times as the API
//! writes them; empty cells are values the job does not have.

use super::render::time;
use crate::server::storage::jobs::Job;

/// The columns, in the API's field order.
const COLUMNS: [&str; 14] = [
    "id",
    "queue",
    "kind",
    "priority",
    "status",
    "attempts",
    "max_attempts",
    "run_at",
    "lease_expires_at",
    "last_error",
    "correlation_id",
    "tenant_id",
    "created_at",
    "updated_at",
];

/// One row per job, in the listing's order (newest first).
pub fn jobs(list: &[Job]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS).expect("write to memory");
    for j in list {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        w.write_record([
            j.id.to_string(),
            j.queue.clone(),
            j.kind.clone(),
            j.priority.to_string(),
            j.status.to_string(),
            j.attempts.to_string(),
            j.max_attempts.to_string(),
            time(j.run_at),
            j.lease_expires_at.map(time).unwrap_or_default(),
            text(&j.last_error),
            text(&j.correlation_id),
            text(&j.tenant_id),
            time(j.created_at),
            time(j.updated_at),
        ])
        .expect("write to memory");
    }
    w.into_inner().expect("flush to memory")
}
