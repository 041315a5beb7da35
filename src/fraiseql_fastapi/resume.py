"""What a subscription asks of its positions, from the `extensions` of its `subscribe` payload
(or an SSE request's `Last-Event-ID`).

- `{"resume": true}`: each `next` carries `extensions.cursor`, the event's position in its
  channel's history (an opaque string). `SubscriptionManager(positions=True)` asks it for
  every subscription.
- `{"resumeFrom": cursor}`: after a reconnect, the subscription first receives, in order and
  once each, the events of its channel published after `cursor`, then the live ones. When the
  history no longer covers the cursor (pruned, or an in-memory bus restarted) its first `next`
  is a field error with `extensions.code = "RESUME_GAP"`: refetch, and go on from the events that
  follow (they arrive as usual).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError

#: The `subscribe` payload's extensions.
RESUME = "resume"
RESUME_FROM = "resumeFrom"
#: The error code of a resume whose cursor the history no longer covers (sent by the core).
RESUME_GAP = "RESUME_GAP"


@dataclass(frozen=True, slots=True)
class Resume:
    """Whether a subscription's events carry cursors, and the cursor it resumes after."""

    positions: bool = False
    resume_from: str | None = None


NO_RESUME = Resume()


def resume_request(
    extensions: Mapping[str, Any] | None, *, positions: bool, last_event_id: str | None = None
) -> Resume | GraphQLError:
    """Reads `extensions` (`positions`: the server's default for `resume`; `last_event_id`: the
    SSE request's header, used when `resumeFrom` is absent). A bad value is an error for the
    operation."""
    extensions = extensions or {}
    wanted = extensions.get(RESUME, positions)
    if not isinstance(wanted, bool):
        return GraphQLError("extensions.resume must be true or false", extensions=_BAD_INPUT)
    cursor = extensions.get(RESUME_FROM, last_event_id or None)
    if cursor is not None and (not isinstance(cursor, str) or not cursor):
        return GraphQLError(
            "extensions.resumeFrom must be a cursor from extensions.cursor", extensions=_BAD_INPUT
        )
    if not wanted and cursor is None:
        return NO_RESUME
    return Resume(positions=wanted or cursor is not None, resume_from=cursor)


_BAD_INPUT = {"code": "BAD_USER_INPUT"}
