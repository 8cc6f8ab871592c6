"""Domain errors. Their messages are written for the client: they say what was wrong and what to change."""

from __future__ import annotations


class OcrError(Exception):
    """Base class; `code` is a stable machine-readable name, `param` the request field at fault."""

    code = "ocr_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidInput(OcrError):
    """The request itself is wrong (bad field, bad base64, undecodable document…): the client must fix it."""

    code = "invalid_input"


class UnsupportedDocument(InvalidInput):
    """The bytes are not a document type we can read (or are corrupt / encrypted)."""

    code = "unsupported_document"


class LimitExceeded(InvalidInput):
    """A configured limit (bytes, pages, pixels, tokens) was exceeded; the message names the limit."""

    code = "limit_exceeded"


class ServiceUnavailable(OcrError):
    """Something the service depends on is not available right now (the model, the queue); retry later."""

    code = "service_unavailable"


class ModelUnavailable(ServiceUnavailable):
    """The model weights could not be found or loaded; the message says what to set."""

    code = "model_unavailable"


class JobTimedOut(OcrError):
    """A job ran past its time limit and was stopped."""

    code = "time_limit_exceeded"


class JobCancelled(OcrError):
    """Generation stopped because the job was cancelled."""

    code = "cancelled"
