//! Projects a result onto a `ProjectionPlan` and serializes it in one pass, straight into the
//! bytes of a graphql-transport-ws payload: only the selected fields, under their response keys,
//! in selection order, with `null` for absent fields.

use super::plan::{write_json_str, Field, ProjectionPlan, SelectionSet};
use serde_json::Value;

/// Writes `{"data":{"<root key>":<value projected>}}`.
pub fn write_payload(out: &mut Vec<u8>, plan: &ProjectionPlan, value: &Value) {
    out.extend_from_slice(b"{\"data\":{");
    out.extend_from_slice(&plan.root.key_json);
    write_field_value(out, &plan.root, Some(value));
    out.extend_from_slice(b"}}");
}

/// The payload bytes of `value` projected onto `plan`.
pub fn payload(plan: &ProjectionPlan, value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_payload(&mut out, plan, value);
    out
}

fn write_field_value(out: &mut Vec<u8>, field: &Field, value: Option<&Value>) {
    match (value, &field.selection) {
        (None, _) | (Some(Value::Null), _) => out.extend_from_slice(b"null"),
        (Some(v), None) => write_json(out, v),
        (Some(v), Some(selection)) => write_selected(out, v, selection),
    }
}

fn write_selected(out: &mut Vec<u8>, value: &Value, selection: &SelectionSet) {
    match value {
        Value::Object(map) => {
            let typename = map.get("__typename").and_then(Value::as_str);
            out.push(b'{');
            for (i, field) in selection.fields_for(typename).iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&field.key_json);
                if field.name == "__typename" {
                    match typename {
                        Some(t) => write_json_str(out, t),
                        None => out.extend_from_slice(b"null"),
                    }
                } else {
                    write_field_value(out, field, map.get(&field.name));
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match item {
                    Value::Null => out.extend_from_slice(b"null"),
                    other => write_selected(out, other, selection),
                }
            }
            out.push(b']');
        }
        // A scalar where the selection expects an object cannot be shaped: send null.
        _ => out.extend_from_slice(b"null"),
    }
}

fn write_json(out: &mut Vec<u8>, value: &Value) {
    // Serializing a `Value` into a Vec cannot fail: keys are strings and numbers are valid.
    let _ = serde_json::to_writer(&mut *out, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscriptions::plan::compile;
    use serde_json::{json, Map};

    fn project(q: &str, v: Value) -> Value {
        let plan = match compile(q, None, &Map::new()) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let bytes = payload(&plan, &v);
        match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => panic!("invalid JSON {e}: {}", String::from_utf8_lossy(&bytes)),
        }
    }

    #[test]
    fn selects_only_requested_fields() {
        let out = project(
            "subscription { users { id } }",
            json!({"id": "123", "name": "Alice"}),
        );
        assert_eq!(out, json!({"data": {"users": {"id": "123"}}}));
    }

    #[test]
    fn aliases_nesting_lists_and_absent_fields() {
        let out = project(
            "subscription { u: user { ident: id friends { name __typename } missing } }",
            json!({"id": 1, "friends": [{"name": "b", "__typename": "User", "x": 1}, null], "y": 2}),
        );
        assert_eq!(
            out,
            json!({"data": {"u": {"ident": 1, "friends": [{"name": "b", "__typename": "User"}, null], "missing": null}}})
        );
    }

    #[test]
    fn fragments_follow_typename() {
        let q = "subscription { feed { ... on Post { title } ... on Photo { url } id } }";
        let out = project(
            q,
            json!([{"__typename": "Post", "title": "t", "url": "u", "id": 1}, {"__typename": "Photo", "title": "t", "url": "u", "id": 2}, {"id": 3, "title": "t"}]),
        );
        assert_eq!(
            out,
            json!({"data": {"feed": [{"title": "t", "id": 1}, {"url": "u", "id": 2}, {"title": "t", "url": null, "id": 3}]}})
        );
    }

    #[test]
    fn leaf_values_pass_through_exactly() {
        let data: Value = match serde_json::from_str(
            r#"{"big": 123456789012345678901234567890, "f": 1.5e300, "s": "\u00e9\ud83d\ude00\"\n", "j": {"a": [1]}}"#,
        ) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        let plan = match compile("subscription { x { big f s j } }", None, &Map::new()) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let text = String::from_utf8(payload(&plan, &data)).unwrap_or_default();
        assert!(text.contains("123456789012345678901234567890"), "{text}");
        assert!(text.contains(r#""j":{"a":[1]}"#), "{text}");
    }

    #[test]
    fn scalar_where_object_expected_is_null() {
        let out = project("subscription { users { id } }", json!("oops"));
        assert_eq!(out, json!({"data": {"users": null}}));
    }
}
