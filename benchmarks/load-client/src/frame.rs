//! Parsing the server's frames: a fast, borrowing path for the well-formed `next` of every
//! message, and a `serde_json::Value` fallback that mirrors the Python client on anything else.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// What a text frame is, as far as the client cares.
pub enum Frame<'a> {
    /// A `next`: the operation id and the payload's root `id` and float `ts`.
    Next {
        op_id: Cow<'a, str>,
        fields: NextFields,
    },
    /// A graphql-transport-ws `ping`.
    Ping,
    ConnectionAck,
    /// An `error` or `complete`: the whole message, kept for the report.
    Refusal(Value),
    /// Anything else (`pong`, unknown types, a `next` without a string id).
    Other,
}

/// The root field's `id` (an integer, or a string of digits) and `ts` (only when a float).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct NextFields {
    pub id: Option<i64>,
    pub ts: Option<f64>,
}

/// A frame's envelope, read in one pass: when `type` comes before `payload` (as servers write
/// it) a `next`'s payload is read straight into its fields, else it is kept raw and read after.
struct Envelope<'a> {
    kind: Option<Cow<'a, str>>,
    id: Option<Cow<'a, str>>,
    payload: Payload<'a>,
}

enum Payload<'a> {
    Absent,
    Raw(&'a RawValue),
    Next(NextFields),
}

impl Payload<'_> {
    fn fields(&self) -> NextFields {
        match self {
            Payload::Absent => NextFields::default(),
            Payload::Raw(raw) => next_fields(raw.get()),
            Payload::Next(fields) => *fields,
        }
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum EnvelopeField {
    Type,
    Id,
    Payload,
    #[serde(other)]
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Envelope<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnvelopeVisitor;
        impl<'de> Visitor<'de> for EnvelopeVisitor {
            type Value = Envelope<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<'de>, A::Error> {
                // A duplicate is an error, as with a derived struct: the fallback decides then.
                let mut kind: Option<Option<Text<'de>>> = None;
                let mut id: Option<Option<Text<'de>>> = None;
                let mut payload = None;
                while let Some(key) = map.next_key::<EnvelopeField>()? {
                    match key {
                        EnvelopeField::Type if kind.is_none() => kind = Some(map.next_value()?),
                        EnvelopeField::Id if id.is_none() => id = Some(map.next_value()?),
                        EnvelopeField::Payload if payload.is_none() => {
                            let next = matches!(&kind, Some(Some(Text(k))) if k == "next");
                            payload = Some(if next {
                                let parsed: NextPayload = map.next_value()?;
                                Payload::Next(
                                    parsed.data.and_then(|first| first.0).unwrap_or_default(),
                                )
                            } else {
                                Payload::Raw(map.next_value()?)
                            });
                        }
                        EnvelopeField::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                        _ => return Err(de::Error::custom("a duplicate field")),
                    }
                }
                Ok(Envelope {
                    kind: kind.flatten().map(|t| t.0),
                    id: id.flatten().map(|t| t.0),
                    payload: payload.unwrap_or(Payload::Absent),
                })
            }
        }
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

/// A string, borrowed from the frame unless it has escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// Parses one text frame; Err when it is not a JSON object.
pub fn parse(text: &str) -> Result<Frame<'_>, String> {
    match serde_json::from_str::<Envelope<'_>>(text) {
        Ok(envelope) => Ok(match envelope.kind.as_deref() {
            Some("next") => match envelope.id {
                Some(op_id) => Frame::Next {
                    op_id,
                    fields: envelope.payload.fields(),
                },
                None => Frame::Other,
            },
            Some("ping") => Frame::Ping,
            Some("connection_ack") => Frame::ConnectionAck,
            Some("error" | "complete") => Frame::Refusal(
                serde_json::from_str(text).map_err(|e| format!("invalid frame: {e}"))?,
            ),
            _ => Frame::Other,
        }),
        Err(_) => parse_value(text),
    }
}

/// The slow path: any JSON object, however its fields are typed.
fn parse_value(text: &str) -> Result<Frame<'static>, String> {
    let message: Value =
        serde_json::from_str(text).map_err(|e| format!("invalid JSON frame: {e}"))?;
    let Some(object) = message.as_object() else {
        return Err("a frame that is not a JSON object".to_owned());
    };
    Ok(match object.get("type").and_then(Value::as_str) {
        Some("next") => match object.get("id").and_then(Value::as_str) {
            Some(op_id) => Frame::Next {
                op_id: Cow::Owned(op_id.to_owned()),
                fields: object
                    .get("payload")
                    .map(next_fields_value)
                    .unwrap_or_default(),
            },
            None => Frame::Other,
        },
        Some("ping") => Frame::Ping,
        Some("connection_ack") => Frame::ConnectionAck,
        Some("error" | "complete") => Frame::Refusal(message),
        _ => Frame::Other,
    })
}

/// The root `id` and `ts` of a `next` payload (`{"data": {"<root>": {"id": .., "ts": ..}}}`).
pub fn next_fields(payload: &str) -> NextFields {
    match serde_json::from_str::<NextPayload>(payload) {
        Ok(parsed) => parsed.data.and_then(|first| first.0).unwrap_or_default(),
        Err(_) => serde_json::from_str::<Value>(payload)
            .map(|value| next_fields_value(&value))
            .unwrap_or_default(),
    }
}

/// The same from a parsed value: the first field of `data` when it is an object.
pub fn next_fields_value(payload: &Value) -> NextFields {
    let root = payload
        .get("data")
        .and_then(Value::as_object)
        .and_then(|data| data.values().next());
    match root {
        Some(Value::Object(root)) => NextFields {
            id: root.get("id").and_then(as_int),
            ts: root
                .get("ts")
                .filter(|ts| ts.is_f64())
                .and_then(Value::as_f64),
        },
        _ => NextFields::default(),
    }
}

/// An integer, or a string of ASCII digits, as the Python client's `as_int`.
fn as_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::Bool(flag) => Some(i64::from(*flag)),
        Value::String(text) => digits(text),
        _ => None,
    }
}

fn digits(text: &str) -> Option<i64> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

#[derive(Deserialize)]
struct NextPayload {
    #[serde(default)]
    data: Option<FirstRoot>,
}

/// The value of the first field of `data`, when it is an object (or null: no fields).
struct FirstRoot(Option<NextFields>);

impl<'de> Deserialize<'de> for FirstRoot {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct First;
        impl<'de> Visitor<'de> for First {
            type Value = FirstRoot;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FirstRoot, A::Error> {
                let root = match map.next_key::<IgnoredAny>()? {
                    Some(_) => map.next_value::<Option<RootFields>>()?.map(|r| NextFields {
                        id: r.id.and_then(|id| id.0),
                        ts: r.ts.and_then(|ts| ts.0),
                    }),
                    None => None,
                };
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(FirstRoot(root))
            }
        }
        deserializer.deserialize_map(First)
    }
}

/// The root value's `id` and `ts`: only an object has them (an array is no root object).
#[derive(Default)]
struct RootFields {
    id: Option<Id>,
    ts: Option<Ts>,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Id,
    Ts,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for RootFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = RootFields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RootFields, A::Error> {
                let mut fields = RootFields::default();
                // Later duplicates win, as in a parsed dict.
                while let Some(key) = map.next_key::<Field>()? {
                    match key {
                        Field::Id => fields.id = Some(map.next_value()?),
                        Field::Ts => fields.ts = Some(map.next_value()?),
                        Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(fields)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// An `id`: integers and digit strings count, anything else is no id.
struct Id(Option<i64>);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl<'de> Visitor<'de> for IdVisitor {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id, E> {
                Ok(Id(Some(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id, E> {
                // Larger than any id a burst has: not representable, fall back.
                i64::try_from(v).map(|v| Id(Some(v))).map_err(E::custom)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Id, E> {
                Ok(Id(Some(i64::from(v))))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Id, E> {
                Ok(Id(None))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Id, E> {
                Ok(Id(digits(v)))
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

/// A `ts`: only a float (a JSON number with a fraction or exponent) is a publish time.
struct Ts(Option<f64>);

impl<'de> Deserialize<'de> for Ts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TsVisitor;
        impl<'de> Visitor<'de> for TsVisitor {
            type Value = Ts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Ts, E> {
                Ok(Ts(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Ts, E> {
                Ok(Ts(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Ts, E> {
                Ok(Ts(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Ts, E> {
                Ok(Ts(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Ts, E> {
                Ok(Ts(None))
            }
        }
        deserializer.deserialize_any(TsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> NextFields {
        match parse(text) {
            Ok(Frame::Next { fields, .. }) => fields,
            _ => panic!("not a next: {text}"),
        }
    }

    #[test]
    fn reads_the_root_id_and_ts() {
        let text = r#"{"id":"1","type":"next","payload":{"data":{"ticks":{"id":"7","value":1.5,"ts":1700000000.25}}}}"#;
        assert_eq!(
            fields(text),
            NextFields {
                id: Some(7),
                ts: Some(1700000000.25)
            }
        );
        let text = r#"{"type":"next","id":"1","payload":{"data":{"ticks":{"id":3,"ts":5}}}}"#;
        assert_eq!(
            fields(text),
            NextFields {
                id: Some(3),
                ts: None
            }
        );
    }

    #[test]
    fn falls_back_on_odd_shapes() {
        let text = r#"{"type":"next","id":"1","payload":{"data":{"ticks":[1]}}}"#;
        assert_eq!(fields(text), NextFields::default());
        let text = r#"{"type":"next","id":"1","payload":{"data":{"ticks":{"id":"x","ts":{}}}}}"#;
        assert_eq!(fields(text), NextFields::default());
        let text = r#"{"type":"next","id":"1","payload":{"data":null}}"#;
        assert_eq!(fields(text), NextFields::default());
        let text = r#"{"type":"next","id":"1","payload":{"data":{"a":{"id":"2"},"b":{"id":"3"}}}}"#;
        assert_eq!(fields(text).id, Some(2));
        assert!(matches!(
            parse(r#"{"type":"next","id":1}"#),
            Ok(Frame::Other)
        ));
        assert!(parse("[1]").is_err());
        assert!(parse("{").is_err());
    }

    #[test]
    fn reads_in_either_order_and_with_escapes() {
        let first = r#"{"id":"a\"b","type":"next","payload":{"data":{"t":{"id":"4","ts":0.5}}}}"#;
        let last = r#"{"payload":{"data":{"t":{"id":"4","ts":0.5}}},"id":"a\"b","type":"next"}"#;
        for text in [first, last] {
            match parse(text) {
                Ok(Frame::Next { op_id, fields }) => {
                    assert_eq!(op_id, "a\"b");
                    assert_eq!(
                        fields,
                        NextFields {
                            id: Some(4),
                            ts: Some(0.5)
                        }
                    );
                }
                _ => panic!("not a next: {text}"),
            }
        }
        // A duplicate falls back to the parsed value, where the last one wins.
        let text = r#"{"type":"ping","type":"next","id":"1","payload":{"data":{"t":{"id":9}}}}"#;
        assert_eq!(fields(text).id, Some(9));
    }

    #[test]
    fn knows_the_other_types() {
        assert!(matches!(parse(r#"{"type":"ping"}"#), Ok(Frame::Ping)));
        assert!(matches!(
            parse(r#"{"type":"connection_ack"}"#),
            Ok(Frame::ConnectionAck)
        ));
        assert!(matches!(
            parse(r#"{"type":"error","id":"1","payload":[]}"#),
            Ok(Frame::Refusal(_))
        ));
        assert!(matches!(parse(r#"{"type":"pong"}"#), Ok(Frame::Other)));
    }
}
