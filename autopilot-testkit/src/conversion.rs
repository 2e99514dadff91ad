//! Versions of one stored object: objects are stored in one form and shown in the form of the endpoint that
//! reads them. Events are stored as core/v1 Events and shown as events.k8s.io/v1 Events there (one store, as
//! in Kubernetes); custom resources served at several versions only change their `apiVersion`.

use std::borrow::Cow;

use serde_json::{Map, Value, json};

use crate::registry::ResourceType;

/// How a resource's objects differ from their stored form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Conversion {
    /// Stored as served (at most the `apiVersion` differs).
    #[default]
    Identity,
    /// events.k8s.io/v1 Events, stored as core/v1 Events.
    EventsV1,
}

/// events.k8s.io/v1 field names and their core/v1 counterparts.
const EVENT_FIELDS: [(&str, &str); 7] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(object: &mut Value, pairs: impl Iterator<Item = (&'static str, &'static str)>) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let mut renamed = Map::new();
    for (from, to) in pairs {
        if let Some(value) = map.remove(from) {
            renamed.insert(to.to_string(), value);
        }
    }
    map.extend(renamed);
}

/// The stored form of an object written through `resource`.
pub fn to_storage(resource: &ResourceType, mut object: Value) -> Value {
    if resource.conversion == Conversion::EventsV1 {
        rename(&mut object, EVENT_FIELDS.into_iter());
        object["apiVersion"] = json!("v1");
    }
    object
}

/// Whether `resource` shows an object stored with `api_version` exactly as stored (what [`to_view`] borrows).
pub fn shown_as_stored(resource: &ResourceType, api_version: &str) -> bool {
    match resource.conversion {
        Conversion::EventsV1 => false,
        Conversion::Identity => !resource.custom || resource.is_api_version(api_version),
    }
}

/// A stored object as `resource` shows it.
pub fn to_view<'a>(resource: &ResourceType, stored: &'a Value) -> Cow<'a, Value> {
    let api_version = stored.get("apiVersion").and_then(Value::as_str);
    if shown_as_stored(resource, api_version.unwrap_or_default()) {
        return Cow::Borrowed(stored);
    }
    let mut object = stored.clone();
    if resource.conversion == Conversion::EventsV1 {
        rename(&mut object, EVENT_FIELDS.into_iter().map(|(a, b)| (b, a)));
    }
    object["apiVersion"] = json!(resource.api_version());
    Cow::Owned(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtins;

    #[test]
    fn events_round_trip_through_the_core_form() {
        let resource = builtins()
            .into_iter()
            .find(|r| r.group == "events.k8s.io")
            .unwrap_or_else(|| unreachable!());
        let event = json!({ "apiVersion": "events.k8s.io/v1", "kind": "Event", "note": "hi", "regarding": { "name": "x" }, "reason": "Test" });
        let stored = to_storage(&resource, event.clone());
        assert_eq!(
            (stored["apiVersion"].as_str(), stored["message"].as_str()),
            (Some("v1"), Some("hi"))
        );
        assert_eq!(stored["involvedObject"]["name"], "x");
        assert_eq!(*to_view(&resource, &stored), event);
    }
}
