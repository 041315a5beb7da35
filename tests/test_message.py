"""graphql-transport-ws messages: PyGraphQLMessage and PySubscriptionPayload."""

from __future__ import annotations

import contextlib
import datetime
import enum
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fraiseql_core_rs.subscriptions import PyGraphQLMessage, PySubscriptionPayload

CONNECTION_TYPES = ["connection_init", "connection_ack", "ping", "pong"]
OPERATION_TYPES = ["subscribe", "next", "error", "complete"]


def exact(text: str) -> str:
    """A `match=` pattern for exactly this message."""
    return "^" + re.escape(text) + "$"


def valid_payload(kind: str) -> Any:
    return {
        "subscribe": {"query": "subscription { a }"},
        "next": {"data": {"a": 1}},
        "error": [{"message": "boom"}],
    }.get(kind)


# --- plan tests -------------------------------------------------------------------------------


def test_subscription_payload_query() -> None:
    assert PySubscriptionPayload(query="subscription { test }").query == "subscription { test }"


# --- valid messages ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CONNECTION_TYPES)
def test_connection_level_messages(kind: str) -> None:
    message = PyGraphQLMessage(kind)
    assert message.type == kind
    assert message.id is None
    assert message.payload is None
    assert message.to_dict() == {"type": kind}
    assert json.loads(message.to_json()) == {"type": kind}

    with_payload = PyGraphQLMessage(kind, payload={"token": "t"})
    assert with_payload.payload == {"token": "t"}
    assert with_payload.to_dict() == {"type": kind, "payload": {"token": "t"}}

    assert PyGraphQLMessage.parse(json.dumps({"type": kind, "payload": None})).payload is None
    assert PyGraphQLMessage.from_dict({"type": kind, "payload": {}}).payload == {}


@pytest.mark.parametrize("kind", CONNECTION_TYPES)
def test_connection_level_messages_drop_a_stray_id_when_parsed(kind: str) -> None:
    assert PyGraphQLMessage.from_dict({"type": kind, "id": 3}).id is None


@pytest.mark.parametrize("kind", CONNECTION_TYPES)
def test_constructor_refuses_an_id_for_connection_level_messages(kind: str) -> None:
    with pytest.raises(
        ValueError, match=exact(f"\"{kind}\" message does not take an 'id' property")
    ):
        PyGraphQLMessage(kind, id="1")


def test_subscribe_message() -> None:
    payload = {
        "query": "subscription S { a }",
        "operationName": "S",
        "variables": {"x": 1},
        "extensions": {"persisted": True},
    }
    message = PyGraphQLMessage("subscribe", id="op-1", payload=payload)
    assert message.type == "subscribe"
    assert message.id == "op-1"
    assert message.payload == payload
    assert message.to_dict() == {"type": "subscribe", "id": "op-1", "payload": payload}
    assert json.loads(message.to_json()) == message.to_dict()

    minimal = PyGraphQLMessage.parse('{"type":"subscribe","id":"1","payload":{"query":"q"}}')
    assert minimal.payload == {"query": "q"}
    nulls = {"query": "q", "operationName": None, "variables": None, "extensions": None}
    assert PyGraphQLMessage("subscribe", "1", nulls).payload == nulls


def test_next_error_complete_messages() -> None:
    assert PyGraphQLMessage("next", "1", {"data": None}).payload == {"data": None}
    errors = [{"message": "boom", "locations": [{"line": 1, "column": 2}]}, {"message": ""}]
    assert PyGraphQLMessage("error", "1", errors).payload == errors
    complete = PyGraphQLMessage("complete", "1")
    assert complete.payload is None
    assert complete.to_dict() == {"type": "complete", "id": "1"}
    # graphql-ws ignores a payload on complete; so does parsing.
    parsed = PyGraphQLMessage.parse('{"type":"complete","id":"1","payload":{"x":1}}')
    assert parsed == complete


def test_constructor_refuses_a_payload_for_complete() -> None:
    with pytest.raises(
        ValueError, match=exact("\"complete\" message does not take a 'payload' property")
    ):
        PyGraphQLMessage("complete", "1", {"x": 1})


def test_unknown_properties_are_dropped() -> None:
    message = PyGraphQLMessage.from_dict({"type": "next", "id": "1", "payload": {}, "extra": 1})
    assert message.to_dict() == {"type": "next", "id": "1", "payload": {}}


# --- invalid messages: every rule and its message ---------------------------------------------


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ("[]", "Message is expected to be an object, but got array"),
        ('"x"', "Message is expected to be an object, but got string"),
        ("null", "Message is expected to be an object, but got null"),
        ("1", "Message is expected to be an object, but got number"),
        ("{}", "Message is missing the 'type' property"),
        ('{"type":null}', "Message is missing the 'type' property"),
        ('{"type":1}', "Message expects the 'type' property to be a string, but got number"),
        ('{"type":["ping"]}', "Message expects the 'type' property to be a string, but got array"),
        ('{"type":"foo"}', 'Unknown message type "foo"'),
        ('{"type":""}', 'Unknown message type ""'),
        ('{"type":"PING"}', 'Unknown message type "PING"'),
    ],
)
def test_envelope_rules(data: str, error: str) -> None:
    with pytest.raises(ValueError, match=exact(error)):
        PyGraphQLMessage.parse(data)


def test_unknown_type_is_truncated_in_the_error() -> None:
    with pytest.raises(ValueError) as caught:
        PyGraphQLMessage.parse(json.dumps({"type": "x" * 1000}))
    text = str(caught.value)
    assert text.startswith('Unknown message type "xxx')
    assert text.endswith('"...')
    assert len(text) < 100


def test_constructor_rejects_unknown_type() -> None:
    with pytest.raises(ValueError, match=exact('Unknown message type "foo"')):
        PyGraphQLMessage("foo")


@pytest.mark.parametrize("kind", CONNECTION_TYPES)
@pytest.mark.parametrize(
    ("payload", "got"), [("x", "string"), ([], "array"), (1, "number"), (True, "boolean")]
)
def test_connection_level_payload_must_be_object_or_null(kind: str, payload: Any, got: str) -> None:
    error = (
        f"\"{kind}\" message expects the 'payload' property to be an object or null, but got {got}"
    )
    with pytest.raises(ValueError, match=exact(error)):
        PyGraphQLMessage.from_dict({"type": kind, "payload": payload})
    with pytest.raises(ValueError, match=exact(error)):
        PyGraphQLMessage(kind, payload=payload)


@pytest.mark.parametrize("kind", OPERATION_TYPES)
def test_id_rules(kind: str) -> None:
    payload = valid_payload(kind)
    base: dict[str, Any] = {"type": kind}
    if payload is not None:
        base["payload"] = payload

    with pytest.raises(ValueError, match=exact(f"\"{kind}\" message is missing the 'id' property")):
        PyGraphQLMessage.from_dict(base)
    with pytest.raises(ValueError, match=exact(f"\"{kind}\" message is missing the 'id' property")):
        PyGraphQLMessage(kind, payload=payload)
    for bad, got in [(1, "number"), (None, "null"), (["1"], "array")]:
        error = f"\"{kind}\" message expects the 'id' property to be a string, but got {got}"
        with pytest.raises(ValueError, match=exact(error)):
            PyGraphQLMessage.from_dict({**base, "id": bad})
    empty = f"\"{kind}\" message requires a non-empty 'id' property"
    with pytest.raises(ValueError, match=exact(empty)):
        PyGraphQLMessage.from_dict({**base, "id": ""})
    with pytest.raises(ValueError, match=exact(empty)):
        PyGraphQLMessage(kind, id="", payload=payload)


def subscribe(payload: Any) -> str:
    return json.dumps({"type": "subscribe", "id": "1", "payload": payload})


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            '{"type":"subscribe","id":"1"}',
            "\"subscribe\" message is missing the 'payload' property",
        ),
        (
            subscribe(None),
            "\"subscribe\" message expects the 'payload' property to be an object, but got null",
        ),
        (
            subscribe(["q"]),
            "\"subscribe\" message expects the 'payload' property to be an object, but got array",
        ),
        (subscribe({}), "\"subscribe\" message is missing the 'query' property in the payload"),
        (
            subscribe({"query": 1}),
            "\"subscribe\" message expects the 'query' property in the payload to be a string, "
            "but got number",
        ),
        (
            subscribe({"query": None}),
            "\"subscribe\" message expects the 'query' property in the payload to be a string, "
            "but got null",
        ),
        (
            subscribe({"query": "q", "operationName": 3}),
            "\"subscribe\" message expects the 'operationName' property in the payload to be a "
            "string or null, but got number",
        ),
        (
            subscribe({"query": "q", "variables": []}),
            "\"subscribe\" message expects the 'variables' property in the payload to be an "
            "object or null, but got array",
        ),
        (
            subscribe({"query": "q", "variables": "x"}),
            "\"subscribe\" message expects the 'variables' property in the payload to be an "
            "object or null, but got string",
        ),
        (
            subscribe({"query": "q", "extensions": False}),
            "\"subscribe\" message expects the 'extensions' property in the payload to be an "
            "object or null, but got boolean",
        ),
    ],
)
def test_subscribe_rules(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=exact(error)):
        PyGraphQLMessage.parse(text)
    with pytest.raises(ValueError, match=exact(error)):
        PyGraphQLMessage.from_dict(json.loads(text))


def test_subscribe_rules_through_the_constructor() -> None:
    with pytest.raises(
        ValueError, match=exact("\"subscribe\" message is missing the 'payload' property")
    ):
        PyGraphQLMessage("subscribe", "1")
    with pytest.raises(
        ValueError,
        match=exact(
            "\"subscribe\" message expects the 'query' property in the payload to be a string, "
            "but got number"
        ),
    ):
        PyGraphQLMessage("subscribe", "1", {"query": 5})


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (None, "\"next\" message expects the 'payload' property to be an object, but got null"),
        ("x", "\"next\" message expects the 'payload' property to be an object, but got string"),
        ([{}], "\"next\" message expects the 'payload' property to be an object, but got array"),
    ],
)
def test_next_rules(payload: Any, error: str) -> None:
    with pytest.raises(ValueError, match=exact(error)):
        PyGraphQLMessage.from_dict({"type": "next", "id": "1", "payload": payload})


def test_next_requires_a_payload() -> None:
    error = "\"next\" message is missing the 'payload' property"
    with pytest.raises(ValueError, match=exact(error)):
        PyGraphQLMessage.parse('{"type":"next","id":"1"}')
    with pytest.raises(ValueError, match=exact(error)):
        PyGraphQLMessage("next", "1")


ERRORS = (
    "\"error\" message expects the 'payload' property to be a non-empty array of GraphQL errors"
)


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"message": "x"}, f"{ERRORS}, but got object"),
        ("boom", f"{ERRORS}, but got string"),
        (None, f"{ERRORS}, but got null"),
        ([], f"{ERRORS}, but got an empty array"),
        (
            [{"message": "ok"}, "boom"],
            '"error" message expects error 1 in the payload to be an object, but got string',
        ),
        (
            [{"msg": "x"}],
            "\"error\" message expects error 0 in the payload to have a string 'message' "
            "property, but it is missing",
        ),
        (
            [{"message": 7}],
            "\"error\" message expects error 0 in the payload to have a string 'message' "
            "property, but got number",
        ),
    ],
)
def test_error_rules(payload: Any, error: str) -> None:
    with pytest.raises(ValueError, match=exact(error)):
        PyGraphQLMessage.from_dict({"type": "error", "id": "1", "payload": payload})


def test_error_requires_a_payload() -> None:
    with pytest.raises(
        ValueError, match=exact("\"error\" message is missing the 'payload' property")
    ):
        PyGraphQLMessage.parse('{"type":"error","id":"1"}')


# --- parse ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "{", "not json", '{"type":"ping"} trailing', "[" * 10_000])
def test_parse_rejects_invalid_json(text: str) -> None:
    with pytest.raises(ValueError, match=r"^Message is not valid JSON: "):
        PyGraphQLMessage.parse(text)


def test_parse_accepts_bytes() -> None:
    message = PyGraphQLMessage.parse(b'{"type":"next","id":"1","payload":{"s":"\xc3\xa9"}}')
    assert message.payload == {"s": "é"}
    with pytest.raises(ValueError, match=r"^Message is not valid JSON: "):
        PyGraphQLMessage.parse(b"\xff\xfe")


def test_parse_rejects_text_that_is_not_unicode() -> None:
    with pytest.raises(ValueError, match=r"^Message is not valid JSON: "):
        PyGraphQLMessage.parse("\ud800")


@pytest.mark.parametrize("value", [123, None, bytearray(b"{}"), {"type": "ping"}])
def test_parse_rejects_other_types(value: Any) -> None:
    with pytest.raises(TypeError, match=r"parse\(\) expects str or bytes"):
        PyGraphQLMessage.parse(value)


def test_parse_keeps_big_integers_and_floats_exact() -> None:
    big = 2**200
    text = f'{{"type":"next","id":"1","payload":{{"big":{big},"neg":-{big},"f":1.5,"i":7}}}}'
    message = PyGraphQLMessage.parse(text)
    assert message.payload == {"big": big, "neg": -big, "f": 1.5, "i": 7}
    assert type(message.payload["i"]) is int
    assert type(message.payload["f"]) is float
    assert str(big) in message.to_json()
    assert PyGraphQLMessage.parse(message.to_json()) == message


def test_payload_types_are_converted() -> None:
    payload = {"n": None, "t": True, "f": False, "l": [1, "a", 2.5], "d": {"k": [{}]}}
    assert PyGraphQLMessage("next", "1", payload).payload == payload


# --- from_dict and the constructor's Python -> JSON conversion --------------------------------


def test_from_dict_requires_a_dict() -> None:
    with pytest.raises(TypeError):
        PyGraphQLMessage.from_dict([("type", "ping")])  # type: ignore[arg-type]


def test_tuples_become_lists() -> None:
    message = PyGraphQLMessage("next", "1", {"t": (1, (2, 3))})
    assert message.payload == {"t": [1, [2, 3]]}


def test_int_subclasses_and_big_ints() -> None:
    class Level(enum.IntEnum):
        HIGH = 5

    message = PyGraphQLMessage("next", "1", {"e": Level.HIGH, "big": 2**100, "neg": -(2**70)})
    assert json.loads(message.to_json())["payload"] == {"e": 5, "big": 2**100, "neg": -(2**70)}
    assert message.payload == {"e": 5, "big": 2**100, "neg": -(2**70)}


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(datetime.date(2024, 1, 1), "date"), ({1, 2}, "set"), (b"x", "bytes"), (object(), "object")],
)
def test_unsupported_python_types_raise_type_error(value: Any, type_name: str) -> None:
    error = f"value of type {type_name} is not JSON-serializable"
    with pytest.raises(TypeError, match=re.escape(f"payload['v']: {error}")):
        PyGraphQLMessage("next", "1", {"v": value})
    with pytest.raises(TypeError, match=re.escape(f"message['payload']['v'][0]: {error}")):
        PyGraphQLMessage.from_dict({"type": "next", "id": "1", "payload": {"v": [value]}})


def test_dict_keys_must_be_str() -> None:
    with pytest.raises(TypeError, match=exact("payload: dict keys must be str, not int")):
        PyGraphQLMessage("next", "1", {1: "x"})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_raise_value_error(value: float) -> None:
    with pytest.raises(ValueError, match=r"^payload\['v'\]: float -?(nan|inf) has no JSON form$"):
        PyGraphQLMessage("next", "1", {"v": value})


def test_self_referencing_and_too_deep_payloads_raise_value_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match=r"^payload.*: nested deeper than 127 levels$"):
        PyGraphQLMessage("next", "1", {"v": loop})

    def nest(levels: int) -> dict[str, Any]:
        value: dict[str, Any] = {}
        for _ in range(levels - 1):
            value = {"a": value}
        return value

    # Anything the constructor accepts must survive to_json -> parse.
    deepest = PyGraphQLMessage("next", "1", nest(126))
    assert PyGraphQLMessage.parse(deepest.to_json()) == deepest
    with pytest.raises(ValueError, match=r"^payload.*: nested deeper than 127 levels$"):
        PyGraphQLMessage("next", "1", nest(127))


def test_wrong_python_types_for_arguments_raise_type_error() -> None:
    with pytest.raises(TypeError):
        PyGraphQLMessage(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        PyGraphQLMessage("next", 1, {})  # type: ignore[arg-type]


# --- object behaviour -------------------------------------------------------------------------


def test_messages_are_read_only() -> None:
    message = PyGraphQLMessage("next", "1", {"a": 1})
    with pytest.raises(AttributeError):
        message.type = "ping"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        message.id = "2"  # type: ignore[misc]
    # payload hands out a copy: changing it leaves the message alone.
    message.payload["a"] = 2
    assert message.payload == {"a": 1}


def test_equality() -> None:
    a = PyGraphQLMessage("next", "1", {"a": 1})
    assert a == PyGraphQLMessage.parse('{"id":"1","payload":{"a":1},"type":"next"}')
    assert a != PyGraphQLMessage("next", "2", {"a": 1})
    assert a != PyGraphQLMessage("next", "1", {"a": 2})
    assert a != PyGraphQLMessage("ping")
    assert a != "next"
    assert (a == 1) is False


def test_repr() -> None:
    assert repr(PyGraphQLMessage("ping")) == "PyGraphQLMessage(type='ping', id=None, payload=None)"
    assert (
        repr(PyGraphQLMessage("next", "1", {"a": [1, None]}))
        == "PyGraphQLMessage(type='next', id='1', payload={'a': [1, None]})"
    )


def test_to_json_is_compact_json() -> None:
    message = PyGraphQLMessage("complete", 'a"b')
    assert message.to_json() == '{"type":"complete","id":"a\\"b"}'


# --- subscribe_payload and PySubscriptionPayload ----------------------------------------------


def test_subscribe_payload_from_message() -> None:
    message = PyGraphQLMessage(
        "subscribe",
        "1",
        {"query": "q", "operationName": "Op", "variables": {"x": [1]}, "extensions": {"e": 1}},
    )
    payload = message.subscribe_payload()
    assert isinstance(payload, PySubscriptionPayload)
    assert payload.query == "q"
    assert payload.operation_name == "Op"
    assert payload.variables == {"x": [1]}
    assert payload.extensions == {"e": 1}

    minimal = PyGraphQLMessage("subscribe", "1", {"query": "q"}).subscribe_payload()
    assert minimal.operation_name is None
    assert minimal.variables == {}
    assert minimal.extensions is None

    nulls = {"query": "q", "operationName": None, "variables": None, "extensions": None}
    from_nulls = PyGraphQLMessage("subscribe", "1", nulls).subscribe_payload()
    assert from_nulls == minimal


@pytest.mark.parametrize("kind", ["ping", "next", "complete"])
def test_subscribe_payload_needs_a_subscribe_message(kind: str) -> None:
    message = PyGraphQLMessage.from_dict({"type": kind, "id": "1", "payload": {}})
    error = f'subscribe_payload() needs a "subscribe" message, but this is a "{kind}" message'
    with pytest.raises(ValueError, match=exact(error)):
        message.subscribe_payload()


def test_subscription_payload_defaults() -> None:
    payload = PySubscriptionPayload("subscription { a }")
    assert payload.operation_name is None
    assert payload.variables == {}
    assert payload.extensions is None
    # Each payload gets its own dict.
    payload.variables["x"] = 1
    assert PySubscriptionPayload("q").variables == {}


def test_subscription_payload_keeps_the_given_dicts() -> None:
    variables = {"x": 1}
    payload = PySubscriptionPayload("q", "Op", variables, {"e": True})
    assert payload.variables is variables
    assert payload.extensions == {"e": True}


def test_subscription_payload_fields_are_settable() -> None:
    payload = PySubscriptionPayload("q")
    payload.query = "subscription { b }"
    payload.operation_name = "B"
    payload.variables = {"y": 2}
    payload.extensions = {"e": 1}
    assert (payload.query, payload.operation_name) == ("subscription { b }", "B")
    assert (payload.variables, payload.extensions) == ({"y": 2}, {"e": 1})
    payload.operation_name = None
    payload.extensions = None
    payload.variables = None  # type: ignore[assignment]
    assert payload.operation_name is None
    assert payload.extensions is None
    assert payload.variables == {}


def test_subscription_payload_type_checks() -> None:
    with pytest.raises(TypeError):
        PySubscriptionPayload(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        PySubscriptionPayload("q", variables=[1])  # type: ignore[arg-type]
    payload = PySubscriptionPayload("q")
    with pytest.raises(TypeError):
        payload.query = None  # type: ignore[assignment]
    with pytest.raises(TypeError):
        payload.variables = [1]  # type: ignore[assignment]
    with pytest.raises(TypeError):
        payload.extensions = "x"  # type: ignore[assignment]


def test_subscription_payload_to_dict() -> None:
    payload = PySubscriptionPayload("q", variables={"x": 1})
    wire = payload.to_dict()
    assert wire == {"query": "q", "operationName": None, "variables": {"x": 1}}
    wire["variables"]["x"] = 2
    assert payload.variables == {"x": 1}

    full = PySubscriptionPayload("q", "Op", {"x": 1}, {"e": 1}).to_dict()
    assert full == {
        "query": "q",
        "operationName": "Op",
        "variables": {"x": 1},
        "extensions": {"e": 1},
    }
    # The wire form is a valid subscribe payload.
    message = PyGraphQLMessage("subscribe", "1", full)
    assert message.subscribe_payload() == PySubscriptionPayload("q", "Op", {"x": 1}, {"e": 1})


def test_subscription_payload_equality_and_repr() -> None:
    a = PySubscriptionPayload("q", "Op", {"x": 1})
    assert a == PySubscriptionPayload("q", "Op", {"x": 1})
    assert a != PySubscriptionPayload("q", "Op", {"x": 2})
    assert a != PySubscriptionPayload("q", None, {"x": 1})
    assert a != PySubscriptionPayload("q", "Op", {"x": 1}, {})
    assert a != "q"
    assert repr(a) == (
        "PySubscriptionPayload(query='q', operation_name='Op', variables={'x': 1}, extensions=None)"
    )


# --- properties -------------------------------------------------------------------------------


@given(st.text())
def test_parse_raises_only_value_error_on_arbitrary_text(text: str) -> None:
    with contextlib.suppress(ValueError):
        PyGraphQLMessage.parse(text)


@given(st.binary())
def test_parse_raises_only_value_error_on_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        PyGraphQLMessage.parse(data)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)


@given(
    st.dictionaries(
        st.sampled_from(["type", "id", "payload", "query", "x"]),
        json_values
        | st.sampled_from(CONNECTION_TYPES + OPERATION_TYPES)
        | st.fixed_dictionaries({"query": json_values}, optional={"variables": json_values}),
        max_size=4,
    )
    | json_values
)
def test_parse_raises_only_value_error_on_arbitrary_json(value: Any) -> None:
    try:
        message = PyGraphQLMessage.parse(json.dumps(value))
    except ValueError:
        return
    assert PyGraphQLMessage.parse(message.to_json()) == message


ids = st.text(min_size=1)
subscribe_payloads = st.fixed_dictionaries(
    {"query": st.text()},
    optional={
        "operationName": st.none() | st.text(),
        "variables": st.none() | json_objects,
        "extensions": st.none() | json_objects,
    },
)
errors = st.lists(
    st.fixed_dictionaries({"message": st.text()}, optional={"path": st.lists(st.text())}),
    min_size=1,
    max_size=3,
)
messages = st.one_of(
    st.builds(
        PyGraphQLMessage,
        st.sampled_from(CONNECTION_TYPES),
        st.none(),
        st.none() | json_objects,
    ),
    st.builds(PyGraphQLMessage, st.just("subscribe"), ids, subscribe_payloads),
    st.builds(PyGraphQLMessage, st.just("next"), ids, json_objects),
    st.builds(PyGraphQLMessage, st.just("error"), ids, errors),
    st.builds(PyGraphQLMessage, st.just("complete"), ids),
)


@given(messages)
def test_to_json_parse_round_trip(message: PyGraphQLMessage) -> None:
    text = message.to_json()
    assert PyGraphQLMessage.parse(text) == message
    assert PyGraphQLMessage.parse(text.encode()) == message
    assert PyGraphQLMessage.from_dict(json.loads(text)) == message
    assert PyGraphQLMessage.from_dict(message.to_dict()) == message
