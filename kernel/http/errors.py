"""Every error answer, in one shape: ``{status_code, detail, extra}``.

Handlers call the domain and let its exceptions propagate. Each context declares, next to its routes,
one ``error_table`` from its exception classes to a status code (and how to build ``detail`` and
``extra`` from the exception); the app registers all of them once as Litestar ``exception_handlers``,
together with the framework's own errors (unknown route, wrong method, validation, guards) and the
last resort 500. Litestar picks the rule of the nearest class in the exception's MRO, so a context's
base error class can map to a default status under more specific ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec
import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=Exception)
Extra = dict[str, Any] | list[Any]
RETRY_AFTER = {"Retry-After": "1"}  # a refusal the client should simply retry shortly


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Every 4xx/5xx body: the status again and what went wrong. ``extra`` holds per-field validation
    errors, the choices a client can retry with, or the fields a client can act on (for a short
    reservation, ``available``)."""

    status_code: int
    detail: str
    extra: dict[str, Any] | list[Any] | None = None


def error_response(
    status_code: int, detail: str, extra: Extra | None = None, headers: Mapping[str, str] | None = None
) -> Response[ErrorBody]:
    """The one way an error body is built (an empty ``extra`` is left out)."""
    return Response(
        ErrorBody(status_code, detail, extra or None),
        status_code=status_code,
        headers=headers,
        media_type=MediaType.JSON,
    )


@dataclass(frozen=True, slots=True)
class ErrorRule(Generic[E]):
    """How one domain exception class answers: its status, ``detail`` (the message, or a fixed text when
    the message is not for clients), ``extra``, headers (fixed, or from the exception), and whether it is
    worth a warning in the log (an outage, as opposed to a client's mistake)."""

    exception: type[E]
    status_code: int
    detail: str | Callable[[E], str] = str
    extra: Callable[[E], Extra] | None = None
    headers: Mapping[str, str] | Callable[[E], Mapping[str, str]] | None = None
    warning: str | None = None

    def __call__(self, request: Request[Any, Any, Any], exc: E) -> Response[ErrorBody]:
        if self.warning is not None:
            log.warning(self.warning, path=request.url.path, error=repr(exc))
        detail = self.detail if isinstance(self.detail, str) else self.detail(exc)
        extra = self.extra(exc) if self.extra is not None else None
        headers = self.headers(exc) if callable(self.headers) else self.headers
        return error_response(self.status_code, detail, extra, headers)


ErrorTable = Mapping[type[Exception], ErrorRule[Any]]


def error_table(*rules: ErrorRule[Any]) -> ErrorTable:
    """A context's exception classes -> their rules (one rule per class)."""
    table = {rule.exception: rule for rule in rules}
    if len(table) != len(rules):
        raise ValueError("an exception class has two rules")
    return table


def _http_exception(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    """The framework's own refusals (404 route, 405, validation 400, 413, guards) in the same shape."""
    return error_response(exc.status_code, exc.detail, exc.extra, exc.headers)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.exception("unhandled error", path=request.url.path, error=repr(exc))
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal error")


def exception_handlers(*tables: ErrorTable) -> ExceptionHandlersMap:
    """Litestar ``exception_handlers`` for every context's table plus the framework's errors and the 500."""
    handlers: ExceptionHandlersMap = {HTTPException: _http_exception, Exception: _unexpected}
    for table in tables:
        for exception, rule in table.items():
            if exception in handlers:
                raise ValueError(f"{exception.__name__} is mapped twice")
            handlers[exception] = rule
    return handlers
