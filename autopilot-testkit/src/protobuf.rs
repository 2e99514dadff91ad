//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), which kubectl's typed commands send
//! (`kubectl create namespace|configmap|secret|serviceaccount|role|rolebinding|clusterrole|clusterrolebinding|
//! deployment|service`): the `k8s\0` envelope around a `runtime.Unknown`, whose raw bytes decode, field by
//! field, into the JSON of the same object. Kinds outside the tables below, and fields outside them that
//! carry a value, are refused rather than guessed.

use base64::Engine;
use serde_json::{Map, Value};

/// The shape of one protobuf field.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Text,
    Bytes,
    Int,
    /// An int Go sends only when set (a pointer): zero is a value.
    SetInt,
    Bool,
    /// `meta.v1.Time`: seconds and nanos, written as RFC 3339.
    Time,
    Message(&'static [Field]),
    /// `map<string, string>`.
    TextMap,
    /// `map<string, bytes>`.
    BytesMap,
    /// `util.intstr.IntOrString`: type 1 (0 int, 1 string), intVal 2, strVal 3.
    IntOrString,
}

/// A field: its number, JSON name, shape, and whether it repeats.
#[derive(Debug, Clone, Copy)]
struct Field(u64, &'static str, Shape, bool);

const fn one(tag: u64, name: &'static str, shape: Shape) -> Field {
    Field(tag, name, shape, false)
}

const fn many(tag: u64, name: &'static str, shape: Shape) -> Field {
    Field(tag, name, shape, true)
}

use Shape::{Bool, Bytes, BytesMap, Int, IntOrString, Message, SetInt, Text, TextMap, Time};

const OWNER_REFERENCE: &[Field] = &[
    one(1, "kind", Text),
    one(3, "name", Text),
    one(4, "uid", Text),
    one(5, "apiVersion", Text),
    one(6, "controller", Bool),
    one(7, "blockOwnerDeletion", Bool),
];

const OBJECT_META: &[Field] = &[
    one(1, "name", Text),
    one(2, "generateName", Text),
    one(3, "namespace", Text),
    one(4, "selfLink", Text),
    one(5, "uid", Text),
    one(6, "resourceVersion", Text),
    one(7, "generation", Int),
    one(8, "creationTimestamp", Time),
    one(9, "deletionTimestamp", Time),
    one(10, "deletionGracePeriodSeconds", SetInt),
    one(11, "labels", TextMap),
    one(12, "annotations", TextMap),
    many(13, "ownerReferences", Message(OWNER_REFERENCE)),
    many(14, "finalizers", Text),
];

const METADATA: Field = one(1, "metadata", Message(OBJECT_META));

const NAMESPACE: &[Field] = &[
    METADATA,
    one(2, "spec", Message(&[many(1, "finalizers", Text)])),
    one(3, "status", Message(&[one(1, "phase", Text)])),
];

const CONFIG_MAP: &[Field] = &[
    METADATA,
    one(2, "data", TextMap),
    one(3, "binaryData", BytesMap),
    one(4, "immutable", Bool),
];

const SECRET: &[Field] = &[
    METADATA,
    one(2, "data", BytesMap),
    one(3, "type", Text),
    one(4, "stringData", TextMap),
    one(5, "immutable", Bool),
];

const OBJECT_REFERENCE: &[Field] = &[
    one(1, "kind", Text),
    one(2, "namespace", Text),
    one(3, "name", Text),
    one(4, "uid", Text),
    one(5, "apiVersion", Text),
    one(6, "resourceVersion", Text),
    one(7, "fieldPath", Text),
];

const SERVICE_ACCOUNT: &[Field] = &[
    METADATA,
    many(2, "secrets", Message(OBJECT_REFERENCE)),
    many(3, "imagePullSecrets", Message(&[one(1, "name", Text)])),
    one(4, "automountServiceAccountToken", Bool),
];

const POLICY_RULE: &[Field] = &[
    many(1, "verbs", Text),
    many(2, "apiGroups", Text),
    many(3, "resources", Text),
    many(4, "resourceNames", Text),
    many(5, "nonResourceURLs", Text),
];

const LABEL_SELECTOR: &[Field] = &[
    one(1, "matchLabels", TextMap),
    many(
        2,
        "matchExpressions",
        Message(&[
            one(1, "key", Text),
            one(2, "operator", Text),
            many(3, "values", Text),
        ]),
    ),
];

const ROLE: &[Field] = &[METADATA, many(2, "rules", Message(POLICY_RULE))];

const CLUSTER_ROLE: &[Field] = &[
    METADATA,
    many(2, "rules", Message(POLICY_RULE)),
    one(
        3,
        "aggregationRule",
        Message(&[many(1, "clusterRoleSelectors", Message(LABEL_SELECTOR))]),
    ),
];

const BINDING: &[Field] = &[
    METADATA,
    many(
        2,
        "subjects",
        Message(&[
            one(1, "kind", Text),
            one(2, "apiGroup", Text),
            one(3, "name", Text),
            one(4, "namespace", Text),
        ]),
    ),
    one(
        3,
        "roleRef",
        Message(&[
            one(1, "apiGroup", Text),
            one(2, "kind", Text),
            one(3, "name", Text),
        ]),
    ),
];

const CONTAINER: &[Field] = &[
    one(1, "name", Text),
    one(2, "image", Text),
    many(3, "command", Text),
    many(4, "args", Text),
    one(5, "workingDir", Text),
    many(
        6,
        "ports",
        Message(&[
            one(1, "name", Text),
            one(2, "hostPort", Int),
            one(3, "containerPort", Int),
            one(4, "protocol", Text),
            one(5, "hostIP", Text),
        ]),
    ),
    many(
        7,
        "env",
        Message(&[one(1, "name", Text), one(2, "value", Text)]),
    ),
    one(13, "terminationMessagePath", Text),
    one(14, "imagePullPolicy", Text),
    one(20, "terminationMessagePolicy", Text),
];

const POD_TEMPLATE: &[Field] = &[
    METADATA,
    one(
        2,
        "spec",
        Message(&[
            many(2, "containers", Message(CONTAINER)),
            one(3, "restartPolicy", Text),
            one(6, "dnsPolicy", Text),
            one(7, "nodeSelector", TextMap),
            one(8, "serviceAccountName", Text),
            many(20, "initContainers", Message(CONTAINER)),
        ]),
    ),
];

const DEPLOYMENT: &[Field] = &[
    METADATA,
    one(
        2,
        "spec",
        Message(&[
            one(1, "replicas", SetInt),
            one(2, "selector", Message(LABEL_SELECTOR)),
            one(3, "template", Message(POD_TEMPLATE)),
            one(4, "strategy", Message(&[one(1, "type", Text)])),
            one(5, "minReadySeconds", Int),
        ]),
    ),
    one(3, "status", Message(&[])),
];

const SERVICE: &[Field] = &[
    METADATA,
    one(
        2,
        "spec",
        Message(&[
            many(
                1,
                "ports",
                Message(&[
                    one(1, "name", Text),
                    one(2, "protocol", Text),
                    one(3, "port", Int),
                    one(4, "targetPort", IntOrString),
                    one(5, "nodePort", Int),
                ]),
            ),
            one(2, "selector", TextMap),
            one(3, "clusterIP", Text),
            one(4, "type", Text),
            one(10, "externalName", Text),
        ]),
    ),
    one(3, "status", Message(&[])),
];

const TYPE_META: &[Field] = &[one(1, "apiVersion", Text), one(2, "kind", Text)];

/// The fields of the kinds kubectl creates with protobuf bodies.
fn fields_of(api_version: &str, kind: &str) -> Option<&'static [Field]> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        ("v1", "Service") => SERVICE,
        ("apps/v1", "Deployment") => DEPLOYMENT,
        ("rbac.authorization.k8s.io/v1", "Role") => ROLE,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => CLUSTER_ROLE,
        ("rbac.authorization.k8s.io/v1", "RoleBinding" | "ClusterRoleBinding") => BINDING,
        _ => return None,
    })
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// Not a Kubernetes protobuf envelope, or malformed protobuf.
    #[error("malformed protobuf body")]
    Malformed,
    /// A kind (or a field of it) this decoder has no table for.
    #[error("cannot decode {0} from protobuf")]
    Unsupported(String),
}

/// Decodes a Kubernetes protobuf body into the JSON of the object it carries.
///
/// ```
/// use autopilot_testkit::protobuf::decode;
///
/// // What `kubectl create namespace team` sends.
/// let mut body = b"k8s\0\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x0e\x0a\x08\x0a\x04team\x42\x00\x12\x00\x1a\x00".to_vec();
/// body.extend_from_slice(b"\x1a\x00\x22\x00");
/// let namespace = decode(&body).unwrap();
/// assert_eq!(namespace["kind"], "Namespace");
/// assert_eq!(namespace["metadata"]["name"], "team");
/// ```
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let envelope = body
        .strip_prefix(b"k8s\0")
        .ok_or(ProtobufError::Malformed)?;
    // runtime.Unknown: typeMeta 1, raw 2, contentEncoding 3, contentType 4.
    let mut reader = Reader(envelope);
    let (mut type_meta, mut raw) = (Value::Null, &[][..]);
    while !reader.0.is_empty() {
        let key = reader.varint()?;
        if key & 7 != 2 {
            return Err(ProtobufError::Malformed);
        }
        let bytes = reader.bytes()?;
        match key >> 3 {
            1 => type_meta = message(bytes, TYPE_META)?,
            2 => raw = bytes,
            _ => {}
        }
    }
    let text = |name: &str| {
        type_meta
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let fields = fields_of(&api_version, &kind)
        .ok_or_else(|| ProtobufError::Unsupported(format!("{api_version} {kind}")))?;
    let mut object = message(raw, fields)?;
    if let Value::Object(map) = &mut object {
        map.insert("apiVersion".into(), Value::from(api_version));
        map.insert("kind".into(), Value::from(kind));
    }
    Ok(object)
}

/// A protobuf reader over one message's bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.0.split_first().ok_or(ProtobufError::Malformed)?;
            self.0 = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtobufError::Malformed)
    }

    fn bytes(&mut self) -> Result<&'a [u8], ProtobufError> {
        let len = usize::try_from(self.varint()?).map_err(|_| ProtobufError::Malformed)?;
        if len > self.0.len() {
            return Err(ProtobufError::Malformed);
        }
        let (bytes, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(bytes)
    }
}

fn text(bytes: &[u8]) -> Result<Value, ProtobufError> {
    String::from_utf8(bytes.to_vec())
        .map(Value::from)
        .map_err(|_| ProtobufError::Malformed)
}

/// A `map<string, string>` (or bytes) entry: key 1, value 2.
fn entry(bytes: &[u8], binary: bool) -> Result<(String, Value), ProtobufError> {
    let value_shape = if binary { Bytes } else { Text };
    let entry = message(
        bytes,
        &[one(1, "key", Text), Field(2, "value", value_shape, false)],
    )?;
    let key = entry["key"].as_str().unwrap_or_default().to_string();
    let value = match entry.get("value") {
        Some(value) => value.clone(),
        None => Value::from(""),
    };
    Ok((key, value))
}

/// Formats `meta.v1.Time` as the JSON encoding does; `None` for the zero time (sent as an empty message).
fn time(bytes: &[u8]) -> Result<Option<Value>, ProtobufError> {
    let stamp = message(bytes, &[one(1, "seconds", Int), one(2, "nanos", Int)])?;
    let Some(seconds) = stamp.get("seconds").and_then(Value::as_i64) else {
        return Ok(None);
    };
    let at = chrono::DateTime::from_timestamp(seconds, 0).ok_or(ProtobufError::Malformed)?;
    Ok(Some(Value::from(
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )))
}

/// Decodes a message. Empty singular strings and zero numbers are left out, as the JSON encoding omits
/// them; repeated values are kept as sent.
fn message(bytes: &[u8], fields: &[Field]) -> Result<Value, ProtobufError> {
    let mut reader = Reader(bytes);
    let mut object = Map::new();
    while !reader.0.is_empty() {
        let key = reader.varint()?;
        let (tag, wire) = (key >> 3, key & 7);
        let Some(&Field(_, name, shape, repeated)) = fields.iter().find(|f| f.0 == tag) else {
            // Go writes every non-pointer field; one the table lacks may be skipped only when it
            // carries nothing (empty text or message, zero, false).
            let empty = match wire {
                0 => reader.varint()? == 0,
                2 => reader.bytes()?.is_empty(),
                _ => false,
            };
            if empty {
                continue;
            }
            return Err(ProtobufError::Unsupported(format!("field {tag}")));
        };
        let value = match (shape, wire) {
            (Int, 0) => {
                // Two's complement, as Go writes negative int64s.
                let n = reader.varint()? as i64;
                (n != 0 || repeated).then(|| Value::from(n))
            }
            (SetInt, 0) => Some(Value::from(reader.varint()? as i64)),
            (Bool, 0) => Some(Value::Bool(reader.varint()? != 0)),
            (Text, 2) => {
                let value = text(reader.bytes()?)?;
                (repeated || value.as_str() != Some("")).then_some(value)
            }
            (Bytes, 2) => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(reader.bytes()?);
                Some(Value::from(encoded))
            }
            (Time, 2) => time(reader.bytes()?)?,
            (IntOrString, 2) => {
                let value = message(
                    reader.bytes()?,
                    &[
                        one(1, "type", Int),
                        one(2, "intVal", Int),
                        one(3, "strVal", Text),
                    ],
                )?;
                match value.get("type").and_then(Value::as_i64) {
                    Some(1) => Some(
                        value
                            .get("strVal")
                            .cloned()
                            .unwrap_or_else(|| Value::from("")),
                    ),
                    _ => Some(
                        value
                            .get("intVal")
                            .cloned()
                            .unwrap_or_else(|| Value::from(0)),
                    ),
                }
            }
            (Message(inner), 2) => Some(message(reader.bytes()?, inner)?),
            (TextMap | BytesMap, 2) => {
                let (key, value) = entry(reader.bytes()?, matches!(shape, BytesMap))?;
                let map = object
                    .entry(name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(map) = map.as_object_mut() {
                    map.insert(key, value);
                }
                None
            }
            _ => return Err(ProtobufError::Malformed),
        };
        let Some(value) = value else {
            continue;
        };
        if repeated {
            let list = object
                .entry(name)
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Some(list) = list.as_array_mut() {
                list.push(value);
            }
        } else {
            object.insert(name.to_string(), value);
        }
    }
    Ok(Value::Object(object))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What `kubectl create role r1 --verb=get,list --resource=pods,configmaps --resource-name=x` sends.
    const ROLE_BODY: &[u8] = b"k8s\x00\x0a\x24\x0a\x1crbac.authorization.k8s.io/v1\x12\x04Role\x12\x38\x0a\x12\x0a\x02r1\x12\x00\x1a\x00\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\x12\x22\x0a\x03get\x0a\x04list\x12\x00\x1a\x04pods\x1a\x0aconfigmaps\x22\x01x\x1a\x00\x22\x00";

    #[test]
    fn kubectl_create_role_decodes_to_its_json() {
        assert_eq!(
            decode(ROLE_BODY).unwrap(),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "r1"},
                "rules": [{"verbs": ["get", "list"], "apiGroups": [""],
                    "resources": ["pods", "configmaps"], "resourceNames": ["x"]}]})
        );
    }

    #[test]
    fn unknown_kinds_fields_and_garbage_are_refused() {
        assert_eq!(decode(b"{}"), Err(ProtobufError::Malformed));
        let pod = b"k8s\x00\x0a\x0b\x0a\x02v1\x12\x03Pod\x12\x00";
        assert_eq!(
            decode(pod),
            Err(ProtobufError::Unsupported("v1 Pod".into()))
        );
        // The rules sent as field 9 of the role, which the table does not know.
        let rules_at = ROLE_BODY
            .windows(4)
            .position(|w| w == b"\x12\x22\x0a\x03")
            .unwrap();
        let mut odd = ROLE_BODY.to_vec();
        odd[rules_at] = 0x4a;
        assert_eq!(
            decode(&odd),
            Err(ProtobufError::Unsupported("field 9".into()))
        );
        assert_eq!(decode(&ROLE_BODY[..40]), Err(ProtobufError::Malformed));
    }
}
