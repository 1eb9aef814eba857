//! The generated files checked in under `completions/` and `man/`, made from
//! the clap model so they never drift (a test compares them).

use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// Every generated file, as (path relative to the repo, contents).
pub fn generated_files() -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for (shell, name) in [
        (Shell::Bash, "pytake.bash"),
        (Shell::Zsh, "_pytake"),
        (Shell::Fish, "pytake.fish"),
        (Shell::PowerShell, "_pytake.ps1"),
        (Shell::Elvish, "pytake.elv"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut command(), "pytake", &mut out);
        files.push((PathBuf::from("completions").join(name), out));
    }
    let root = command();
    man_pages(&root, "pytake", &mut files);
    files
}

/// The clap model with the crate version alone: the checked-in files must
/// not name a git revision, or every commit would make them stale.
fn command() -> clap::Command {
    Cli::command()
        .version(crate::build_info::VERSION)
        .long_version(None::<&str>)
}

fn man_pages(cmd: &clap::Command, name: &str, files: &mut Vec<(PathBuf, Vec<u8>)>) {
    let cmd = cmd.clone().name(name.to_string());
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut out)
        .expect("rendering to memory cannot fail");
    files.push((PathBuf::from("man").join(format!("{name}.1")), out));
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        man_pages(sub, &format!("{name}-{}", sub.get_name()), files);
    }
}
