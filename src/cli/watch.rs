//! `--watch`: a screen refreshed every interval until Ctrl-C (exit 0), in
//! place like `watch(1)` on a terminal, else one refresh after another.
//! A first refresh that fails ends the run with its error (a wrong server
//! or token should not loop); a later one is shown, and the next refresh
//! tries again.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use chrono::Utc;
use tokio::time::MissedTickBehavior;

use super::output::{paint, OutputFormat, Style};
use crate::config::duration;

/// Runs `screen` every `every`; `title` names it (`pytake metrics overview`).
pub async fn watch<F, Fut>(
    title: &str,
    format: OutputFormat,
    color: bool,
    every: Duration,
    mut screen: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<u8>>>,
{
    let in_place = format == OutputFormat::Table && std::io::stdout().is_terminal();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        tokio::select! {
            biased;
            _ = &mut interrupted => return Ok(()),
            _ = ticks.tick() => {}
        }
        let fetched = tokio::select! {
            biased;
            _ = &mut interrupted => return Ok(()),
            fetched = screen() => fetched,
        };
        let body = match fetched {
            Ok(body) => body,
            Err(e) if first => return Err(e),
            Err(e) if in_place => format!("error: {e:#}\n").into_bytes(),
            Err(e) => {
                eprintln!(
                    "{title}: {e:#}; trying again in {}",
                    duration::format(every)
                );
                continue;
            }
        };
        first = false;
        let mut out = std::io::stdout().lock();
        if in_place {
            // Home and clear, then the screen, as watch(1) does.
            let heading = format!(
                "every {}: {title} · {} · Ctrl-C to quit",
                duration::format(every),
                Utc::now().format("%H:%M:%S")
            );
            write!(
                out,
                "\x1b[H\x1b[2J{}\n\n",
                paint(&heading, Style::Dim, color)
            )?;
        }
        out.write_all(&body)?;
        out.flush()?;
    }
}
