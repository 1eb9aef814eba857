//! Output format and colour: a table (or readable lines) on a terminal,
//! JSON lines when piped, unless `--output` says otherwise; colour only on a
//! terminal and never with `NO_COLOR`.

use std::io::IsTerminal;

use clap::ValueEnum;

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

/// Whether to colour stdout: a terminal and no `NO_COLOR` (any non-empty value).
pub fn color_enabled() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
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
