//! Graceful shutdown: SIGTERM/SIGINT stop new work, in-flight handlers get a grace period to finish.
//!
//! ```no_run
//! # async fn example() -> Result<(), autopilot::shutdown::ShutdownError> {
//! use autopilot::shutdown::{run_with_grace, shutdown_on_signal, DEFAULT_GRACE_PERIOD};
//!
//! let shutdown = shutdown_on_signal()?;
//! let stop = shutdown.clone();
//! // The work stops taking new items when `stop` fires and finishes what it has in hand.
//! let work = async move { stop.cancelled().await };
//! let finished = run_with_grace(work, &shutdown, DEFAULT_GRACE_PERIOD).await;
//! assert!(finished.is_some());
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long in-flight handlers may run after a shutdown signal, as in controller-runtime.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);

/// Errors of shutdown set-up.
#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    /// A signal handler could not be installed.
    #[error("cannot listen for {signal}")]
    Signal {
        /// The signal's name.
        signal: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Listens for SIGTERM and SIGINT and returns a token cancelled at the first of them.
///
/// The handlers are installed before this returns, so a signal sent right afterwards is not lost. Must be
/// called within a Tokio runtime.
pub fn shutdown_on_signal() -> Result<CancellationToken, ShutdownError> {
    let listen = |kind, name| {
        signal(kind).map_err(|source| ShutdownError::Signal {
            signal: name,
            source,
        })
    };
    let mut terminate = listen(SignalKind::terminate(), "SIGTERM")?;
    let mut interrupt = listen(SignalKind::interrupt(), "SIGINT")?;
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
            () = cancel.cancelled() => return,
        };
        info!(signal = name, "shutting down");
        cancel.cancel();
    });
    Ok(token)
}

/// Runs `work` to completion, but once `stop` is cancelled gives it at most `grace` more time.
///
/// `work` is expected to watch `stop` itself (stop taking new items, finish the ones in hand); this bounds
/// how long that may take. Returns `None` when the grace period ran out and `work` was dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use tokio_util::sync::CancellationToken;
/// use autopilot::shutdown::run_with_grace;
///
/// let stop = CancellationToken::new();
/// stop.cancel();
/// let stubborn = std::future::pending::<()>();
/// assert_eq!(run_with_grace(stubborn, &stop, Duration::from_millis(10)).await, None);
/// # }
/// ```
pub async fn run_with_grace<F: Future>(
    work: F,
    stop: &CancellationToken,
    grace: Duration,
) -> Option<F::Output> {
    tokio::pin!(work);
    tokio::select! {
        output = &mut work => return Some(output),
        () = stop.cancelled() => {}
    }
    match tokio::time::timeout(grace, work).await {
        Ok(output) => Some(output),
        Err(_) => {
            warn!(
                grace_seconds = grace.as_secs_f64(),
                "in-flight work did not finish within the grace period; abandoning it"
            );
            None
        }
    }
}
