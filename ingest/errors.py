"""What the ingest use cases refuse with (each kind carries its HTTP status), and how a running import
is asked to stop."""

from __future__ import annotations

from ingest.parsing import FeedError, ReadStopped


class IngestError(Exception):
    status_code = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unauthorized(IngestError):
    status_code = 401


class Forbidden(IngestError):
    status_code = 403


class NotFound(IngestError):
    status_code = 404


class Conflict(IngestError):
    status_code = 409


class InvalidRequest(IngestError):
    status_code = 422


class ImportStopped(Conflict):
    """The import was stopped before its end (see ``ImportStop``); its report says what was published."""


class ImportStop:
    """Asks a running import to stop: set from outside (the HTTP layer when its client goes away) or
    by the import itself when it loses its lease. The feed reader looks at it before every chunk."""

    __slots__ = ("reason",)

    def __init__(self) -> None:
        self.reason: str | None = None

    def stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def requested(self) -> bool:
        return self.reason is not None

    def check(self) -> None:
        if self.reason is not None:
            raise ImportStopped(self.reason)


def stop_reason(exc: BaseException, stop: ImportStop) -> str:
    """What a failed import's report says stopped it."""
    if isinstance(exc, ReadStopped | ImportStopped) and stop.reason is not None:
        return stop.reason
    if isinstance(exc, FeedError):
        return exc.reason
    return repr(exc)
