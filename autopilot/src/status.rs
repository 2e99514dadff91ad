//! The status the runtime keeps on every object: phase, conditions, history and the handlers' own fields.
//!
//! Usable on its own: [`Status::enter`], [`Status::set_condition`] and [`Status::recorded_phase`] are the
//! rules the runtime applies before writing `status` through the status subresource.

use std::borrow::Cow;

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::PhaseEnum;

/// How many past phases [`Status::history`] keeps by default.
pub const HISTORY_LIMIT: usize = 10;

/// Condition types the runtime maintains.
pub mod condition {
    /// `True` in a final phase that is not the failure phase.
    pub const READY: &str = "Ready";
    /// `True` while the object moves through phases that run code.
    pub const PROGRESSING: &str = "Progressing";
    /// `True` when the last attempt failed, the object failed, or its status is not understood.
    pub const DEGRADED: &str = "Degraded";

    /// Reason of `Degraded` when a handler returned an error (retried with backoff).
    pub const HANDLER_ERROR: &str = "HandlerError";
    /// Reason of `Degraded` when `status.phase` names no declared phase.
    pub const UNKNOWN_PHASE: &str = "UnknownPhase";
    /// Reason of `Degraded` after `Transition::fail`.
    pub const FAILED: &str = "Failed";
    /// Reason of `Degraded` = `False` when all is well.
    pub const AS_EXPECTED: &str = "AsExpected";
}

/// Status fields for kinds whose handlers keep none of their own.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct NoFields {}

/// The `status` of an autopilot resource. `#[derive(Autopilot)]` names it `<Kind>Status`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[serde(bound(
    serialize = "P: PhaseEnum, F: Serialize",
    deserialize = "P: PhaseEnum, F: Deserialize<'de>"
))]
#[schemars(bound = "P: PhaseEnum, F: JsonSchema")]
pub struct Status<P, F = NoFields> {
    /// The current phase.
    #[serde(default)]
    pub phase: Option<PhaseValue<P>>,
    /// The `metadata.generation` the phase belongs to; a newer generation restarts at the initial phase.
    #[serde(default)]
    pub observed_generation: Option<i64>,
    /// Kubernetes-shaped conditions: Ready, Progressing, Degraded.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// When the current phase was entered.
    #[serde(default)]
    pub last_transition_time: Option<Time>,
    /// A human-readable note from the last handler run or error.
    #[serde(default)]
    pub message: Option<String>,
    /// The most recent phases entered, oldest first, bounded.
    #[serde(default)]
    pub history: Vec<HistoryEntry<P>>,
    /// The handlers' own fields, flattened into the status.
    #[serde(flatten)]
    pub fields: F,
}

impl<P, F: Default> Default for Status<P, F> {
    fn default() -> Self {
        Self {
            phase: None,
            observed_generation: None,
            conditions: Vec::new(),
            last_transition_time: None,
            message: None,
            history: Vec::new(),
            fields: F::default(),
        }
    }
}

/// One entry of the phase history.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[serde(bound(serialize = "P: PhaseEnum", deserialize = "P: PhaseEnum"))]
#[schemars(bound = "P: PhaseEnum")]
pub struct HistoryEntry<P> {
    /// The phase entered.
    pub phase: PhaseValue<P>,
    /// When.
    pub entered_at: Time,
    /// The transition's message, if any.
    #[serde(default)]
    pub message: Option<String>,
}

/// A phase as read from a stored object: a declared one, or a name this operator does not know.
///
/// Reading never fails on an unknown name (left by another version of the operator or by hand), so the
/// runtime can report it as a condition instead of failing to deserialize the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PhaseValue<P> {
    /// One of the declared phases.
    Known(P),
    /// Any other string.
    Unknown(String),
}

impl<P: PhaseEnum> PhaseValue<P> {
    /// The declared phase, if it is one.
    #[must_use]
    pub fn known(&self) -> Option<P> {
        match self {
            Self::Known(p) => Some(*p),
            Self::Unknown(_) => None,
        }
    }

    /// The name as stored.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Known(p) => p.name(),
            Self::Unknown(s) => s,
        }
    }
}

impl<P> From<P> for PhaseValue<P> {
    fn from(phase: P) -> Self {
        Self::Known(phase)
    }
}

impl<P: PhaseEnum> Serialize for PhaseValue<P> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de, P: PhaseEnum> Deserialize<'de> for PhaseValue<P> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(name.parse().map_or(Self::Unknown(name), Self::Known))
    }
}

impl<P: PhaseEnum> JsonSchema for PhaseValue<P> {
    fn schema_name() -> Cow<'static, str> {
        P::schema_name()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        P::json_schema(generator)
    }
}

/// Now, as a Kubernetes timestamp.
#[must_use]
pub fn now() -> Time {
    Time(Timestamp::now())
}

impl<P: PhaseEnum, F> Status<P, F> {
    /// The recorded phase: `Ok(None)` when none is recorded yet, `Err(name)` when it is not a declared phase.
    ///
    /// # Errors
    /// The stored name, when it is not one of the declared phases.
    pub fn recorded_phase(&self) -> Result<Option<P>, &str> {
        match &self.phase {
            None => Ok(None),
            Some(PhaseValue::Known(p)) => Ok(Some(*p)),
            Some(PhaseValue::Unknown(name)) => Err(name),
        }
    }

    /// Records entering `phase` at `at`: phase, lastTransitionTime, message, bounded history.
    pub fn enter(&mut self, phase: P, message: Option<String>, at: &Time, history_limit: usize) {
        self.phase = Some(PhaseValue::Known(phase));
        self.last_transition_time = Some(at.clone());
        self.history.push(HistoryEntry {
            phase: PhaseValue::Known(phase),
            entered_at: at.clone(),
            message: message.clone(),
        });
        let excess = self.history.len().saturating_sub(history_limit);
        self.history.drain(..excess);
        self.message = message;
    }

    /// Sets condition `type_`, keeping its `lastTransitionTime` when its status does not change.
    pub fn set_condition(
        &mut self,
        type_: &str,
        status: bool,
        reason: &str,
        message: &str,
        generation: Option<i64>,
    ) {
        let status = if status { "True" } else { "False" };
        match self.conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) => {
                if c.status != status {
                    c.last_transition_time = now();
                    status.clone_into(&mut c.status);
                }
                reason.clone_into(&mut c.reason);
                message.clone_into(&mut c.message);
                c.observed_generation = generation;
            }
            None => self.conditions.push(Condition {
                type_: type_.to_owned(),
                status: status.to_owned(),
                reason: reason.to_owned(),
                message: message.to_owned(),
                observed_generation: generation,
                last_transition_time: now(),
            }),
        }
    }

    /// The condition of type `type_`, if set.
    #[must_use]
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Sets `Ready`, `Progressing` and `Degraded` to describe being healthy in `phase`.
    pub fn mark_healthy(&mut self, phase: P, generation: Option<i64>) {
        let name = phase.name();
        let failed = P::failure() == Some(phase);
        let done = phase.is_final();
        self.set_condition(condition::READY, done && !failed, name, "", generation);
        self.set_condition(condition::PROGRESSING, !done, name, "", generation);
        if failed {
            let why = self.message.clone().unwrap_or_default();
            self.set_condition(
                condition::DEGRADED,
                true,
                condition::FAILED,
                &why,
                generation,
            );
        } else {
            self.set_condition(
                condition::DEGRADED,
                false,
                condition::AS_EXPECTED,
                "",
                generation,
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;
    use crate::__doc::RolloutPhase;

    type S = Status<RolloutPhase>;

    #[test]
    fn history_is_bounded_and_keeps_the_latest() {
        let mut status = S::default();
        let at = now();
        for i in 0..7 {
            let phase = if i % 2 == 0 {
                RolloutPhase::Starting
            } else {
                RolloutPhase::Waiting
            };
            status.enter(phase, Some(format!("step {i}")), &at, 3);
        }
        let messages: Vec<_> = status
            .history
            .iter()
            .map(|h| h.message.clone().unwrap())
            .collect();
        assert_eq!(messages, ["step 4", "step 5", "step 6"]);
        assert_eq!(status.recorded_phase(), Ok(Some(RolloutPhase::Starting)));
        assert_eq!(status.message.as_deref(), Some("step 6"));
    }

    #[test]
    fn a_condition_keeps_its_transition_time_until_its_status_flips() {
        let mut status = S::default();
        status.set_condition(condition::READY, false, "Starting", "", Some(1));
        let first = status
            .condition(condition::READY)
            .unwrap()
            .last_transition_time
            .clone();
        std::thread::sleep(std::time::Duration::from_millis(2));
        status.set_condition(condition::READY, false, "Waiting", "still going", Some(1));
        let same = status.condition(condition::READY).unwrap();
        assert_eq!(
            (same.reason.as_str(), same.last_transition_time == first),
            ("Waiting", true)
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
        status.set_condition(condition::READY, true, "Done", "", Some(2));
        let flipped = status.condition(condition::READY).unwrap();
        assert!(flipped.last_transition_time > first);
        assert_eq!(
            (flipped.status.as_str(), flipped.observed_generation),
            ("True", Some(2))
        );
        assert_eq!(status.conditions.len(), 1);
    }

    #[test]
    fn healthy_conditions_follow_the_phase_role() {
        let mut status = S::default();
        status.mark_healthy(RolloutPhase::Waiting, Some(1));
        let get = |s: &S, t: &str| s.condition(t).unwrap().status.clone();
        assert_eq!(
            (
                get(&status, condition::READY),
                get(&status, condition::PROGRESSING)
            ),
            ("False".into(), "True".into())
        );
        status.mark_healthy(RolloutPhase::Done, Some(1));
        assert_eq!(
            (
                get(&status, condition::READY),
                get(&status, condition::PROGRESSING)
            ),
            ("True".into(), "False".into())
        );
        assert_eq!(get(&status, condition::DEGRADED), "False");
    }
}
