use super::*;
use serde_json::json;

fn lines(schema: &Value, object: &Value) -> Vec<String> {
    validate(schema, object)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn spec(properties: Value) -> Value {
    json!({"type": "object", "properties": {"spec": {"type": "object", "properties": properties}}})
}

#[test]
fn valid_object_has_no_errors() {
    let schema =
        spec(json!({"replicas": {"type": "integer", "minimum": 0}, "name": {"type": "string"}}));
    assert!(
        validate(
            &schema,
            &json!({"apiVersion": "a/v1", "spec": {"replicas": 2, "name": "x"}})
        )
        .is_empty()
    );
}

#[test]
fn type_errors_name_the_actual_type() {
    let schema = spec(json!({
        "replicas": {"type": "integer"}, "ratio": {"type": "number"}, "on": {"type": "boolean"},
        "tags": {"type": "array"}, "sub": {"type": "object"}, "name": {"type": "string"}
    }));
    let object =
        json!({"spec": {"replicas": "3", "ratio": "x", "on": 1, "tags": {}, "sub": [], "name": 5}});
    assert_eq!(
        lines(&schema, &object),
        vec![
            r#"spec.name: Invalid value: "integer": spec.name in body must be of type string: "integer""#,
            r#"spec.on: Invalid value: "integer": spec.on in body must be of type boolean: "integer""#,
            r#"spec.ratio: Invalid value: "string": spec.ratio in body must be of type number: "string""#,
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#,
            r#"spec.sub: Invalid value: "array": spec.sub in body must be of type object: "array""#,
            r#"spec.tags: Invalid value: "object": spec.tags in body must be of type array: "object""#,
        ]
    );
    assert!(
        validate(&schema, &json!({"spec": {"replicas": 3.0, "ratio": 2}})).is_empty(),
        "integral float is an integer, integer is a number"
    );
    assert_eq!(
        lines(&schema, &json!({"spec": {"replicas": 1.5}})),
        vec![
            r#"spec.replicas: Invalid value: "number": spec.replicas in body must be of type integer: "number""#
        ]
    );
    assert_eq!(
        validate(&schema, &json!({"spec": {"replicas": "3"}}))[0].kind,
        FieldErrorKind::TypeInvalid
    );
}

#[test]
fn null_needs_nullable() {
    let schema = spec(json!({"a": {"type": "string"}, "b": {"type": "string", "nullable": true}}));
    assert_eq!(
        lines(&schema, &json!({"spec": {"a": null, "b": null}})),
        vec![r#"spec.a: Invalid value: "null": spec.a in body must be of type string: "null""#]
    );
}

#[test]
fn required_fields() {
    let schema = json!({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object",
        "required": ["replicas", "image"], "properties": {"replicas": {"type": "integer"}, "image": {"type": "string"}}}}});
    assert_eq!(lines(&schema, &json!({})), vec!["spec: Required value"]);
    let errors = validate(&schema, &json!({"spec": {"image": "x"}}));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "spec.replicas");
    assert_eq!(errors[0].kind, FieldErrorKind::Required);
    assert_eq!(errors[0].message, "Required value");
}

#[test]
fn enums_list_supported_values() {
    let schema = spec(
        json!({"mode": {"type": "string", "enum": ["a", "b"]}, "level": {"type": "integer", "enum": [1, 2]}}),
    );
    assert_eq!(
        lines(&schema, &json!({"spec": {"mode": "x", "level": 3}})),
        vec![
            r#"spec.level: Unsupported value: 3: supported values: "1", "2""#,
            r#"spec.mode: Unsupported value: "x": supported values: "a", "b""#,
        ]
    );
    assert!(validate(&schema, &json!({"spec": {"mode": "b", "level": 2.0}})).is_empty());
    assert_eq!(
        lines(&schema, &json!({"spec": {"level": "one"}})),
        vec![
            r#"spec.level: Invalid value: "string": spec.level in body must be of type integer: "string""#,
            r#"spec.level: Unsupported value: "one": supported values: "1", "2""#,
        ]
    );
}

#[test]
fn numeric_bounds() {
    let schema = spec(json!({
        "a": {"type": "integer", "minimum": 1, "maximum": 10},
        "b": {"type": "integer", "minimum": 1, "exclusiveMinimum": true, "maximum": 10, "exclusiveMaximum": true},
        "c": {"type": "number", "multipleOf": 0.5, "maximum": 1000000}
    }));
    assert_eq!(
        lines(
            &schema,
            &json!({"spec": {"a": 0, "b": 10, "c": 2000000.25}})
        ),
        vec![
            "spec.a: Invalid value: 0: spec.a in body should be greater than or equal to 1",
            "spec.b: Invalid value: 10: spec.b in body should be less than 10",
            "spec.c: Invalid value: 2.00000025e+06: spec.c in body should be a multiple of 0.5",
            "spec.c: Invalid value: 2.00000025e+06: spec.c in body should be less than or equal to 1e+06",
        ]
    );
    assert_eq!(
        lines(&schema, &json!({"spec": {"a": 11, "b": 1}})),
        vec![
            "spec.a: Invalid value: 11: spec.a in body should be less than or equal to 10",
            "spec.b: Invalid value: 1: spec.b in body should be greater than 1",
        ]
    );
}

#[test]
fn string_constraints() {
    let schema = spec(json!({
        "name": {"type": "string", "minLength": 2, "maxLength": 4, "pattern": "^[a-z]+$"},
        "at": {"type": "string", "format": "date-time"},
        "id": {"type": "string", "format": "uuid"},
        "n": {"type": "integer", "format": "int32"}
    }));
    assert_eq!(
        lines(
            &schema,
            &json!({"spec": {"name": "ABCDE", "at": "yesterday", "id": "nope", "n": 5}})
        ),
        vec![
            r#"spec.at: Invalid value: "yesterday": spec.at in body must be of type date-time: "yesterday""#,
            r#"spec.id: Invalid value: "nope": spec.id in body must be of type uuid: "nope""#,
            "spec.name: Too long: may not be more than 4 bytes",
            r#"spec.name: Invalid value: "ABCDE": spec.name in body should match '^[a-z]+$'"#,
        ]
    );
    assert_eq!(
        lines(&schema, &json!({"spec": {"name": "a"}})),
        vec![r#"spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long"#]
    );
    let ok = json!({"spec": {"name": "abc", "at": "2024-01-02T03:04:05Z", "id": "123e4567-e89b-12d3-a456-426614174000"}});
    assert!(validate(&schema, &ok).is_empty());
}

#[test]
fn arrays_and_item_paths() {
    let schema = spec(
        json!({"items": {"type": "array", "minItems": 1, "maxItems": 2,
        "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}}),
    );
    assert_eq!(
        lines(
            &schema,
            &json!({"spec": {"items": [{"name": "a"}, {"name": 1}, {}]}})
        ),
        vec![
            "spec.items: Too many: 3: must have at most 2 items",
            r#"spec.items[1].name: Invalid value: "integer": spec.items[1].name in body must be of type string: "integer""#,
            "spec.items[2].name: Required value",
        ]
    );
    assert_eq!(
        lines(&schema, &json!({"spec": {"items": []}})),
        vec!["spec.items: Invalid value: 0: spec.items in body should have at least 1 items"]
    );
}

#[test]
fn maps_use_dotted_keys_and_property_counts() {
    let schema = spec(json!({"labels": {"type": "object", "maxProperties": 1,
        "additionalProperties": {"type": "string", "maxLength": 3}}}));
    assert_eq!(
        lines(
            &schema,
            &json!({"spec": {"labels": {"foo": "toolong", "b": "ok"}}})
        ),
        vec![
            "spec.labels: Too many: 2: must have at most 1 item",
            "spec.labels.foo: Too long: may not be more than 3 bytes",
        ]
    );
}

#[test]
fn int_or_string() {
    let schema = spec(json!({"port": {"x-kubernetes-int-or-string": true}}));
    assert!(validate(&schema, &json!({"spec": {"port": 80}})).is_empty());
    assert!(validate(&schema, &json!({"spec": {"port": "http"}})).is_empty());
    assert_eq!(
        lines(&schema, &json!({"spec": {"port": true}})),
        vec![
            r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#
        ]
    );
}

#[test]
fn preserve_unknown_fields_skips_type_checks_of_untyped_nodes() {
    let schema = spec(json!({"config": {"x-kubernetes-preserve-unknown-fields": true}}));
    assert!(
        validate(
            &schema,
            &json!({"spec": {"config": {"anything": [1, "x"]}}})
        )
        .is_empty()
    );
}

#[test]
fn embedded_resources_need_api_version_and_kind() {
    let schema = spec(
        json!({"template": {"type": "object", "x-kubernetes-embedded-resource": true,
        "x-kubernetes-preserve-unknown-fields": true}}),
    );
    assert_eq!(
        lines(&schema, &json!({"spec": {"template": {"kind": "Pod"}}})),
        vec!["spec.template.apiVersion: Required value: must not be empty"]
    );
    assert!(
        validate(
            &schema,
            &json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod"}}})
        )
        .is_empty()
    );
}

#[test]
fn list_type_set_and_map_uniqueness() {
    let schema = spec(json!({
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port", "protocol"],
            "items": {"type": "object", "properties": {"port": {"type": "integer"}, "protocol": {"type": "string"}, "name": {"type": "string"}}}}
    }));
    let object = json!({"spec": {
        "tags": ["a", "b", "a"],
        "ports": [{"port": 80, "protocol": "TCP", "name": "a"}, {"port": 80, "protocol": "UDP"}, {"port": 80, "protocol": "TCP", "name": "b"}]
    }});
    let errors = validate(&schema, &object);
    assert_eq!(
        errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![
            r#"spec.ports[2]: Duplicate value: map[string]interface {}{"port":80, "protocol":"TCP"}"#,
            r#"spec.tags[2]: Duplicate value: "a""#,
        ]
    );
    assert!(errors.iter().all(|e| e.kind == FieldErrorKind::Duplicate));
}

#[test]
fn list_type_paths_put_map_keys_in_brackets() {
    let schema = spec(
        json!({"groups": {"type": "object", "additionalProperties": {
        "type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}}}),
    );
    assert_eq!(
        lines(&schema, &json!({"spec": {"groups": {"foo": ["x", "x"]}}})),
        vec![r#"spec.groups[foo][1]: Duplicate value: "x""#]
    );
}

#[test]
fn combinators() {
    let schema = spec(
        json!({"v": {"type": "integer", "anyOf": [{"minimum": 10}, {"maximum": 0}], "not": {"enum": [20]}}}),
    );
    assert!(validate(&schema, &json!({"spec": {"v": 11}})).is_empty());
    let errors = lines(&schema, &json!({"spec": {"v": 5}}));
    assert_eq!(
        errors[0],
        r#"spec.v: Invalid value: "": spec.v in body must validate at least one schema (anyOf)"#
    );
    assert_eq!(
        lines(&schema, &json!({"spec": {"v": 20}})),
        vec![r#"spec.v: Invalid value: "": spec.v in body must not validate the schema (not)"#]
    );
}

#[test]
fn more_string_formats() {
    let schema = spec(json!({
        "id": {"type": "string", "format": "uuid"}, "net": {"type": "string", "format": "cidr"},
        "mac": {"type": "string", "format": "mac"}, "host": {"type": "string", "format": "hostname"},
        "ip": {"type": "string", "format": "ipv4"}, "data": {"type": "string", "format": "byte"},
        "day": {"type": "string", "format": "date"}, "free": {"type": "string", "format": "k8s-unknown"}
    }));
    let ok = json!({"spec": {"id": "123E4567E89B12D3A456426614174000", "net": "10.0.0.0/8", "mac": "01:23:45:67:89:ab",
        "host": "api.example.com", "ip": "10.1.2.3", "data": "aGk=", "day": "2024-02-29", "free": "anything"}});
    assert!(
        validate(&schema, &ok).is_empty(),
        "{:?}",
        lines(&schema, &ok)
    );
    let bad = json!({"spec": {"id": "123", "net": "10.0.0.0/33", "mac": "01:23", "host": "-bad-", "ip": "1.2.3",
        "data": "a", "day": "2023-02-29"}});
    let fields: Vec<String> = validate(&schema, &bad)
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(
        fields,
        [
            "spec.data",
            "spec.day",
            "spec.host",
            "spec.id",
            "spec.ip",
            "spec.mac",
            "spec.net"
        ]
    );
}
