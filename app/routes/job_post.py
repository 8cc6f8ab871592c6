"""The decorator of the endpoints that create a job (chat, completions, responses): one place for what they share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import post
from litestar.di import Provide
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec

from app.admission.guard import admission_ticket, admit_request
from app.openapi import JOB_ERRORS, EventStreamOperation


def job_post(path: str, *, summary: str, reply: type, described: str) -> Callable[[Any], HTTPRouteHandler]:
    """POST `path`: admission first (its ticket is the handler's `admission`), then 200 with `reply` as JSON or,
    with stream=true, as server-sent events (`described` says what they are), and the errors creating a job can
    meet."""
    return post(
        path,
        status_code=200,
        summary=summary,
        guards=[admit_request],
        dependencies={"admission": Provide(admission_ticket, sync_to_thread=False)},
        responses={200: ResponseSpec(reply, description=described), **JOB_ERRORS},
        operation_class=EventStreamOperation,
    )
