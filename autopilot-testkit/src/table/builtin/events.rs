//! The columns the server prints for Events (core and events.k8s.io, one printer as in Kubernetes):
//! when last and first seen, type, reason, object and message, and for `-o wide` the sub-object,
//! source, count and name.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Cells, Column, NAME_DESCRIPTION, age_of, text};

const SUBOBJECT: &str = "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.";

/// The Event printer.
pub(super) fn event_printer() -> (Vec<Column>, Cells) {
    (
        vec![
            (
                "Last Seen",
                "string",
                0,
                "The time at which the most recent occurrence of this event was recorded.",
            ),
            (
                "Type",
                "string",
                0,
                "Type of this event (Normal, Warning), new types could be added in the future",
            ),
            (
                "Reason",
                "string",
                0,
                "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
            ),
            (
                "Object",
                "string",
                0,
                "The object that this event is about.",
            ),
            ("Subobject", "string", 1, SUBOBJECT),
            (
                "Source",
                "string",
                1,
                "The component reporting this event. Should be a short machine understandable string.",
            ),
            (
                "Message",
                "string",
                0,
                "A human-readable description of the status of this operation.",
            ),
            (
                "First Seen",
                "string",
                1,
                "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
            ),
            (
                "Count",
                "string",
                1,
                "The number of times this event has occurred.",
            ),
            ("Name", "string", 1, NAME_DESCRIPTION),
        ],
        event_cells,
    )
}

/// The first non-empty string among `pointers` (core field names first, events.k8s.io ones after).
fn first<'a>(event: &'a Value, pointers: &[&str]) -> &'a str {
    pointers
        .iter()
        .map(|p| text(event, p))
        .find(|s| !s.is_empty())
        .unwrap_or_default()
}

fn event_cells(event: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let seen = |pointers: &[&str]| {
        let at = first(event, pointers);
        (!at.is_empty()).then(|| age_of(at, now))
    };
    let first_seen = seen(&["/firstTimestamp", "/deprecatedFirstTimestamp"])
        .unwrap_or_else(|| age_of(text(event, "/eventTime"), now));
    let series = event.get("series").filter(|s| !s.is_null());
    let last_seen = match series {
        Some(series) => age_of(text(series, "/lastObservedTime"), now),
        None => seen(&["/lastTimestamp", "/deprecatedLastTimestamp"])
            .unwrap_or_else(|| first_seen.clone()),
    };
    let count = series
        .and_then(|s| s.get("count"))
        .or_else(|| event.get("count"))
        .or_else(|| event.get("deprecatedCount"))
        .and_then(Value::as_i64)
        .filter(|c| *c != 0 || series.is_some())
        .unwrap_or(1);
    let object = ["/involvedObject", "/regarding"]
        .iter()
        .find_map(|p| event.pointer(p).filter(|o| o.is_object()))
        .unwrap_or(&Value::Null);
    let kind = text(object, "/kind").to_lowercase();
    let target = match text(object, "/name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let component = first(
        event,
        &[
            "/source/component",
            "/deprecatedSource/component",
            "/reportingController",
            "/reportingComponent",
        ],
    );
    let instance = first(
        event,
        &[
            "/source/host",
            "/deprecatedSource/host",
            "/reportingInstance",
        ],
    );
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        Value::from(last_seen),
        Value::from(text(event, "/type")),
        Value::from(text(event, "/reason")),
        Value::from(target),
        Value::from(text(object, "/fieldPath")),
        Value::from(source),
        Value::from(first(event, &["/message", "/note"]).trim()),
        Value::from(first_seen),
        Value::from(count),
        Value::from(text(event, "/metadata/name")),
    ]
}
