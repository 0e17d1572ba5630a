"""The ingest use cases' refusals; ``ingest.api`` maps each to its status (``INGEST_ERRORS``)."""

from __future__ import annotations


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
