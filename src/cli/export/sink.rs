//! Where an export goes, chunk by chunk: stdout, or a file that appears
//! only when the export is whole. With `-o FILE` the chunks go to a
//! temporary file beside FILE, renamed over it at the end; any failure
//! (the server dies, the disk fills, Ctrl-C) removes it, so a file at
//! FILE is always a complete export, and an older FILE stays as it was.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use tempfile::NamedTempFile;

use crate::protocol::dashboard::ExportFormat;

/// The destination.
pub enum Sink {
    Stdout(std::io::Stdout),
    File { temp: NamedTempFile, path: PathBuf },
}

impl Sink {
    /// A temporary file in FILE's directory (so the rename stays on one
    /// file system and is atomic), or stdout.
    pub fn open(path: Option<&Path>) -> anyhow::Result<Sink> {
        let Some(path) = path else {
            return Ok(Sink::Stdout(std::io::stdout()));
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .with_context(|| format!("{} names no file", path.display()))?;
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".part")
            .tempfile_in(dir)
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        // A file being replaced keeps its permissions; a new one is the
        // temporary file's (readable by its owner only: exports hold the
        // tenants' business data).
        if let Ok(meta) = std::fs::metadata(path) {
            let _ = std::fs::set_permissions(temp.path(), meta.permissions());
        }
        Ok(Sink::File {
            temp,
            path: path.to_path_buf(),
        })
    }

    pub fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stdout(out) => out.write_all(chunk),
            Sink::File { temp, .. } => temp.write_all(chunk),
        }
    }

    /// Flushes and, for a file, puts it in place. Dropping a sink without
    /// finishing it removes its temporary file.
    pub fn finish(self) -> anyhow::Result<()> {
        match self {
            Sink::Stdout(mut out) => Ok(out.flush()?),
            Sink::File { mut temp, path } => {
                temp.flush()?;
                temp.as_file()
                    .sync_all()
                    .with_context(|| format!("cannot write {}", path.display()))?;
                temp.persist(&path)
                    .with_context(|| format!("cannot rename the export to {}", path.display()))?;
                Ok(())
            }
        }
    }

    /// Where the export goes, for messages.
    pub fn describe(&self) -> String {
        match self {
            Sink::Stdout(_) => "stdout".into(),
            Sink::File { path, .. } => path.display().to_string(),
        }
    }
}

/// Bytes (and rows, for the line formats) so far, on stderr when it is a
/// terminal and the export goes to a file. Hidden otherwise.
pub struct Progress {
    bar: ProgressBar,
    /// Rows are lines: NDJSON, and CSV after its header (a JSON string
    /// value escapes its newlines, so no cell holds one).
    count_lines: bool,
    header_lines: u64,
    lines: u64,
}

impl Progress {
    pub fn new(show: bool, format: ExportFormat, len: Option<u64>) -> Progress {
        let (count_lines, header_lines) = match format {
            ExportFormat::Ndjson => (true, 0),
            ExportFormat::Csv => (true, 1),
            ExportFormat::Json => (false, 0),
        };
        let bar = if !show {
            ProgressBar::hidden()
        } else if let Some(len) = len {
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
                )
                .expect("static template"),
            );
            bar
        } else {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {elapsed} {bytes} {binary_bytes_per_sec} {msg}",
                )
                .expect("static template"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        };
        Progress {
            bar,
            count_lines,
            header_lines,
            lines: 0,
        }
    }

    pub fn add(&mut self, chunk: &[u8]) {
        self.bar.inc(chunk.len() as u64);
        if self.count_lines {
            self.lines += memchr::memchr_iter(b'\n', chunk).count() as u64;
            self.bar.set_message(format!("{} rows", self.rows()));
        }
    }

    /// Rows written so far, when the format has them.
    pub fn rows(&self) -> u64 {
        self.lines.saturating_sub(self.header_lines)
    }

    pub fn bytes(&self) -> u64 {
        self.bar.position()
    }

    pub fn counts_rows(&self) -> bool {
        self.count_lines
    }

    /// Takes the bar off the screen.
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }
}
