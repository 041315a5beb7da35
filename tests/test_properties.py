"""Property tests (hypothesis): projection matches a reference implementation for any data and
selection; tenant and user isolation never misdelivers and never loses an event; argument filters
agree with Python's own comparisons."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fraiseql_core_rs.subscriptions import PySubscriptionExecutor

NAMES = ["a", "b", "c", "d"]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(NAMES), children, max_size=4)
    ),
    max_leaves=20,
)

# A selection: list of (response key, field name, sub-selection or None).
Selection = list[tuple[str, str, Any]]


@st.composite
def selections(draw: st.DrawFn, depth: int = 0) -> Selection:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    out: Selection = []
    for name in names:
        alias = draw(st.sampled_from([name, name, f"{name}_alias"]))
        sub = draw(st.none() | selections(depth + 1)) if depth < 3 else None
        out.append((alias, name, sub))
    return out


def to_query(selection: Selection) -> str:
    parts = []
    for key, name, sub in selection:
        head = name if key == name else f"{key}: {name}"
        parts.append(f"{head} {{ {to_query(sub)} }}" if sub else head)
    return " ".join(parts)


def reference(value: Any, selection: Selection | None) -> Any:
    if selection is None or value is None:
        return value
    if isinstance(value, list):
        return [reference(item, selection) for item in value]
    if not isinstance(value, dict):
        return None
    return {key: reference(value.get(name), sub) for key, name, sub in selection}


@settings(max_examples=300, deadline=None)
@given(data=json_values, selection=st.none() | selections())
def test_projection_matches_reference(data: Any, selection: Selection | None) -> None:
    root = f"root {{ {to_query(selection)} }}" if selection else "root"
    executor = PySubscriptionExecutor()
    executor.register_subscription("c", "s", f"subscription {{ {root} }}")
    executor.publish_event("e", "root", data)
    frame = executor.next_event("s")
    assert frame is not None
    message = json.loads(frame)
    assert message["payload"] == {"data": {"root": reference(data, selection)}}


TENANTS = [None, "t1", "t2"]
USERS = [None, "u1", "u2"]


@settings(max_examples=200, deadline=None)
@given(
    subs=st.lists(
        st.tuples(st.sampled_from(TENANTS), st.sampled_from(USERS)), min_size=1, max_size=12
    ),
    events=st.lists(st.tuples(st.sampled_from(TENANTS), st.sampled_from(USERS)), max_size=20),
)
def test_tenant_and_user_isolation_never_misdelivers(
    subs: list[tuple[str | None, str | None]], events: list[tuple[str | None, str | None]]
) -> None:
    executor = PySubscriptionExecutor(max_queue=1000)
    for i, (tenant, user) in enumerate(subs):
        executor.register_subscription(
            f"c{i % 3}", f"s{i}", "subscription { users { id } }", tenant_id=tenant, user_id=user
        )
    for n, (tenant, user) in enumerate(events):
        executor.publish_event("e", "users", {"id": str(n)}, tenant_id=tenant, user_id=user)
    for i, (sub_tenant, sub_user) in enumerate(subs):
        got = []
        while (frame := executor.next_event(f"s{i}")) is not None:
            got.append(json.loads(frame)["payload"]["data"]["users"]["id"])
        expected = [
            str(n)
            for n, (tenant, user) in enumerate(events)
            if (tenant is None or tenant == sub_tenant) and (user is None or user == sub_user)
        ]
        assert got == expected


OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


@settings(max_examples=300, deadline=None)
@given(
    op=st.sampled_from(sorted(OPS)),
    value=st.integers(-5, 5) | st.floats(-5, 5, allow_nan=False),
    operand=st.integers(-5, 5),
)
def test_numeric_filters_agree_with_python(op: str, value: float, operand: int) -> None:
    executor = PySubscriptionExecutor()
    executor.register_subscription(
        "c",
        "s",
        "subscription ($x: Int) { users { id } }",
        variables={"x": operand},
        filters=[{"field": "n", "op": op, "variable": "x"}],  # type: ignore[typeddict-item]
    )
    delivered = executor.publish_event("e", "users", {"n": value})
    assert delivered == int(OPS[op](value, operand))
