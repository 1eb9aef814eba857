//! A reader that goes away (`pytake ... | head`, `| true`) is not an error:
//! the command exits 0 and says nothing about it.

use crate::loadtest_signals::command;
use crate::support::DEADLINE;

/// Runs a short `loadtest --spawn` whose stdout is closed before it prints;
/// returns its exit code and stderr.
async fn loadtest_into_a_closed_pipe(format: &str) -> (Option<i32>, String) {
    let home = tempfile::tempdir().unwrap();
    let mut child = command(
        &[
            "loadtest",
            "--output",
            format,
            "--spawn",
            "--duration",
            "1s",
            "--connections",
            "2",
            // No publishing: a generator short of CPU on a busy 2-core CI
            // machine would mark the run invalid (exit 1), which has
            // nothing to do with the pipe.
            "--rate",
            "0",
        ],
        home.path(),
    )
    .spawn()
    .unwrap();
    // The run takes over a second, so the read end is gone well before the
    // summary is written.
    drop(child.stdout.take());
    let output = tokio::time::timeout(DEADLINE * 2, child.wait_with_output())
        .await
        .expect("loadtest did not finish")
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_table_summary_into_a_closed_pipe_is_success() {
    assert_eq!(
        loadtest_into_a_closed_pipe("table").await,
        (Some(0), String::new())
    );
}

#[tokio::test]
async fn a_json_summary_into_a_closed_pipe_is_success() {
    assert_eq!(
        loadtest_into_a_closed_pipe("json").await,
        (Some(0), String::new())
    );
}

#[tokio::test]
async fn a_csv_summary_into_a_closed_pipe_is_success() {
    assert_eq!(
        loadtest_into_a_closed_pipe("csv").await,
        (Some(0), String::new())
    );
}
