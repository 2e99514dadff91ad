//! [`Transition`]: what a phase handler asks the runtime to do next.

use std::time::Duration;

/// When a handler that stays in its phase runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recheck {
    /// After this long (or earlier, when the object or one of its inputs changes).
    After(Duration),
    /// After the operator's configured work interval (or earlier, on a change).
    WorkInterval,
    /// Only when the object or one of its inputs changes.
    OnChange,
}

/// The outcome of a phase handler.
///
/// ```
/// use std::time::Duration;
/// use autopilot::{Recheck, Transition};
/// # use autopilot::__doc::RolloutPhase;
///
/// let wait: Transition<RolloutPhase> = Transition::stay_for(Duration::from_secs(30))
///     .with_message("2 of 3 replicas ready");
/// assert_eq!(wait.message(), Some("2 of 3 replicas ready"));
/// assert!(matches!(wait, Transition::Stay { recheck: Recheck::After(_), .. }));
///
/// let next = Transition::next(RolloutPhase::Done);
/// assert_eq!(next.target(), Some(RolloutPhase::Done));
///
/// let fail: Transition<RolloutPhase> = Transition::fail("success rate 91% < 99%");
/// assert_eq!(fail.message(), Some("success rate 91% < 99%"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition<P> {
    /// Stay in the current phase and run its handler again later.
    Stay {
        /// When to run again.
        recheck: Recheck,
        /// Shown in `status.message`.
        message: Option<String>,
    },
    /// Move to another phase (whose handler runs next, unless it is final).
    Next {
        /// The phase to enter.
        phase: P,
        /// Shown in `status.message` and in the transition's Event.
        message: Option<String>,
    },
    /// Give up: enter the phase marked `failure` (or stop in place if none is declared), with a reason.
    Fail {
        /// Why; shown in `status.message`, the `Degraded` condition and a Warning Event.
        reason: String,
    },
}

impl<P: Copy> Transition<P> {
    /// Stays in the phase and runs again after `after` (or on a change, whichever comes first).
    #[must_use]
    pub fn stay_for(after: Duration) -> Self {
        Self::Stay {
            recheck: Recheck::After(after),
            message: None,
        }
    }

    /// Stays in the phase and runs again after the operator's work interval.
    #[must_use]
    pub fn recheck() -> Self {
        Self::Stay {
            recheck: Recheck::WorkInterval,
            message: None,
        }
    }

    /// Stays in the phase until the object or one of its inputs changes.
    #[must_use]
    pub fn wait_for_change() -> Self {
        Self::Stay {
            recheck: Recheck::OnChange,
            message: None,
        }
    }

    /// Moves to `phase`. Once the new phase is in the status, its handler runs in the same reconcile on the
    /// object as just stored (after a few such steps the object goes back to the queue, so a cycle of phases
    /// cannot hold a worker).
    #[must_use]
    pub fn next(phase: P) -> Self {
        Self::Next {
            phase,
            message: None,
        }
    }

    /// Fails with `reason`.
    #[must_use]
    pub fn fail(reason: impl Into<String>) -> Self {
        Self::Fail {
            reason: reason.into(),
        }
    }

    /// Sets the human-readable message written to `status.message`.
    #[must_use]
    pub fn with_message(mut self, text: impl Into<String>) -> Self {
        match &mut self {
            Self::Stay { message, .. } | Self::Next { message, .. } => *message = Some(text.into()),
            Self::Fail { reason } => *reason = text.into(),
        }
        self
    }

    /// The message (or failure reason), if any.
    #[must_use]
    pub fn message(&self) -> Option<&str> {
        match self {
            Self::Stay { message, .. } | Self::Next { message, .. } => message.as_deref(),
            Self::Fail { reason } => Some(reason),
        }
    }

    /// The phase this transition moves to, if it moves.
    #[must_use]
    pub fn target(&self) -> Option<P> {
        match self {
            Self::Next { phase, .. } => Some(*phase),
            Self::Stay { .. } | Self::Fail { .. } => None,
        }
    }
}
