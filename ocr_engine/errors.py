"""Domain errors. Their messages are written for the client: they say what was wrong and what to change.

Each error's `kind` says who must act on it, and that alone decides its HTTP status (`app.errors`), whether it
is raised in the API process or travels from a worker inside a job's failure (`workers.events.JobError`).
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    INVALID_REQUEST = "invalid_request"  # the client must change its request
    UNAVAILABLE = "unavailable"  # something the service needs is not there right now: retry later
    SERVER = "server"  # our failure


class OcrError(Exception):
    """Base class; `code` is a stable machine-readable name, `param` the request field at fault."""

    code = "ocr_error"
    kind = ErrorKind.SERVER

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidInput(OcrError):
    """The request itself is wrong (bad field, bad base64, undecodable document…): the client must fix it."""

    code = "invalid_input"
    kind = ErrorKind.INVALID_REQUEST


class UnsupportedDocument(InvalidInput):
    """The bytes are not a document type we can read (or are corrupt / encrypted)."""

    code = "unsupported_document"


class LimitExceeded(InvalidInput):
    """A configured limit (bytes, pages, pixels, tokens) was exceeded; the message names the limit."""

    code = "limit_exceeded"


class ServiceUnavailable(OcrError):
    """Something the service depends on is not available right now (the model, the queue); retry later."""

    code = "service_unavailable"
    kind = ErrorKind.UNAVAILABLE


class ModelUnavailable(ServiceUnavailable):
    """The model weights could not be found or loaded; the message says what to set."""

    code = "model_unavailable"


class JobTimedOut(OcrError):
    """A job ran past its time limit and was stopped."""

    code = "time_limit_exceeded"


class JobCancelled(OcrError):
    """Generation stopped because the job was cancelled."""

    code = "cancelled"
