//! Output format and colour: a table (or readable lines) on a terminal,
//! JSON lines when piped, unless `--output` says otherwise. Whether to
//! colour is decided in one place, [`color_enabled`], from `--color` and
//! the conventions anstream follows (`NO_COLOR`, `CLICOLOR_FORCE`,
//! `TERM=dumb`, a terminal or not).

use std::ffi::OsString;
use std::io::IsTerminal;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable: tables, or one line per event
    Table,
    /// One JSON object per line
    Json,
    /// Comma-separated values
    Csv,
}

impl OutputFormat {
    /// The format to use: the flag, else by whether stdout is a terminal.
    pub fn resolve(flag: Option<OutputFormat>) -> OutputFormat {
        flag.unwrap_or(if std::io::stdout().is_terminal() {
            OutputFormat::Table
        } else {
            OutputFormat::Json
        })
    }
}

pub(super) fn formats(
    allowed: &'static [&'static str],
) -> impl TypedValueParser<Value = OutputFormat> {
    PossibleValuesParser::new(allowed).map(|s| match s.as_str() {
        "json" => OutputFormat::Json,
        "csv" => OutputFormat::Csv,
        _ => OutputFormat::Table,
    })
}

/// `--output table|json`, for commands that have no CSV form.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct Output {
    /// Output format [default: table on a terminal, json when piped]
    #[arg(long, short = 'o', value_name = "FORMAT", value_parser = formats(&["table", "json"]))]
    pub output: Option<OutputFormat>,
}

/// `--output table|json|csv`.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct OutputWithCsv {
    /// Output format [default: table on a terminal, json when piped]
    #[arg(long, short = 'o', value_name = "FORMAT", value_parser = formats(&["table", "json", "csv"]))]
    pub output: Option<OutputFormat>,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ColorWhen {
    #[default]
    Auto,
    Always,
    Never,
}

/// Sets the choice every stream asks [`color_enabled`] and clap about.
pub fn set_color(when: ColorWhen) {
    let choice = match when {
        ColorWhen::Auto => anstream::ColorChoice::Auto,
        ColorWhen::Always => anstream::ColorChoice::Always,
        ColorWhen::Never => anstream::ColorChoice::Never,
    };
    choice.write_global();
}

/// `--color` read from raw arguments, so clap's own errors and help (which
/// come before parsing finishes) follow it too.
pub fn color_from_args(args: impl IntoIterator<Item = OsString>) -> ColorWhen {
    let mut when = ColorWhen::Auto;
    let mut next_is_value = false;
    for arg in args {
        let arg = arg.to_string_lossy().into_owned();
        let value = if next_is_value {
            next_is_value = false;
            Some(arg.as_str())
        } else if arg == "--color" {
            next_is_value = true;
            None
        } else {
            arg.strip_prefix("--color=")
        };
        if let Some(v) = value.and_then(|v| ColorWhen::from_str(v, false).ok()) {
            when = v;
        }
    }
    when
}

/// Whether to colour stdout: `--color`, else anstream's reading of the
/// terminal and of `NO_COLOR`, `CLICOLOR_FORCE` and `TERM`.
pub fn color_enabled() -> bool {
    stream_colored(&std::io::stdout())
}

/// The same for stderr (log lines, progress).
pub fn stderr_color_enabled() -> bool {
    stream_colored(&std::io::stderr())
}

fn stream_colored<S: anstream::stream::RawStream>(stream: &S) -> bool {
    anstream::AutoStream::choice(stream) != anstream::ColorChoice::Never
}

/// ANSI styles used by readable output.
#[derive(Debug, Clone, Copy)]
pub enum Style {
    Dim,
    Bold,
    Red,
    Green,
    Yellow,
    Blue,
    Magenta,
    Cyan,
}

/// Wraps `text` in `style` when colour is on.
pub fn paint(text: &str, style: Style, color: bool) -> String {
    if !color {
        return text.to_string();
    }
    let code = match style {
        Style::Dim => "2",
        Style::Bold => "1",
        Style::Red => "31",
        Style::Green => "32",
        Style::Yellow => "33",
        Style::Blue => "34",
        Style::Magenta => "35",
        Style::Cyan => "36",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn when(args: &[&str]) -> ColorWhen {
        color_from_args(args.iter().map(OsString::from))
    }

    #[test]
    fn color_is_read_before_clap_in_both_spellings() {
        assert_eq!(when(&["pytake", "tail"]), ColorWhen::Auto);
        assert_eq!(
            when(&["pytake", "--color", "never", "tail"]),
            ColorWhen::Never
        );
        assert_eq!(
            when(&["pytake", "tail", "--color=always"]),
            ColorWhen::Always
        );
        // A bad value is left for clap to report.
        assert_eq!(when(&["pytake", "--color", "pink"]), ColorWhen::Auto);
    }
}
