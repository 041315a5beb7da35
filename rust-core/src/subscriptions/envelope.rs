//! The per-protocol envelope of a frame: the bytes around a payload that is serialized once per
//! (group, selection) and shared by every protocol. A connection speaks one envelope, chosen
//! when it is opened; a subscription's `next` prefix is built from it once, at subscribe time.

use super::plan::write_json_str;

/// How a connection's frames are wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Envelope {
    /// graphql-transport-ws: `{"id":…,"type":"next","payload":…}`, errors as `error` with a list.
    #[default]
    GraphqlTransportWs,
    /// The legacy graphql-ws (subscriptions-transport-ws): `{"id":…,"type":"data","payload":…}`.
    GraphqlWs,
    /// graphql-sse, distinct connections mode: one operation per stream, `event: next` records
    /// whose data is the execution result.
    SseDistinct,
    /// graphql-sse, single connection mode: `event: next` records with `{"id":…,"payload":…}`.
    SseSingle,
}

impl Envelope {
    /// The names Python uses (`open_connection(envelope=...)`).
    pub const NAMES: [&'static str; 4] = [
        "graphql-transport-ws",
        "graphql-ws",
        "sse-distinct",
        "sse-single",
    ];

    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "graphql-transport-ws" => Ok(Self::GraphqlTransportWs),
            "graphql-ws" => Ok(Self::GraphqlWs),
            "sse-distinct" => Ok(Self::SseDistinct),
            "sse-single" => Ok(Self::SseSingle),
            other => Err(format!(
                "unknown envelope {other:?}; use one of {}",
                Self::NAMES.join(", ")
            )),
        }
    }

    /// Everything of a `next` frame before its payload.
    pub fn next_prefix(self, id: &str) -> Vec<u8> {
        match self {
            Self::GraphqlTransportWs => ws_prefix(id, "next"),
            Self::GraphqlWs => ws_prefix(id, "data"),
            Self::SseDistinct => b"event: next\ndata: ".to_vec(),
            Self::SseSingle => sse_single_prefix(id),
        }
    }

    /// Whether its `next` frames carry an event id (SSE's `id:`, distinct connections mode:
    /// one operation per stream, so the browser's Last-Event-ID names that operation's place).
    pub fn has_event_ids(self) -> bool {
        matches!(self, Self::SseDistinct)
    }

    /// A `next` frame whose event id is `id` (see `has_event_ids`).
    pub fn next_with_id(self, prefix: &[u8], payload: &[u8], id: &str) -> Box<[u8]> {
        let mut out = Vec::with_capacity(prefix.len() + payload.len() + id.len() + 8);
        out.extend_from_slice(prefix);
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\nid: ");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(self.next_suffix());
        out.into_boxed_slice()
    }

    /// Everything of a `next` frame after its payload.
    pub fn next_suffix(self) -> &'static [u8] {
        match self {
            Self::GraphqlTransportWs | Self::GraphqlWs => b"}",
            Self::SseDistinct => b"\n\n",
            Self::SseSingle => b"}\n\n",
        }
    }

    /// The frame that ends operation `id` with errors; `write_errors` appends the GraphQL error
    /// objects, comma-separated, without brackets. On WebSockets it is an `error` message
    /// (payload: the list of errors); on SSE, where errors travel in a `next` record, a `next`
    /// with `{"errors":[…]}` followed by `complete`.
    pub fn error_frame(self, id: &str, write_errors: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = match self {
            Self::GraphqlTransportWs | Self::GraphqlWs => ws_prefix(id, "error"),
            Self::SseDistinct | Self::SseSingle => self.next_prefix(id),
        };
        match self {
            Self::GraphqlTransportWs | Self::GraphqlWs => {
                out.push(b'[');
                write_errors(&mut out);
                out.extend_from_slice(b"]}");
            }
            Self::SseDistinct | Self::SseSingle => {
                out.extend_from_slice(b"{\"errors\":[");
                write_errors(&mut out);
                out.extend_from_slice(b"]}");
                out.extend_from_slice(self.next_suffix());
                out.extend_from_slice(&self.complete_frame(id));
            }
        }
        out
    }

    /// The frame that tells the client operation `id` is done (the server ended it): a
    /// `complete` message, or an SSE `complete` record.
    pub fn complete_frame(self, id: &str) -> Vec<u8> {
        match self {
            Self::GraphqlTransportWs | Self::GraphqlWs => {
                let mut out = b"{\"id\":".to_vec();
                write_json_str(&mut out, id);
                out.extend_from_slice(b",\"type\":\"complete\"}");
                out
            }
            Self::SseSingle => {
                let mut out = b"event: complete\ndata: {\"id\":".to_vec();
                write_json_str(&mut out, id);
                out.extend_from_slice(b"}\n\n");
                out
            }
            Self::SseDistinct => b"event: complete\ndata: \n\n".to_vec(),
        }
    }
}

/// `{"id":<id>,"type":"<kind>","payload":`
fn ws_prefix(id: &str, kind: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(id.len() + kind.len() + 32);
    out.extend_from_slice(b"{\"id\":");
    write_json_str(&mut out, id);
    out.extend_from_slice(b",\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"payload\":");
    out
}

/// `event: next\ndata: {"id":<id>,"payload":`
fn sse_single_prefix(id: &str) -> Vec<u8> {
    let mut out = b"event: next\ndata: {\"id\":".to_vec();
    write_json_str(&mut out, id);
    out.extend_from_slice(b",\"payload\":");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(envelope: Envelope, id: &str, payload: &str) -> String {
        let mut out = envelope.next_prefix(id);
        out.extend_from_slice(payload.as_bytes());
        out.extend_from_slice(envelope.next_suffix());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn next_frames_per_protocol() {
        let p = r#"{"data":{"a":1}}"#;
        assert_eq!(
            next(Envelope::GraphqlTransportWs, "1", p),
            r#"{"id":"1","type":"next","payload":{"data":{"a":1}}}"#
        );
        assert_eq!(
            next(Envelope::GraphqlWs, "x\"y", p),
            r#"{"id":"x\"y","type":"data","payload":{"data":{"a":1}}}"#
        );
        assert_eq!(
            next(Envelope::SseDistinct, "1", p),
            "event: next\ndata: {\"data\":{\"a\":1}}\n\n"
        );
        assert_eq!(
            next(Envelope::SseSingle, "op", p),
            "event: next\ndata: {\"id\":\"op\",\"payload\":{\"data\":{\"a\":1}}}\n\n"
        );
    }

    #[test]
    fn error_frames_per_protocol() {
        let err = |out: &mut Vec<u8>| out.extend_from_slice(br#"{"message":"m"}"#);
        let text = |v: Vec<u8>| String::from_utf8(v).unwrap();
        assert_eq!(
            text(Envelope::GraphqlTransportWs.error_frame("1", err)),
            r#"{"id":"1","type":"error","payload":[{"message":"m"}]}"#
        );
        assert_eq!(
            text(Envelope::SseDistinct.error_frame("1", err)),
            "event: next\ndata: {\"errors\":[{\"message\":\"m\"}]}\n\nevent: complete\ndata: \n\n"
        );
        assert_eq!(
            text(Envelope::SseSingle.error_frame("o", err)),
            "event: next\ndata: {\"id\":\"o\",\"payload\":{\"errors\":[{\"message\":\"m\"}]}}\n\n\
             event: complete\ndata: {\"id\":\"o\"}\n\n"
        );
    }

    #[test]
    fn complete_frames_per_protocol() {
        let text = |v: Vec<u8>| String::from_utf8(v).unwrap();
        assert_eq!(
            text(Envelope::GraphqlTransportWs.complete_frame("a\"b")),
            r#"{"id":"a\"b","type":"complete"}"#
        );
        assert_eq!(
            text(Envelope::GraphqlWs.complete_frame("1")),
            r#"{"id":"1","type":"complete"}"#
        );
        assert_eq!(
            text(Envelope::SseDistinct.complete_frame("1")),
            "event: complete\ndata: \n\n"
        );
        assert_eq!(
            text(Envelope::SseSingle.complete_frame("o")),
            "event: complete\ndata: {\"id\":\"o\"}\n\n"
        );
    }

    #[test]
    fn unknown_names_are_refused() {
        assert!(Envelope::parse("sse").is_err());
        for name in Envelope::NAMES {
            assert!(Envelope::parse(name).is_ok());
        }
    }
}
