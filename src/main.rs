//! The `pytake` binary: everything is in [`pytake::cli::main`].

use std::process::ExitCode;

fn main() -> ExitCode {
    pytake::cli::main()
}
