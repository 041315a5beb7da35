//! graphql-transport-ws messages: validation of WebSocket frames, and their Python classes.
//!
//! The rules follow graphql-ws's `validateMessage` (src/common.ts), with error texts that name the
//! offending property and the JSON type found. Two deliberate differences: a payload that must be
//! an object rejects arrays (graphql-ws's `isObject` lets them through), and every error in an
//! `error` payload must carry a *string* `message`.

use std::fmt;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use serde_json::{Map, Value};

use super::py_value::{to_json_limited, to_py, type_name, MAX_DEPTH};

/// Longest stretch of client-supplied text echoed back in an error message, which may end up in a
/// WebSocket close reason (123 bytes at most) and should not grow with hostile input.
const MAX_ECHO_CHARS: usize = 40;

/// The eight message types of graphql-transport-ws.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    ConnectionInit,
    ConnectionAck,
    Ping,
    Pong,
    Subscribe,
    Next,
    Error,
    Complete,
}

impl MessageType {
    /// Every message type, in protocol order.
    pub const ALL: [MessageType; 8] = [
        MessageType::ConnectionInit,
        MessageType::ConnectionAck,
        MessageType::Ping,
        MessageType::Pong,
        MessageType::Subscribe,
        MessageType::Next,
        MessageType::Error,
        MessageType::Complete,
    ];

    /// The value of the `type` property on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::ConnectionInit => "connection_init",
            MessageType::ConnectionAck => "connection_ack",
            MessageType::Ping => "ping",
            MessageType::Pong => "pong",
            MessageType::Subscribe => "subscribe",
            MessageType::Next => "next",
            MessageType::Error => "error",
            MessageType::Complete => "complete",
        }
    }

    /// The message type whose wire name is `name` (exact, case-sensitive match).
    pub fn from_wire(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Whether messages of this type carry an operation `id`.
    pub fn has_id(self) -> bool {
        !self.is_connection_level()
    }

    /// connection_init, connection_ack, ping and pong: no id, optional object payload.
    fn is_connection_level(self) -> bool {
        matches!(
            self,
            MessageType::ConnectionInit
                | MessageType::ConnectionAck
                | MessageType::Ping
                | MessageType::Pong
        )
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated graphql-transport-ws message.
///
/// `id` is `Some` exactly for the types that carry one; `payload` is `None` when absent or null
/// (and always for `complete`). Properties outside the protocol are dropped.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub kind: MessageType,
    pub id: Option<String>,
    pub payload: Option<Value>,
}

/// Borrowed view of a validated `subscribe` payload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SubscribePayload<'a> {
    pub query: &'a str,
    pub operation_name: Option<&'a str>,
    pub variables: Option<&'a Map<String, Value>>,
    pub extensions: Option<&'a Map<String, Value>>,
}

impl Message {
    /// Builds and validates a message from its parts, as the Python constructor does.
    ///
    /// Stricter than parsing in one way: an `id` for a connection-level type or a `payload` for
    /// `complete` is an error here, because the caller asked for something that would be dropped.
    pub fn new(
        kind: MessageType,
        id: Option<String>,
        payload: Option<Value>,
    ) -> Result<Message, String> {
        if id.is_some() && !kind.has_id() {
            return Err(format!("\"{kind}\" message does not take an 'id' property"));
        }
        if payload.is_some() && kind == MessageType::Complete {
            return Err(format!(
                "\"{kind}\" message does not take a 'payload' property"
            ));
        }
        let mut object = Map::new();
        object.insert("type".to_owned(), Value::String(kind.as_str().to_owned()));
        if let Some(id) = id {
            object.insert("id".to_owned(), Value::String(id));
        }
        if let Some(payload) = payload {
            object.insert("payload".to_owned(), payload);
        }
        validate_message(Value::Object(object))
    }

    /// The message as a JSON value: `type`, plus `id` and `payload` when present.
    pub fn to_value(&self) -> Value {
        let mut object = Map::new();
        object.insert(
            "type".to_owned(),
            Value::String(self.kind.as_str().to_owned()),
        );
        if let Some(id) = &self.id {
            object.insert("id".to_owned(), Value::String(id.clone()));
        }
        if let Some(payload) = &self.payload {
            object.insert("payload".to_owned(), payload.clone());
        }
        Value::Object(object)
    }

    /// The message as WebSocket text.
    pub fn to_json(&self) -> String {
        // Written by hand so the payload is serialised in place rather than cloned into a Value.
        let mut out = String::with_capacity(64);
        out.push_str("{\"type\":\"");
        out.push_str(self.kind.as_str());
        out.push('"');
        if let Some(id) = &self.id {
            out.push_str(",\"id\":");
            out.push_str(&json_string(id));
        }
        if let Some(payload) = &self.payload {
            out.push_str(",\"payload\":");
            out.push_str(&payload.to_string());
        }
        out.push('}');
        out
    }

    /// The payload of a `subscribe` message; `None` for other types or a malformed payload.
    pub fn subscribe_payload(&self) -> Option<SubscribePayload<'_>> {
        if self.kind != MessageType::Subscribe {
            return None;
        }
        let payload = self.payload.as_ref()?.as_object()?;
        let query = payload.get("query")?.as_str()?;
        let operation_name = match payload.get("operationName") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => Some(name.as_str()),
            Some(_) => return None,
        };
        let object_or_null = |key: &str| match payload.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(_) => Err(()),
        };
        Some(SubscribePayload {
            query,
            operation_name,
            variables: object_or_null("variables").ok()?,
            extensions: object_or_null("extensions").ok()?,
        })
    }
}

/// The JSON type name of a value, as used in error messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn json_string(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// `text` as a JSON string literal, shortened so that hostile input cannot bloat the error.
fn quote_for_error(text: &str) -> String {
    match text.char_indices().nth(MAX_ECHO_CHARS) {
        Some((cut, _)) => format!("{}...", json_string(&text[..cut])),
        None => json_string(text),
    }
}

/// Checks `value` against the graphql-transport-ws message rules.
pub fn validate_message(value: Value) -> Result<Message, String> {
    let mut object = match value {
        Value::Object(object) => object,
        other => {
            return Err(format!(
                "Message is expected to be an object, but got {}",
                json_type(&other)
            ))
        }
    };
    let kind = match object.get("type") {
        None | Some(Value::Null) => return Err("Message is missing the 'type' property".into()),
        Some(Value::String(name)) => MessageType::from_wire(name)
            .ok_or_else(|| format!("Unknown message type {}", quote_for_error(name)))?,
        Some(other) => {
            return Err(format!(
                "Message expects the 'type' property to be a string, but got {}",
                json_type(other)
            ))
        }
    };

    if kind.is_connection_level() {
        let payload = match object.remove("payload") {
            None | Some(Value::Null) => None,
            Some(payload @ Value::Object(_)) => Some(payload),
            Some(other) => {
                return Err(format!(
                    "\"{kind}\" message expects the 'payload' property to be an object or null, \
                     but got {}",
                    json_type(&other)
                ))
            }
        };
        return Ok(Message {
            kind,
            id: None,
            payload,
        });
    }

    let id = take_id(kind, &mut object)?;
    let payload = match kind {
        MessageType::Subscribe => {
            let payload = take_object_payload(kind, &mut object)?;
            check_subscribe_payload(&payload)?;
            Some(Value::Object(payload))
        }
        MessageType::Next => Some(Value::Object(take_object_payload(kind, &mut object)?)),
        MessageType::Error => {
            let payload = object.remove("payload");
            check_error_payload(payload.as_ref())?;
            payload
        }
        _ => None,
    };
    Ok(Message {
        kind,
        id: Some(id),
        payload,
    })
}

/// Parses WebSocket text and validates it.
pub fn parse_message(text: &str) -> Result<Message, String> {
    serde_json::from_str(text)
        .map_err(|e| format!("Message is not valid JSON: {e}"))
        .and_then(validate_message)
}

/// Parses a binary WebSocket frame (UTF-8 JSON) and validates it.
pub fn parse_message_bytes(bytes: &[u8]) -> Result<Message, String> {
    serde_json::from_slice(bytes)
        .map_err(|e| format!("Message is not valid JSON: {e}"))
        .and_then(validate_message)
}

fn take_id(kind: MessageType, object: &mut Map<String, Value>) -> Result<String, String> {
    match object.remove("id") {
        None => Err(format!("\"{kind}\" message is missing the 'id' property")),
        Some(Value::String(id)) if id.is_empty() => Err(format!(
            "\"{kind}\" message requires a non-empty 'id' property"
        )),
        Some(Value::String(id)) => Ok(id),
        Some(other) => Err(format!(
            "\"{kind}\" message expects the 'id' property to be a string, but got {}",
            json_type(&other)
        )),
    }
}

fn take_object_payload(
    kind: MessageType,
    object: &mut Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    match object.remove("payload") {
        None => Err(format!(
            "\"{kind}\" message is missing the 'payload' property"
        )),
        Some(Value::Object(payload)) => Ok(payload),
        Some(other) => Err(format!(
            "\"{kind}\" message expects the 'payload' property to be an object, but got {}",
            json_type(&other)
        )),
    }
}

fn check_subscribe_payload(fields: &Map<String, Value>) -> Result<(), String> {
    match fields.get("query") {
        None => {
            return Err(
                "\"subscribe\" message is missing the 'query' property in the payload".into(),
            )
        }
        Some(Value::String(_)) => {}
        Some(other) => {
            return Err(format!(
                "\"subscribe\" message expects the 'query' property in the payload to be a string, \
                 but got {}",
                json_type(other)
            ))
        }
    }
    match fields.get("operationName") {
        None | Some(Value::Null | Value::String(_)) => {}
        Some(other) => {
            return Err(format!(
                "\"subscribe\" message expects the 'operationName' property in the payload to be \
                 a string or null, but got {}",
                json_type(other)
            ))
        }
    }
    for key in ["variables", "extensions"] {
        match fields.get(key) {
            None | Some(Value::Null | Value::Object(_)) => {}
            Some(other) => {
                return Err(format!(
                    "\"subscribe\" message expects the '{key}' property in the payload to be an \
                     object or null, but got {}",
                    json_type(other)
                ))
            }
        }
    }
    Ok(())
}

fn check_error_payload(payload: Option<&Value>) -> Result<(), String> {
    const EXPECTED: &str =
        "\"error\" message expects the 'payload' property to be a non-empty array of GraphQL errors";
    let errors = match payload {
        None => return Err("\"error\" message is missing the 'payload' property".into()),
        Some(Value::Array(errors)) if errors.is_empty() => {
            return Err(format!("{EXPECTED}, but got an empty array"))
        }
        Some(Value::Array(errors)) => errors,
        Some(other) => return Err(format!("{EXPECTED}, but got {}", json_type(other))),
    };
    for (index, error) in errors.iter().enumerate() {
        let Some(fields) = error.as_object() else {
            return Err(format!(
                "\"error\" message expects error {index} in the payload to be an object, but got {}",
                json_type(error)
            ));
        };
        match fields.get("message") {
            Some(Value::String(_)) => {}
            None => {
                return Err(format!(
                    "\"error\" message expects error {index} in the payload to have a string \
                     'message' property, but it is missing"
                ))
            }
            Some(other) => {
                return Err(format!(
                    "\"error\" message expects error {index} in the payload to have a string \
                     'message' property, but got {}",
                    json_type(other)
                ))
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Python <-> JSON
// ---------------------------------------------------------------------------------------------

fn value_error(message: String) -> PyErr {
    PyValueError::new_err(message)
}

fn py_repr(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(obj.repr()?.to_str()?.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Python classes
// ---------------------------------------------------------------------------------------------

/// A validated graphql-transport-ws message (immutable).
#[pyclass(name = "PyGraphQLMessage", module = "fraiseql_core_rs", frozen, eq)]
#[derive(PartialEq)]
pub struct PyGraphQLMessage {
    pub message: Message,
}

impl From<Message> for PyGraphQLMessage {
    fn from(message: Message) -> Self {
        PyGraphQLMessage { message }
    }
}

#[pymethods]
impl PyGraphQLMessage {
    #[new]
    #[pyo3(signature = (r#type, id=None, payload=None))]
    fn new(r#type: &str, id: Option<String>, payload: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let kind = MessageType::from_wire(r#type).ok_or_else(|| {
            value_error(format!("Unknown message type {}", quote_for_error(r#type)))
        })?;
        // The payload is nested one level inside the message object on the wire.
        let payload = match payload {
            Some(payload) if !payload.is_none() => {
                Some(to_json_limited(payload, "payload", MAX_DEPTH - 1)?)
            }
            _ => None,
        };
        Message::new(kind, id, payload)
            .map(Self::from)
            .map_err(value_error)
    }

    /// Validates a message given as a dict (e.g. from `json.loads`).
    #[staticmethod]
    fn from_dict(data: &Bound<'_, PyDict>) -> PyResult<Self> {
        let value = to_json_limited(data.as_any(), "message", MAX_DEPTH)?;
        validate_message(value).map(Self::from).map_err(value_error)
    }

    /// Parses and validates raw WebSocket text (str) or a binary frame (bytes, UTF-8 JSON).
    #[staticmethod]
    fn parse(text: &Bound<'_, PyAny>) -> PyResult<Self> {
        let parsed = if let Ok(text) = text.cast::<PyString>() {
            let text = text.to_str().map_err(|_| {
                value_error("Message is not valid JSON: text is not valid Unicode".to_owned())
            })?;
            parse_message(text)
        } else if let Ok(bytes) = text.cast::<PyBytes>() {
            parse_message_bytes(bytes.as_bytes())
        } else {
            return Err(PyTypeError::new_err(format!(
                "parse() expects str or bytes, not {}",
                type_name(text)
            )));
        };
        parsed.map(Self::from).map_err(value_error)
    }

    #[getter(r#type)]
    fn message_type(&self) -> &'static str {
        self.message.kind.as_str()
    }

    #[getter]
    fn id(&self) -> Option<&str> {
        self.message.id.as_deref()
    }

    /// A fresh Python copy of the payload on each access.
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.message
            .payload
            .as_ref()
            .map(|payload| to_py(py, payload))
            .transpose()
    }

    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        dict.set_item("type", self.message.kind.as_str())?;
        if let Some(id) = &self.message.id {
            dict.set_item("id", id)?;
        }
        if let Some(payload) = &self.message.payload {
            dict.set_item("payload", to_py(py, payload)?)?;
        }
        Ok(dict)
    }

    fn to_json(&self) -> String {
        self.message.to_json()
    }

    fn subscribe_payload(&self, py: Python<'_>) -> PyResult<PySubscriptionPayload> {
        let payload = self.message.subscribe_payload().ok_or_else(|| {
            value_error(format!(
                "subscribe_payload() needs a \"subscribe\" message, but this is a \"{}\" message",
                self.message.kind
            ))
        })?;
        PySubscriptionPayload::from_payload(py, &payload)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let id = match &self.message.id {
            Some(id) => py_repr(PyString::new(py, id).as_any())?,
            None => "None".to_owned(),
        };
        let payload = match &self.message.payload {
            Some(payload) => py_repr(&to_py(py, payload)?)?,
            None => "None".to_owned(),
        };
        Ok(format!(
            "PyGraphQLMessage(type='{}', id={id}, payload={payload})",
            self.message.kind
        ))
    }
}

/// The payload of a `subscribe` message, editable from Python.
#[pyclass(name = "PySubscriptionPayload", module = "fraiseql_core_rs")]
pub struct PySubscriptionPayload {
    #[pyo3(get, set)]
    pub query: String,
    #[pyo3(get, set)]
    pub operation_name: Option<String>,
    #[pyo3(get)]
    pub variables: Py<PyDict>,
    #[pyo3(get, set)]
    pub extensions: Option<Py<PyDict>>,
}

impl PySubscriptionPayload {
    /// Copies a validated `subscribe` payload into Python objects.
    pub fn from_payload(py: Python<'_>, payload: &SubscribePayload<'_>) -> PyResult<Self> {
        let object_to_dict = |map: &Map<String, Value>| -> PyResult<Py<PyDict>> {
            let dict = PyDict::new(py);
            for (key, item) in map {
                dict.set_item(key, to_py(py, item)?)?;
            }
            Ok(dict.unbind())
        };
        Ok(PySubscriptionPayload {
            query: payload.query.to_owned(),
            operation_name: payload.operation_name.map(str::to_owned),
            variables: match payload.variables {
                Some(map) => object_to_dict(map)?,
                None => PyDict::new(py).unbind(),
            },
            extensions: payload.extensions.map(object_to_dict).transpose()?,
        })
    }
}

#[pymethods]
impl PySubscriptionPayload {
    #[new]
    #[pyo3(signature = (query, operation_name=None, variables=None, extensions=None))]
    fn new(
        py: Python<'_>,
        query: String,
        operation_name: Option<String>,
        variables: Option<Py<PyDict>>,
        extensions: Option<Py<PyDict>>,
    ) -> Self {
        PySubscriptionPayload {
            query,
            operation_name,
            variables: variables.unwrap_or_else(|| PyDict::new(py).unbind()),
            extensions,
        }
    }

    /// Setting `None` stores a new empty dict, as the constructor does.
    #[setter]
    fn set_variables(&mut self, py: Python<'_>, variables: Option<Py<PyDict>>) {
        self.variables = variables.unwrap_or_else(|| PyDict::new(py).unbind());
    }

    /// The wire form; `variables` and `extensions` are shallow copies.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        dict.set_item("query", &self.query)?;
        dict.set_item("operationName", self.operation_name.as_deref())?;
        dict.set_item("variables", self.variables.bind(py).copy()?)?;
        if let Some(extensions) = &self.extensions {
            dict.set_item("extensions", extensions.bind(py).copy()?)?;
        }
        Ok(dict)
    }

    fn __eq__(&self, py: Python<'_>, other: &Self) -> PyResult<bool> {
        if self.query != other.query || self.operation_name != other.operation_name {
            return Ok(false);
        }
        if !self.variables.bind(py).eq(other.variables.bind(py))? {
            return Ok(false);
        }
        match (&self.extensions, &other.extensions) {
            (None, None) => Ok(true),
            (Some(mine), Some(theirs)) => mine.bind(py).eq(theirs.bind(py)),
            _ => Ok(false),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let query = py_repr(PyString::new(py, &self.query).as_any())?;
        let operation_name = match &self.operation_name {
            Some(name) => py_repr(PyString::new(py, name).as_any())?,
            None => "None".to_owned(),
        };
        let variables = py_repr(self.variables.bind(py).as_any())?;
        let extensions = match &self.extensions {
            Some(extensions) => py_repr(extensions.bind(py).as_any())?,
            None => "None".to_owned(),
        };
        Ok(format!(
            "PySubscriptionPayload(query={query}, operation_name={operation_name}, \
             variables={variables}, extensions={extensions})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(value: Value) -> String {
        match validate_message(value) {
            Ok(message) => panic!("expected an error, got {message:?}"),
            Err(e) => e,
        }
    }

    fn ok(value: Value) -> Message {
        match validate_message(value) {
            Ok(message) => message,
            Err(e) => panic!("expected a message, got error {e}"),
        }
    }

    #[test]
    fn wire_names_round_trip() {
        for kind in MessageType::ALL {
            assert_eq!(MessageType::from_wire(kind.as_str()), Some(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert_eq!(MessageType::from_wire("Subscribe"), None);
        assert_eq!(MessageType::ConnectionInit.as_str(), "connection_init");
        assert_eq!(MessageType::ConnectionAck.as_str(), "connection_ack");
        assert!(!MessageType::Ping.has_id());
        assert!(MessageType::Complete.has_id());
    }

    #[test]
    fn message_must_be_an_object() {
        assert_eq!(
            err(json!([1])),
            "Message is expected to be an object, but got array"
        );
        assert_eq!(
            err(json!("x")),
            "Message is expected to be an object, but got string"
        );
        assert_eq!(
            err(Value::Null),
            "Message is expected to be an object, but got null"
        );
    }

    #[test]
    fn type_is_required_string_and_known() {
        assert_eq!(err(json!({})), "Message is missing the 'type' property");
        assert_eq!(
            err(json!({"type": null})),
            "Message is missing the 'type' property"
        );
        assert_eq!(
            err(json!({"type": 1})),
            "Message expects the 'type' property to be a string, but got number"
        );
        assert_eq!(err(json!({"type": "foo"})), "Unknown message type \"foo\"");
        assert_eq!(err(json!({"type": ""})), "Unknown message type \"\"");
        let long = "x".repeat(500);
        let message = err(json!({ "type": long }));
        assert!(message.len() < 100, "{message}");
        assert!(message.ends_with("\"..."), "{message}");
        assert_eq!(
            err(json!({"type": "a\"b"})),
            "Unknown message type \"a\\\"b\""
        );
    }

    #[test]
    fn connection_level_messages() {
        for name in ["connection_init", "connection_ack", "ping", "pong"] {
            let message = ok(json!({ "type": name }));
            assert_eq!(message.kind.as_str(), name);
            assert_eq!(message.id, None);
            assert_eq!(message.payload, None);

            let message = ok(json!({"type": name, "payload": null}));
            assert_eq!(message.payload, None);

            let message = ok(json!({"type": name, "payload": {"token": "t"}}));
            assert_eq!(message.payload, Some(json!({"token": "t"})));

            // Not part of these message shapes: dropped, like graphql-ws ignores it.
            let message = ok(json!({"type": name, "id": 5}));
            assert_eq!(message.id, None);

            for (payload, got) in [
                (json!("x"), "string"),
                (json!([]), "array"),
                (json!(1), "number"),
                (json!(true), "boolean"),
            ] {
                assert_eq!(
                    err(json!({"type": name, "payload": payload})),
                    format!(
                        "\"{name}\" message expects the 'payload' property to be an object or \
                         null, but got {got}"
                    )
                );
            }
        }
    }

    #[test]
    fn id_rules_for_operation_messages() {
        for name in ["subscribe", "next", "error", "complete"] {
            assert_eq!(
                err(json!({ "type": name })),
                format!("\"{name}\" message is missing the 'id' property")
            );
            assert_eq!(
                err(json!({"type": name, "id": 1})),
                format!(
                    "\"{name}\" message expects the 'id' property to be a string, but got number"
                )
            );
            assert_eq!(
                err(json!({"type": name, "id": null})),
                format!(
                    "\"{name}\" message expects the 'id' property to be a string, but got null"
                )
            );
            assert_eq!(
                err(json!({"type": name, "id": ""})),
                format!("\"{name}\" message requires a non-empty 'id' property")
            );
        }
    }

    #[test]
    fn subscribe_valid() {
        let message = ok(json!({
            "type": "subscribe",
            "id": "1",
            "payload": {"query": "subscription { a }"}
        }));
        assert_eq!(message.kind, MessageType::Subscribe);
        assert_eq!(message.id.as_deref(), Some("1"));
        let payload = message.subscribe_payload();
        assert_eq!(
            payload,
            Some(SubscribePayload {
                query: "subscription { a }",
                operation_name: None,
                variables: None,
                extensions: None,
            })
        );

        let message = ok(json!({
            "type": "subscribe",
            "id": "1",
            "payload": {
                "query": "q",
                "operationName": "Op",
                "variables": {"a": 1},
                "extensions": {"e": true},
                "extra": [1]
            }
        }));
        let payload = message.subscribe_payload().map(|p| {
            (
                p.operation_name,
                p.variables.cloned(),
                p.extensions.cloned(),
            )
        });
        let expected_vars = json!({"a": 1}).as_object().cloned();
        let expected_ext = json!({"e": true}).as_object().cloned();
        assert_eq!(payload, Some((Some("Op"), expected_vars, expected_ext)));

        let message = ok(json!({
            "type": "subscribe",
            "id": "1",
            "payload": {"query": "q", "operationName": null, "variables": null, "extensions": null}
        }));
        assert!(message.subscribe_payload().is_some());
    }

    #[test]
    fn subscribe_invalid() {
        let base = |payload: Value| json!({"type": "subscribe", "id": "1", "payload": payload});
        assert_eq!(
            err(json!({"type": "subscribe", "id": "1"})),
            "\"subscribe\" message is missing the 'payload' property"
        );
        assert_eq!(
            err(base(Value::Null)),
            "\"subscribe\" message expects the 'payload' property to be an object, but got null"
        );
        assert_eq!(
            err(base(json!([]))),
            "\"subscribe\" message expects the 'payload' property to be an object, but got array"
        );
        assert_eq!(
            err(base(json!({}))),
            "\"subscribe\" message is missing the 'query' property in the payload"
        );
        assert_eq!(
            err(base(json!({"query": 1}))),
            "\"subscribe\" message expects the 'query' property in the payload to be a string, \
             but got number"
        );
        assert_eq!(
            err(base(json!({"query": null}))),
            "\"subscribe\" message expects the 'query' property in the payload to be a string, \
             but got null"
        );
        assert_eq!(
            err(base(json!({"query": "q", "operationName": 3}))),
            "\"subscribe\" message expects the 'operationName' property in the payload to be a \
             string or null, but got number"
        );
        assert_eq!(
            err(base(json!({"query": "q", "variables": []}))),
            "\"subscribe\" message expects the 'variables' property in the payload to be an \
             object or null, but got array"
        );
        assert_eq!(
            err(base(json!({"query": "q", "variables": "x"}))),
            "\"subscribe\" message expects the 'variables' property in the payload to be an \
             object or null, but got string"
        );
        assert_eq!(
            err(base(json!({"query": "q", "extensions": false}))),
            "\"subscribe\" message expects the 'extensions' property in the payload to be an \
             object or null, but got boolean"
        );
    }

    #[test]
    fn next_rules() {
        let message = ok(json!({"type": "next", "id": "a", "payload": {"data": {"x": 1}}}));
        assert_eq!(message.payload, Some(json!({"data": {"x": 1}})));
        assert_eq!(message.subscribe_payload(), None);
        assert_eq!(
            err(json!({"type": "next", "id": "a"})),
            "\"next\" message is missing the 'payload' property"
        );
        assert_eq!(
            err(json!({"type": "next", "id": "a", "payload": null})),
            "\"next\" message expects the 'payload' property to be an object, but got null"
        );
        assert_eq!(
            err(json!({"type": "next", "id": "a", "payload": "x"})),
            "\"next\" message expects the 'payload' property to be an object, but got string"
        );
    }

    #[test]
    fn error_rules() {
        let message = ok(json!({
            "type": "error", "id": "a",
            "payload": [{"message": "boom", "path": ["x"]}, {"message": ""}]
        }));
        assert_eq!(message.kind, MessageType::Error);
        assert_eq!(
            err(json!({"type": "error", "id": "a"})),
            "\"error\" message is missing the 'payload' property"
        );
        assert_eq!(
            err(json!({"type": "error", "id": "a", "payload": {"message": "x"}})),
            "\"error\" message expects the 'payload' property to be a non-empty array of GraphQL \
             errors, but got object"
        );
        assert_eq!(
            err(json!({"type": "error", "id": "a", "payload": []})),
            "\"error\" message expects the 'payload' property to be a non-empty array of GraphQL \
             errors, but got an empty array"
        );
        assert_eq!(
            err(json!({"type": "error", "id": "a", "payload": [{"message": "ok"}, "boom"]})),
            "\"error\" message expects error 1 in the payload to be an object, but got string"
        );
        assert_eq!(
            err(json!({"type": "error", "id": "a", "payload": [{"msg": "x"}]})),
            "\"error\" message expects error 0 in the payload to have a string 'message' \
             property, but it is missing"
        );
        assert_eq!(
            err(json!({"type": "error", "id": "a", "payload": [{"message": 7}]})),
            "\"error\" message expects error 0 in the payload to have a string 'message' \
             property, but got number"
        );
    }

    #[test]
    fn complete_rules() {
        let message = ok(json!({"type": "complete", "id": "z", "payload": {"ignored": 1}}));
        assert_eq!(
            message,
            Message {
                kind: MessageType::Complete,
                id: Some("z".into()),
                payload: None
            }
        );
    }

    #[test]
    fn parse_reports_bad_json() {
        let Err(e) = parse_message("{") else {
            panic!("expected an error")
        };
        assert!(e.starts_with("Message is not valid JSON: "), "{e}");
        let Err(e) = parse_message("") else {
            panic!("expected an error")
        };
        assert!(e.starts_with("Message is not valid JSON: "), "{e}");
        let Err(e) = parse_message_bytes(b"\xff\xfe") else {
            panic!("expected an error")
        };
        assert!(e.starts_with("Message is not valid JSON: "), "{e}");
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let Err(e) = parse_message(&deep) else {
            panic!("expected an error")
        };
        assert!(e.contains("recursion limit"), "{e}");
        assert_eq!(
            parse_message("[]"),
            Err("Message is expected to be an object, but got array".into())
        );
        assert_eq!(
            parse_message(r#"{"type":"ping"}"#),
            Ok(Message {
                kind: MessageType::Ping,
                id: None,
                payload: None
            })
        );
        assert_eq!(
            parse_message_bytes(br#"{"type":"complete","id":"1"}"#).map(|m| m.kind),
            Ok(MessageType::Complete)
        );
    }

    #[test]
    fn json_round_trip_keeps_big_numbers() {
        let text = r#"{"type":"next","id":"\u00e9\n","payload":{"big":123456789012345678901234567890,"f":1.50,"e":1e400}}"#;
        let message = parse_message(text);
        let again = message.as_ref().map(|m| parse_message(&m.to_json()));
        assert!(matches!(again, Ok(Ok(_))));
        if let (Ok(first), Ok(Ok(second))) = (&message, again) {
            assert_eq!(first, &second);
            assert!(first.to_json().contains("123456789012345678901234567890"));
            assert!(first.to_json().contains("1.50"));
            let reparsed: Result<Value, _> = serde_json::from_str(&first.to_json());
            assert_eq!(reparsed.ok(), Some(first.to_value()));
        }
    }

    #[test]
    fn max_depth_matches_serde_json() {
        let doc = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        assert!(serde_json::from_str::<Value>(&doc(MAX_DEPTH)).is_ok());
        assert!(serde_json::from_str::<Value>(&doc(MAX_DEPTH + 1)).is_err());
    }

    #[test]
    fn to_json_shapes() {
        let ping = Message {
            kind: MessageType::Ping,
            id: None,
            payload: None,
        };
        assert_eq!(ping.to_json(), r#"{"type":"ping"}"#);
        let complete = Message {
            kind: MessageType::Complete,
            id: Some("a\"b".into()),
            payload: None,
        };
        assert_eq!(complete.to_json(), r#"{"type":"complete","id":"a\"b"}"#);
        assert_eq!(
            complete.to_value(),
            json!({"type": "complete", "id": "a\"b"})
        );
    }

    #[test]
    fn new_builds_and_validates() {
        assert_eq!(
            Message::new(MessageType::Ping, Some("1".into()), None),
            Err("\"ping\" message does not take an 'id' property".into())
        );
        assert_eq!(
            Message::new(MessageType::Complete, Some("1".into()), Some(json!({}))),
            Err("\"complete\" message does not take a 'payload' property".into())
        );
        assert_eq!(
            Message::new(MessageType::Next, None, Some(json!({}))),
            Err("\"next\" message is missing the 'id' property".into())
        );
        assert_eq!(
            Message::new(MessageType::Subscribe, Some("1".into()), None),
            Err("\"subscribe\" message is missing the 'payload' property".into())
        );
        let message = Message::new(
            MessageType::Subscribe,
            Some("1".into()),
            Some(json!({"query": "q"})),
        );
        assert_eq!(
            message.map(|m| m.subscribe_payload().map(|p| p.query.to_owned())),
            Ok(Some("q".to_owned()))
        );
    }

    #[test]
    fn subscribe_payload_is_none_for_malformed_hand_built_messages() {
        let message = Message {
            kind: MessageType::Subscribe,
            id: Some("1".into()),
            payload: Some(json!({"query": "q", "variables": [1]})),
        };
        assert_eq!(message.subscribe_payload(), None);
        let message = Message {
            kind: MessageType::Subscribe,
            id: Some("1".into()),
            payload: None,
        };
        assert_eq!(message.subscribe_payload(), None);
    }
}
