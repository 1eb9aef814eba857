//! How flag and variable values are read (clap value parsers) and written
//! back (for `config show`): one place, so every setting of a kind reads
//! the same way and says the same thing when it cannot.

use std::time::Duration;

use super::duration;

pub(super) fn parse_positive(s: &str) -> Result<Duration, String> {
    duration::parse_positive(s)
}

pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    duration::parse(s)
}

/// `none` or a positive duration, kept as text for the section to read.
pub(super) fn parse_lifetime(s: &str) -> Result<String, String> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok("none".into());
    }
    duration::parse_positive(s)
        .map(duration::format)
        .map_err(|e| format!("{e}, or `none`"))
}

pub(super) fn parse_count(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => {
            Err(format!("`{s}` is too large"))
        }
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}

/// A per-minute quota: a whole number, 0 for no limit.
pub(super) fn parse_proxy(s: &str) -> Result<crate::server::caps::ProxyNet, String> {
    s.parse()
}

pub(super) fn parse_quota(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) => Ok(n),
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => {
            Err(format!("`{s}` is too large (at most {})", u32::MAX))
        }
        Err(_) => Err(format!("`{s}` is not a whole number (0 for no limit)")),
    }
}

/// A count that the setting keeps as a `u32`.
pub(super) fn parse_count_u32(s: &str) -> Result<u32, String> {
    let n = parse_count(s)?;
    u32::try_from(n).map_err(|_| format!("`{s}` is too large (at most {})", u32::MAX))
}

/// Serializes a set `Option<Duration>` as text (unset ones are skipped).
pub(super) fn some_duration<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    duration::option::serialize(d, s)
}
