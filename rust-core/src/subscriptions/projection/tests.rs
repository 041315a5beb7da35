use super::*;
use crate::subscriptions::plan::compile;
use crate::subscriptions::schema::SchemaInfo;
use serde_json::{json, Map};

fn project_with(q: &str, schema: Option<&SchemaInfo>, v: Value) -> Value {
    let plan = match compile(q, None, &Map::new(), schema) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let bytes = payload(&plan, &v);
    match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => panic!("invalid JSON {e}: {}", String::from_utf8_lossy(&bytes)),
    }
}

fn project(q: &str, v: Value) -> Value {
    project_with(q, None, v)
}

fn schema() -> SchemaInfo {
    let desc = json!({
        "subscription_type": "Subscription",
        "types": {
            "Subscription": {"kind": "OBJECT", "fields": {
                "messagePosted": {"type": "Message!", "source": "message_posted"},
                "feed": {"type": "[Item!]", "source": "feed"},
                "counts": {"type": "[Int]", "source": "counts"}
            }},
            "Message": {"kind": "OBJECT", "fields": {
                "id": {"type": "ID!", "source": "id"},
                "roomId": {"type": "String!", "source": "room_id"},
                "likes": {"type": "Int", "source": "likes"},
                "score": {"type": "Float", "source": "score"},
                "color": {"type": "Color", "source": "color"},
                "author": {"type": "User", "source": "author"}
            }},
            "User": {"kind": "OBJECT", "fields": {"name": {"type": "String!", "source": "name"}}},
            "Item": {"kind": "UNION", "possible_types": ["Message", "User"]},
            "Color": {"kind": "ENUM", "values": ["RED", "GREEN"]}
        }
    });
    match SchemaInfo::from_json(&desc) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
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
    let plan = match compile("subscription { x { big f s j } }", None, &Map::new(), None) {
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

#[test]
fn schema_maps_sources_typename_and_coerces() {
    let s = schema();
    let out = project_with(
        "subscription { m: messagePosted { __typename id roomId likes score color author { name } } }",
        Some(&s),
        json!({"id": 7, "room_id": "42", "likes": 3.0, "score": 2, "color": "RED", "author": null}),
    );
    assert_eq!(
        out,
        json!({"data": {"m": {"__typename": "Message", "id": "7", "roomId": "42", "likes": 3, "score": 2, "color": "RED", "author": null}}})
    );
}

#[test]
fn failed_coercion_is_null_with_an_error() {
    let s = schema();
    let out = project_with(
        "subscription { messagePosted { id likes color } }",
        Some(&s),
        json!({"id": "1", "likes": 2.5, "color": "BLUE"}),
    );
    assert_eq!(
        out,
        json!({
            "errors": [
                {"message": "Int cannot represent non-integer value: 2.5", "path": ["messagePosted", "likes"]},
                {"message": "Enum cannot represent value: \"BLUE\"", "path": ["messagePosted", "color"]}
            ],
            "data": {"messagePosted": {"id": "1", "likes": null, "color": null}}
        })
    );
}

#[test]
fn nulls_bubble_to_the_nearest_nullable_parent() {
    let s = schema();
    // author.name is non-null: the null bubbles to author (nullable).
    let out = project_with(
        "subscription { messagePosted { id author { name } } }",
        Some(&s),
        json!({"id": "1", "author": {"name": null}}),
    );
    assert_eq!(
        out,
        json!({
            "errors": [{"message": "Cannot return null for non-nullable field User.name.", "path": ["messagePosted", "author", "name"]}],
            "data": {"messagePosted": {"id": "1", "author": null}}
        })
    );
    // roomId is non-null and so is messagePosted: data itself becomes null.
    let out = project_with(
        "subscription { messagePosted { roomId } }",
        Some(&s),
        json!({}),
    );
    assert_eq!(
        out,
        json!({
            "errors": [{"message": "Cannot return null for non-nullable field Message.roomId.", "path": ["messagePosted", "roomId"]}],
            "data": null
        })
    );
}

#[test]
fn lists_of_non_null_items_and_unions() {
    let s = schema();
    let q = "subscription { feed { __typename ... on Message { id } ... on User { name } } }";
    let out = project_with(
        q,
        Some(&s),
        json!([{"__typename": "User", "name": "n", "id": "x"}, {"__typename": "Message", "id": 5}]),
    );
    assert_eq!(
        out,
        json!({"data": {"feed": [{"__typename": "User", "name": "n"}, {"__typename": "Message", "id": "5"}]}})
    );
    // A null item in [Item!] makes the (nullable) list null.
    let out = project_with(q, Some(&s), json!([null]));
    assert_eq!(out["data"], json!({"feed": null}));
    assert_eq!(out["errors"][0]["path"], json!(["feed", 0]));
    // Not a list where a list is expected.
    let out = project_with("subscription { counts }", Some(&s), json!(5));
    assert_eq!(out["data"], json!({"counts": null}));
    assert_eq!(
        out["errors"][0]["message"],
        json!("Expected Iterable, but did not find one for field Subscription.counts.")
    );
}
