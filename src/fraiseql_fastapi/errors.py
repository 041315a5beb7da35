"""The error raised when Python cannot be turned into GraphQL: `SubscriptionDefinitionError`, for a
resolver, or a type it uses, that has no GraphQL form. It has a module of its own so that every
module which reads resolvers and hints can raise it without importing anything else.
"""

from __future__ import annotations

__all__ = ["SubscriptionDefinitionError"]


class SubscriptionDefinitionError(TypeError):
    """A resolver, or a type it uses, cannot be turned into GraphQL.

    Raised at import time (by `@subscription`) or when the schema is built; the message names
    the function and the problem, e.g. `message_posted: parameter 'room_id' has no type hint`.
    """
