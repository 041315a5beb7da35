"""What clients see of errors: the one place where an error becomes the JSON sent to a client.

An exception a resolver raises by accident may carry secrets (a DSN, a host, a query), so its
message is masked by default ("Internal server error", code INTERNAL_SERVER_ERROR) and the
exception is logged with its traceback on the `fraiseql_fastapi` logger instead. A
`graphql.GraphQLError` raised on purpose goes out as it is, with its own message and
extensions. A `format_error` hook, when given, has the last word on every error we send.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from graphql import GraphQLError

__all__ = ["MASKED_MESSAGE", "ErrorFormatter", "FormatError"]

logger = logging.getLogger("fraiseql_fastapi")

#: The message a client gets in place of an unexpected exception's text.
MASKED_MESSAGE = "Internal server error"
#: The extensions of an error that stems from an unexpected exception.
INTERNAL_ERROR_EXTENSIONS = {"code": "INTERNAL_SERVER_ERROR"}

#: `format_error(error) -> dict`: rewrites an error (a `GraphQLError`; for an exception of a
#: resolver, its `original_error` is the exception) into what the client receives.
FormatError = Callable[[GraphQLError], Mapping[str, Any]]


class ErrorFormatter:
    """Masks, logs and formats errors for clients, following the manager's options."""

    def __init__(
        self, *, mask_errors: bool = True, format_error: FormatError | None = None
    ) -> None:
        self.mask_errors = mask_errors
        self.format_error = format_error

    def resolver_error(self, exception: BaseException, field: str) -> Mapping[str, Any]:
        """A subscription resolver failed for one event (called by the core, once per call):
        logs it and returns the error's `message` and `extensions` for that event's `next`."""
        if isinstance(exception, GraphQLError):
            logger.warning("resolver of %r raised a GraphQL error", field, exc_info=exception)
            # Raised on purpose: its own message and extensions (original_error marks it so).
            error = GraphQLError(
                exception.message,
                path=[field],
                original_error=exception,
                extensions=exception.extensions,
            )
        else:
            logger.error("resolver of %r failed", field, exc_info=exception)
            original = exception if isinstance(exception, Exception) else RuntimeError(exception)
            error = GraphQLError(str(exception), path=[field], original_error=original)
        return self.format(error)

    def format(self, error: GraphQLError) -> Mapping[str, Any]:
        """The JSON form of one error as the client sees it."""
        error = self._masked(error)
        if self.format_error is None:
            return error.formatted
        try:
            return self.format_error(error)
        except Exception:
            # A broken hook must not leak what it was meant to hide, nor end the connection.
            logger.exception("format_error failed")
            return {"message": MASKED_MESSAGE, "extensions": dict(INTERNAL_ERROR_EXTENSIONS)}

    def format_all(self, errors: Iterable[GraphQLError]) -> list[Mapping[str, Any]]:
        return [self.format(error) for error in errors]

    def log_unexpected(self, errors: Iterable[GraphQLError]) -> None:
        """Logs the errors of an executed operation that stem from an unexpected exception
        (graphql-core reports them in the result and logs nothing)."""
        for error in errors:
            if _unexpected_original(error) is not None:
                logger.error(
                    "resolver of %s failed", _path_text(error), exc_info=error.original_error
                )

    def _masked(self, error: GraphQLError) -> GraphQLError:
        original = _unexpected_original(error)
        if original is None:
            return error
        # Unmasked (development): the exception's own text, still marked as an internal error.
        message = (str(original) or type(original).__name__) if not self.mask_errors else None
        return GraphQLError(
            message or MASKED_MESSAGE,
            nodes=error.nodes,
            path=error.path,
            original_error=original,
            extensions=dict(INTERNAL_ERROR_EXTENSIONS),
        )


def _unexpected_original(error: GraphQLError) -> Exception | None:
    """The exception behind an error when it was not raised on purpose as a GraphQLError."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        return None
    return original


def _path_text(error: GraphQLError) -> str:
    return ".".join(str(segment) for segment in error.path or ()) or "(operation)"
