//! The open-file limit: every WebSocket connection is a file descriptor,
//! so the server and the load generator raise their soft limit to the hard
//! one at start, and say plainly when even that is not enough.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Raises the soft open-file limit to the hard limit; returns the limit now
/// in force (soft, hard).
pub fn raise() -> (u64, u64) {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return (0, 0);
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return (hard, hard);
    }
    (soft, hard)
}

/// Descriptors a process needs beyond its connections (stdio, listeners,
/// the SQLite files, HTTP clients).
pub const OVERHEAD: u64 = 64;
