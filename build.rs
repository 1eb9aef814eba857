//! Build information for `pytake --version` and `/health`: `built` writes the
//! compiler, target and profile to `$OUT_DIR/built.rs`; the git revision
//! comes from the `git` command line (no libgit2), and the build date from
//! `SOURCE_DATE_EPOCH` or the clock.
//!
//! The script re-runs only when HEAD moves (`.git/HEAD`, the branch it names,
//! `packed-refs`) or `SOURCE_DATE_EPOCH` changes, never for an edited source
//! file. So the revision's `-dirty` mark and the date are those of the last
//! run: exact for a release built from a clean checkout, approximate for an
//! incremental debug build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What a build from a tree without git history (a source tarball) reports.
const UNKNOWN: &str = "unknown";

/// Hex digits of the commit id shown (12 stays unique in large histories).
const REVISION_DIGITS: usize = 12;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    built::write_built_file().expect("write $OUT_DIR/built.rs");
    let revision = git_revision(&manifest_dir)
        .or_else(|| packaged_revision(&manifest_dir))
        .unwrap_or_else(|| UNKNOWN.to_string());
    println!("cargo:rustc-env=PYTAKE_REVISION={revision}");
    println!("cargo:rustc-env=PYTAKE_BUILD_DATE={}", build_date());
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=build.rs");
    for path in git_watch_list(&manifest_dir) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    // The `-dirty` mark must follow edits too, or a binary with uncommitted
    // changes could claim a clean revision: the sources (an edit recompiles
    // the crate anyway; this only adds two git calls) and the index.
    for path in ["src", "Cargo.toml", "Cargo.lock"] {
        println!(
            "cargo:rerun-if-changed={}",
            manifest_dir.join(path).display()
        );
    }
}

/// `git` run in `dir`, its trimmed stdout when it succeeds.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        // `status` would otherwise refresh the index, which the next build
        // could take for a change.
        .arg("--no-optional-locks")
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `1a2b3c4d5e6f`, or `1a2b3c4d5e6f-dirty` with uncommitted changes to
/// tracked files. `None` when this source tree is not a git checkout, or
/// when it sits untracked inside someone else's repository (an unpacked
/// tarball in a home directory kept in git must not report that
/// repository's commit).
fn git_revision(dir: &Path) -> Option<String> {
    git(dir, &["ls-files", "--error-unmatch", "Cargo.toml"])?;
    let commit = git(
        dir,
        &["rev-parse", &format!("--short={REVISION_DIGITS}"), "HEAD"],
    )?;
    let changes = git(dir, &["status", "--porcelain", "--untracked-files=no"])?;
    Some(if changes.is_empty() {
        commit
    } else {
        format!("{commit}-dirty")
    })
}

/// The commit `cargo package` records in `.cargo_vcs_info.json`, for a build
/// from a published crate (`"sha1": "<40 hex>"`, `"dirty": true`).
fn packaged_revision(dir: &Path) -> Option<String> {
    let info = std::fs::read_to_string(dir.join(".cargo_vcs_info.json")).ok()?;
    let after = info.split("\"sha1\"").nth(1)?;
    let sha: String = after
        .chars()
        .skip_while(|c| !c.is_ascii_hexdigit())
        .take_while(char::is_ascii_hexdigit)
        .collect();
    if sha.len() < REVISION_DIGITS {
        return None;
    }
    let dirty = info.replace(' ', "").contains("\"dirty\":true");
    let short = &sha[..REVISION_DIGITS];
    Some(if dirty {
        format!("{short}-dirty")
    } else {
        short.to_string()
    })
}

/// The files whose change means HEAD moved: `HEAD` itself (a checkout), the
/// branch file it points to (a commit), and `packed-refs` (where the branch
/// lives after `git gc`). Only existing files are listed: cargo re-runs the
/// script on every build for a path that does not exist.
fn git_watch_list(dir: &Path) -> Vec<PathBuf> {
    let (Some(git_dir), Some(common_dir)) = (
        git(dir, &["rev-parse", "--absolute-git-dir"]),
        git(
            dir,
            &["rev-parse", "--path-format=absolute", "--git-common-dir"],
        ),
    ) else {
        return Vec::new();
    };
    let (git_dir, common_dir) = (PathBuf::from(git_dir), PathBuf::from(common_dir));
    let mut paths = vec![
        git_dir.join("HEAD"),
        git_dir.join("index"),
        common_dir.join("packed-refs"),
    ];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        paths.push(common_dir.join(branch));
    }
    paths.retain(|p| p.is_file());
    paths
}

/// `2026-12-02`: the day of `SOURCE_DATE_EPOCH` (reproducible builds) or
/// today, in UTC.
fn build_date() -> String {
    use built::chrono::{DateTime, Utc};
    let when = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0))
        .unwrap_or_else(Utc::now);
    when.format("%Y-%m-%d").to_string()
}
