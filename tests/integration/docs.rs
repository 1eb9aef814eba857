//! The checked-in completions and man pages match the clap model.

use crate::support::repo_root;

#[test]
fn completions_and_man_pages_are_up_to_date() {
    let mut stale = Vec::new();
    for (path, contents) in pytake::cli::docs::generated_files() {
        let full = repo_root().join(&path);
        if std::fs::read(&full).ok().as_deref() != Some(&contents[..]) {
            stale.push(path.display().to_string());
            if std::env::var_os("CI").is_none() {
                std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                std::fs::write(&full, &contents).unwrap();
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files (rewritten now outside CI; commit them): {}",
        stale.join(", ")
    );
}

#[test]
fn the_clap_model_is_consistent() {
    use clap::CommandFactory;
    pytake::cli::Cli::command().debug_assert();
}
