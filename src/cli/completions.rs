//! `pytake completions SHELL`.

use std::io::Write;

use clap::Args;
use clap_complete::Shell;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, powershell or elvish
    pub shell: Shell,
}

pub fn run(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut super::command(), "pytake", &mut out);
    std::io::stdout().lock().write_all(&out)?;
    Ok(())
}
