"""The one place that turns errors into OpenAI error envelopes: `{"error": {message, type, param, code}}`.

Never 409 for a state conflict (the openai SDK retries 409s): conflicts are 400s.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    SerializationException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from app.protocol.common import UNSUPPORTED_FIELDS
from app.protocol.errors import ErrorBody, ErrorResponse
from ocr_engine.errors import ErrorKind, OcrError
from workers.events import JobError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error raised by the HTTP layer itself (unknown model, unsupported parameter…)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = dict(headers or {})


def error_response(
    status: int,
    message: str,
    type: str,
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = ErrorResponse(error=ErrorBody(message=message, type=type, param=param, code=code))
    return Response(content=body, status_code=status, media_type="application/json", headers=headers)


def invalid_json(detail: str) -> ApiError:
    return ApiError(400, f"the request body is not valid JSON: {detail}", code="invalid_json")


# An error's kind decides its status and OpenAI error type, raised here or reported by a job alike.
_STATUS_OF_KIND: dict[ErrorKind, tuple[int, str]] = {
    ErrorKind.INVALID_REQUEST: (400, "invalid_request_error"),
    ErrorKind.UNAVAILABLE: (503, "service_unavailable_error"),
    ErrorKind.SERVER: (500, "server_error"),
}


def _api_error(kind: ErrorKind, message: str, code: str, param: str | None) -> ApiError:
    status, type_ = _STATUS_OF_KIND[kind]
    return ApiError(status, message, type=type_, code=code, param=param if kind is ErrorKind.INVALID_REQUEST else None)


def api_error_of_job(error: JobError) -> ApiError:
    """A job's failure as the status a synchronous request answers with."""
    return _api_error(error.error_kind, error.message, error.code, error.param)


def _handle_api_error(_: Request, exc: ApiError) -> Response:
    return error_response(exc.status, exc.message, exc.type, exc.code, exc.param, exc.headers)


def _handle_ocr_error(request: Request, exc: OcrError) -> Response:
    return _handle_api_error(request, _api_error(exc.kind, exc.message, exc.code, exc.param))


# msgspec ends a message with "- at `$.path`", or "- at `key` in `$.path`" when a mapping's key is at fault
_AT_PATH = re.compile(r"^(?P<message>.*?)(?: - at `(?:key` in `)?\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")
_CONTENT_PART_TYPE = re.compile(r"^messages\[\d+\]\.content\[\d+\]\.type$")


def _describe(error: str) -> tuple[str, str | None]:
    """A msgspec validation message as (client message, param)."""
    match = _AT_PATH.match(error)
    message = match["message"] if match else error
    path = (match["path"] or "") if match else ""
    path = path.lstrip(".")
    if missing := _MISSING_FIELD.search(message):
        if missing[1] == "data" and not path:
            return "the request body is missing; send a JSON object", None
        param = ".".join(filter(None, [path, missing[1]]))
        return f"missing required field `{param}`", param
    if (field := re.split(r"[.\[]", path, maxsplit=1)[0]) in UNSUPPORTED_FIELDS:
        return f"`{field}` is not supported by this server: leave it out (or at its default)", field
    if _CONTENT_PART_TYPE.match(path) and message.startswith("Invalid value"):
        kind = message.removeprefix("Invalid value").strip()
        return f"unsupported content part type {kind}; supported: text, image_url, file", path
    return (f"{message} (at `{path}`)", path) if path else (message, None)


def _handle_validation(_: Request, exc: ValidationException) -> Response:
    cause = exc.__cause__
    message, param = _describe(str(cause) if isinstance(cause, msgspec.ValidationError) else exc.detail)
    return error_response(400, message, "invalid_request_error", "invalid_request", param)


def _handle_http(request: Request, exc: HTTPException) -> Response:
    if isinstance(exc, NotAuthorizedException):
        return error_response(401, exc.detail, "invalid_request_error", "invalid_api_key")
    if isinstance(exc, PermissionDeniedException):
        return error_response(403, exc.detail, "invalid_request_error", "insufficient_permissions")
    if isinstance(exc.__cause__, SerializationException):
        return _handle_api_error(request, invalid_json(exc.detail))
    kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return error_response(exc.status_code, exc.detail, kind, None, headers=exc.headers)


def _handle_too_large(request: Request, _: RequestEntityTooLarge) -> Response:
    limit = request.app.state.context.settings.max_request_bytes
    message = (
        f"the request body is larger than {limit:,} bytes (OCRSERVE_MAX_REQUEST_BYTES={limit}); send large documents"
        " as http(s) URLs, or over several requests"
    )
    return error_response(413, message, "invalid_request_error", "limit_exceeded")


def _handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal server error", "server_error", "internal_error")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ApiError: _handle_api_error,
    OcrError: _handle_ocr_error,
    ValidationException: _handle_validation,
    HTTPException: _handle_http,
    RequestEntityTooLarge: _handle_too_large,
    Exception: _handle_unexpected,
}
