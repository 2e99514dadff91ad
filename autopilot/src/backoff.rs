//! Capped exponential backoff with jitter, kept per object.
//!
//! kube-runtime leaves the delay after a failed reconcile to the caller; the runtime uses [`Backoff`] with a
//! [`Failures`] table so a failing object is retried ever more slowly, without a tight loop, while other
//! objects proceed.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

/// Delays for consecutive failures: `base · 2^(n-1)`, capped at `max`, then scaled by a random factor in
/// `[1 - jitter, 1]` so objects that failed together do not retry together.
///
/// ```
/// use std::time::Duration;
/// use autopilot::backoff::Backoff;
///
/// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10)).with_jitter(0.0);
/// assert_eq!(backoff.delay(1), Duration::from_millis(100));
/// assert_eq!(backoff.delay(4), Duration::from_millis(800));
/// assert_eq!(backoff.delay(30), Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    jitter: f64,
}

impl Default for Backoff {
    /// 1 s doubling up to 5 min, with 20 % jitter.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(300))
    }
}

impl Backoff {
    /// Backoff from `base` doubling up to `max`, with 20 % jitter.
    #[must_use]
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            jitter: 0.2,
        }
    }

    /// Sets the jitter fraction (clamped to `0..=1`).
    #[must_use]
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 1.0);
        self
    }

    /// The delay before retry number `attempt` (1 for the first failure).
    #[must_use]
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(32);
        let raw = self
            .base
            .saturating_mul(1_u32 << exponent.min(31))
            .min(self.max);
        if self.jitter == 0.0 {
            return raw;
        }
        raw.mul_f64(1.0 - self.jitter * fastrand::f64())
    }
}

/// One object's failure streak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streak {
    /// Consecutive failures so far.
    pub attempts: u32,
    /// No retry before this instant.
    pub not_before: Instant,
    /// The `metadata.generation` that failed; a newer spec starts afresh.
    pub generation: Option<i64>,
}

/// Failure streaks per object key.
#[derive(Debug)]
pub struct Failures<Key> {
    backoff: Backoff,
    streaks: Mutex<HashMap<Key, Streak>>,
}

impl<Key: Eq + Hash + Clone> Failures<Key> {
    /// An empty table using `backoff`.
    #[must_use]
    pub fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            streaks: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failure and returns the delay before the next attempt.
    pub fn failed(&self, key: &Key, generation: Option<i64>) -> (u32, Duration) {
        let mut streaks = self.streaks.lock().unwrap_or_else(PoisonError::into_inner);
        let attempts = streaks
            .get(key)
            .filter(|s| s.generation == generation)
            .map_or(1, |s| s.attempts.saturating_add(1));
        let delay = self.backoff.delay(attempts);
        streaks.insert(
            key.clone(),
            Streak {
                attempts,
                not_before: Instant::now() + delay,
                generation,
            },
        );
        (attempts, delay)
    }

    /// Ends the streak of `key` (after a success, or once the object is gone).
    pub fn succeeded(&self, key: &Key) {
        self.streaks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// How long `key` must still wait, if it is backing off at `generation`.
    #[must_use]
    pub fn remaining(&self, key: &Key, generation: Option<i64>) -> Option<Duration> {
        let streaks = self.streaks.lock().unwrap_or_else(PoisonError::into_inner);
        let streak = streaks.get(key).filter(|s| s.generation == generation)?;
        let left = streak.not_before.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// Forgets the streaks of keys `keep` rejects (objects that are gone).
    pub fn retain(&self, mut keep: impl FnMut(&Key) -> bool) {
        self.streaks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|k, _| keep(k));
    }

    /// The current streak of `key`.
    #[must_use]
    pub fn streak(&self, key: &Key) -> Option<Streak> {
        self.streaks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .copied()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_bounds_and_cap_holds() {
        let backoff =
            Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).with_jitter(0.5);
        for attempt in 1..40 {
            let d = backoff.delay(attempt);
            let raw = Duration::from_millis(100)
                .saturating_mul(1 << (attempt - 1).min(31))
                .min(Duration::from_secs(1));
            assert!(
                d <= raw && d >= raw / 2,
                "attempt {attempt}: {d:?} vs {raw:?}"
            );
        }
    }

    #[test]
    fn streaks_grow_and_reset_on_new_generation() {
        let failures = Failures::new(Backoff::default().with_jitter(0.0));
        assert_eq!(failures.failed(&"a", Some(1)), (1, Duration::from_secs(1)));
        assert_eq!(failures.failed(&"a", Some(1)), (2, Duration::from_secs(2)));
        assert!(failures.remaining(&"a", Some(1)).is_some());
        // A new spec is not held back by the old streak.
        assert!(failures.remaining(&"a", Some(2)).is_none());
        assert_eq!(failures.failed(&"a", Some(2)).0, 1);
        failures.succeeded(&"a");
        assert!(failures.streak(&"a").is_none());
        // Streaks of objects that are gone can be dropped.
        failures.failed(&"b", None);
        failures.failed(&"c", None);
        failures.retain(|k| *k == "c");
        assert!(failures.streak(&"b").is_none() && failures.streak(&"c").is_some());
    }
}
