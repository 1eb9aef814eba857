//! SIGINT and SIGTERM during `loadtest`: the first winds the run down (k6
//! does the same: stop the load, print what was measured), a second one
//! stops at once, for an operator who will not wait for the drain.

use std::sync::{Arc, Mutex};

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::cli::exit::StopSignal;

/// The signals received so far, watched for the whole run.
pub struct Signals {
    first: CancellationToken,
    second: CancellationToken,
    received: Arc<Mutex<Vec<StopSignal>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Signals {
    /// Installs the handlers. From here on SIGINT and SIGTERM no longer end
    /// the process by themselves: the caller must watch [`Signals::first`]
    /// and [`Signals::second`].
    pub fn listen() -> std::io::Result<Signals> {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let (first, second) = (CancellationToken::new(), CancellationToken::new());
        let received = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let (first, second, received) = (first.clone(), second.clone(), received.clone());
            async move {
                loop {
                    let which = tokio::select! {
                        _ = interrupt.recv() => StopSignal::Interrupt,
                        _ = terminate.recv() => StopSignal::Terminate,
                    };
                    received.lock().expect("signals lock").push(which);
                    if first.is_cancelled() {
                        second.cancel();
                        return;
                    }
                    tracing::info!(signal = %which, "stopping the load");
                    first.cancel();
                }
            }
        });
        Ok(Signals {
            first,
            second,
            received,
            task,
        })
    }

    fn nth(&self, n: usize) -> StopSignal {
        let received = self.received.lock().expect("signals lock");
        received
            .get(n)
            .or(received.last())
            .copied()
            .unwrap_or(StopSignal::Interrupt)
    }

    /// Resolves with the first signal, at once if it already came.
    pub async fn first(&self) -> StopSignal {
        self.first.cancelled().await;
        self.nth(0)
    }

    /// Resolves with the second signal.
    pub async fn second(&self) -> StopSignal {
        self.second.cancelled().await;
        self.nth(1)
    }

    /// The first signal, if one came.
    pub fn received(&self) -> Option<StopSignal> {
        self.first.is_cancelled().then(|| self.nth(0))
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.task.abort();
    }
}
