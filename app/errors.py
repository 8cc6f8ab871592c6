"""The one place that turns errors into OpenAI error envelopes: `{"error": {message, type, param, code}}`.

Never 409 for a state conflict (the openai SDK retries 409s): conflicts are 400s.
"""

from __future__ import annotations

import logging

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from app.protocol.errors import ErrorBody, ErrorResponse
from ocr_engine.errors import InvalidInput, ModelUnavailable, OcrError
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
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param


def error_response(status: int, message: str, type: str, code: str | None = None, param: str | None = None) -> Response:
    body = ErrorResponse(error=ErrorBody(message=message, type=type, param=param, code=code))
    return Response(content=body, status_code=status, media_type="application/json")


def api_error_of_job(error: JobError) -> ApiError:
    """A job's failure as the status a synchronous request answers with."""
    if error.kind == "invalid_request":
        return ApiError(400, error.message, code=error.code, param=error.param)
    if error.code == "model_unavailable":
        return ApiError(503, error.message, type="service_unavailable_error", code=error.code)
    return ApiError(500, error.message, type="server_error", code=error.code)


def _handle_api_error(_: Request, exc: ApiError) -> Response:
    return error_response(exc.status, exc.message, exc.type, exc.code, exc.param)


def _handle_ocr_error(_: Request, exc: OcrError) -> Response:
    if isinstance(exc, InvalidInput):
        return error_response(400, exc.message, "invalid_request_error", exc.code, exc.param)
    if isinstance(exc, ModelUnavailable):
        return error_response(503, exc.message, "service_unavailable_error", exc.code)
    return error_response(500, exc.message, "server_error", exc.code)


def _handle_validation(_: Request, exc: ValidationException) -> Response:
    details = exc.extra if isinstance(exc.extra, list) else []
    first = details[0] if details and isinstance(details[0], dict) else {}
    param = first.get("key") or None
    message = first.get("message") or exc.detail or "invalid request"
    if param:
        message = f"{message} (at `{param}`)"
    if "JSON" in (exc.detail or "") and not first:
        message = f"request body is not valid JSON: {exc.detail}"
    return error_response(400, message, "invalid_request_error", "invalid_request", param)


def _handle_http(_: Request, exc: HTTPException) -> Response:
    if isinstance(exc, NotAuthorizedException):
        return error_response(401, exc.detail, "invalid_request_error", "invalid_api_key")
    kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return error_response(exc.status_code, exc.detail, kind, None)


def _handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal server error", "server_error", "internal_error")


EXCEPTION_HANDLERS = {
    ApiError: _handle_api_error,
    OcrError: _handle_ocr_error,
    ValidationException: _handle_validation,
    HTTPException: _handle_http,
    Exception: _handle_unexpected,
}
