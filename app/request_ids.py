"""Request ids of the API.

Each HTTP request gets an id: the client's `X-Request-ID` when it is a sane token, else a fresh one. It is sent
back in the `X-Request-ID` response header, attached to every log record of the request (see `ocrserve.logs`),
and stored in the job's record (`meta["request_id"]`), so the worker logs its job lines with the same id.
"""

from __future__ import annotations

import re
import uuid

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from ocrserve.logs import log_context, request_id_var

REQUEST_ID_HEADER = "x-request-id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def current_request_id() -> str | None:
    return request_id_var.get()


def _request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name.lower() == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1").strip()
            if _SANE_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def request_ids(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: take or make the request id, log with it, and echo it in the response headers."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        request_id = _request_id_of(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER.encode(), request_id.encode())]
            await send(message)

        with log_context(request_id=request_id):
            await app(scope, receive, send_with_id)

    return middleware
