//! The generated files checked in under `completions/`, `man/` and
//! `docs/`, made from the clap model and the settings groups so they never
//! drift (a test compares them).

use std::fmt::Write as _;
use std::path::PathBuf;

use clap_complete::Shell;

use crate::config::flags::{all_groups, key_of};

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
    let mut root = command();
    // Propagates the global options into every subcommand's page.
    root.build();
    man_pages(&root, "pytake", &mut files);
    files.push((PathBuf::from("docs/cli.md"), cli_reference().into_bytes()));
    files.push((
        PathBuf::from("docs/settings.md"),
        settings_reference().into_bytes(),
    ));
    files
}

/// The clap model with the crate version alone: the checked-in files must
/// not name a git revision, or every commit would make them stale.
fn command() -> clap::Command {
    super::command()
        .version(crate::build_info::VERSION)
        .long_version(None::<&str>)
}

fn man_pages(cmd: &clap::Command, name: &str, files: &mut Vec<(PathBuf, Vec<u8>)>) {
    let cmd = cmd.clone().name(name.to_string());
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    let rendered = (|| -> std::io::Result<()> {
        man.render_title(&mut out)?;
        man.render_name_section(&mut out)?;
        man.render_synopsis_section(&mut out)?;
        man.render_description_section(&mut out)?;
        if cmd.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(&mut out)?;
        }
        if cmd.has_subcommands() {
            man.render_subcommands_section(&mut out)?;
        }
        out.extend_from_slice(environment_section(&cmd).as_bytes());
        out.extend_from_slice(exit_status_section().as_bytes());
        man.render_version_section(&mut out)
    })();
    rendered.expect("rendering to memory cannot fail");
    files.push((PathBuf::from("man").join(format!("{name}.1")), out));
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        man_pages(sub, &format!("{name}-{}", sub.get_name()), files);
    }
}

/// roff escapes for text in a man page.
fn roff(text: &str) -> String {
    text.replace('\\', "\\\\").replace('-', "\\-")
}

/// The variables this command reads: its own flags' and the global ones.
fn environment_section(cmd: &clap::Command) -> String {
    let mut out = String::from(".SH ENVIRONMENT\n");
    let mut any = false;
    for arg in cmd.get_arguments() {
        let Some(var) = crate::config::flags::env_of(arg.get_id().as_str()) else {
            continue;
        };
        any = true;
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        let _ = write!(
            out,
            ".TP\n\\fB{}\\fR\nAs \\fB\\-\\-{}\\fR: {}\n",
            roff(&var),
            roff(arg.get_long().unwrap_or_default()),
            roff(&help)
        );
    }
    let _ = write!(
        out,
        ".TP\n\\fBRUST_LOG\\fR\nLog filter (e.g. \\fBdebug\\fR or \\fBpytake=debug\\fR); overrides \\fB\\-v\\fR and \\fB\\-q\\fR.\n\
         .TP\n\\fBNO_COLOR\\fR, \\fBCLICOLOR_FORCE\\fR, \\fBTERM\\fR\nColour with \\fB\\-\\-color auto\\fR: off when NO_COLOR is set or TERM=dumb, forced by CLICOLOR_FORCE.\n"
    );
    if !any {
        return String::new();
    }
    out
}

fn exit_status_section() -> String {
    let mut out = String::from(".SH \"EXIT STATUS\"\n");
    for line in super::EXIT_CODES.lines().skip(1) {
        let line = line.trim();
        match line.split_once(char::is_whitespace) {
            Some((code, meaning)) if code.parse::<u8>().is_ok() => {
                let _ = write!(out, ".TP\n\\fB{code}\\fR\n{}\n", roff(meaning.trim()));
            }
            _ => {
                let _ = write!(out, ".PP\n{}\n", roff(line));
            }
        }
    }
    out
}

/// `docs/cli.md`: every command's `--help`, as the binary prints it.
fn cli_reference() -> String {
    let mut out = String::from(
        "# Command reference\n\n\
         Generated from the code (`cargo test` rewrites it; CI fails when it is stale).\n\
         Every settings flag is also a `PYTAKE_*` variable and a config file key: see\n\
         [settings.md](settings.md).\n",
    );
    let mut root = command().term_width(100);
    root.build();
    help_of(&root, "pytake", &mut out);
    out
}

fn help_of(cmd: &clap::Command, name: &str, out: &mut String) {
    let mut cmd = cmd
        .clone()
        .name(name.to_string())
        .bin_name(name.to_string());
    let _ = write!(
        out,
        "\n## `{name}`\n\n```text\n{}```\n",
        cmd.render_long_help()
    );
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        help_of(sub, &format!("{name} {}", sub.get_name()), out);
    }
}

/// `docs/settings.md`: every setting with its section, key, flag,
/// variable and default.
fn settings_reference() -> String {
    let mut out = String::from(
        "# Settings\n\n\
         Generated from the code (`cargo test` rewrites it; CI fails when it is stale).\n\n\
         Each setting is a key of a section of the config file, a `PYTAKE_*` environment\n\
         variable and a flag of the commands that use it. Precedence: flags > environment >\n\
         config file > defaults. The config file is `--config FILE`, else `PYTAKE_CONFIG`,\n\
         else `<user config dir>/pytake/config.toml` if it exists (`pytake config init` writes a\n\
         commented one). `pytake config show --origin` prints the settings in effect and where\n\
         each came from; `pytake config check FILE` validates a file.\n\n\
         Durations are written like `30s`, `15m`, `24h` or `7d`. Secrets (`secret`, `token`)\n\
         are never printed by `config show` and never logged; give them as files\n\
         (`secret_file`, `token_file`) to keep them out of `ps` and the environment.\n\n\
         | section | key | flag | variable | default | meaning |\n\
         |---|---|---|---|---|---|\n",
    );
    for (section, args) in all_groups() {
        for arg in args {
            let id = arg.get_id().as_str();
            let key = key_of(section, id);
            let default = crate::config::default_text(&format!("{section}.{key}"))
                .map(|d| format!("`{d}`"))
                .unwrap_or_default();
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let _ = writeln!(
                out,
                "| `[{section}]` | `{key}` | `--{}` | `{}` | {default} | {} |",
                arg.get_long().unwrap_or(id),
                arg.get_env()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                help.replace('|', "\\|")
            );
        }
    }
    out.push_str(
        "\nAn example file, with every key at its default (`pytake config init -` prints it):\n\n```toml\n",
    );
    out.push_str(&crate::config::init_text());
    out.push_str("```\n");
    out
}
