//! What this binary was built from, for `pytake --version` and `/health`:
//! a bug report or an operator comparing two nodes needs the commit, not
//! only the crate version. Written by `build.rs`.

/// Compiler, target and profile, as the `built` crate recorded them.
mod built {
    include!(concat!(env!("OUT_DIR"), "/built.rs"));
}

/// The crate version (`0.1.0`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit, 12 hex digits, `-dirty` when tracked files had changes at
/// the build script's last run; `unknown` for a build from a tree without
/// git history (a source tarball).
pub const REVISION: &str = env!("PYTAKE_REVISION");

/// The UTC day of the build script's last run (`2026-12-02`), or of
/// `SOURCE_DATE_EPOCH` when set (reproducible builds).
pub const BUILD_DATE: &str = env!("PYTAKE_BUILD_DATE");

/// `0.1.0 (rev 1a2b3c4d5e6f, built 2026-12-02)`: what `pytake -V` prints
/// after the name.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (rev ",
    env!("PYTAKE_REVISION"),
    ", built ",
    env!("PYTAKE_BUILD_DATE"),
    ")"
);

/// The compiler that built this binary (`rustc 1.89.0 (29483883e 2025-08-04)`).
pub const RUSTC_VERSION: &str = built::RUSTC_VERSION;

/// The target triple (`x86_64-unknown-linux-gnu`).
pub const TARGET: &str = built::TARGET;

/// `debug` or `release` (cargo's base profile; custom profiles inherit one).
pub const PROFILE: &str = built::PROFILE;

/// [`VERSION_LINE`] and, one per line, the compiler, target and profile:
/// what `pytake --version` prints after the name.
pub fn long_version() -> String {
    format!("{VERSION_LINE}\n{RUSTC_VERSION}\ntarget: {TARGET}\nprofile: {PROFILE}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The revision is a commit id (with or without `-dirty`) or `unknown`,
    /// never an empty string or a git error message.
    #[test]
    fn the_revision_is_a_commit_or_unknown() {
        let commit = REVISION.strip_suffix("-dirty").unwrap_or(REVISION);
        assert!(
            REVISION == "unknown"
                || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
            "{REVISION}"
        );
    }

    #[test]
    fn the_build_date_is_a_day() {
        assert!(
            chrono::NaiveDate::parse_from_str(BUILD_DATE, "%Y-%m-%d").is_ok(),
            "{BUILD_DATE}"
        );
    }

    #[test]
    fn the_long_version_starts_with_the_short_one() {
        let long = long_version();
        let lines: Vec<&str> = long.lines().collect();
        assert_eq!(lines.len(), 4, "{long}");
        assert_eq!(
            lines[0],
            format!("{VERSION} (rev {REVISION}, built {BUILD_DATE})")
        );
        assert!(lines[1].starts_with("rustc "), "{long}");
        assert_eq!(lines[2], format!("target: {TARGET}"));
        assert!(lines[3] == "profile: debug" || lines[3] == "profile: release");
    }
}
