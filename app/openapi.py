"""The OpenAPI document, made to describe the server as it behaves.

- Bodies are decoded strictly by msgspec into the protocol Structs (`app.request`), so their schemas are msgspec's
  own JSON Schema of those Structs (`use_msgspec_schemas`): every `Meta` constraint the decoder enforces is in the
  document, and nothing the decoder rejects is.
- Every operation documents the OpenAI error envelope for the statuses it can answer (`error_responses`), in
  place of Litestar's `{status_code, detail}` schema, which this server never sends.
- Streaming operations document `text/event-stream` beside their JSON reply (`EventStreamOperation`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast, get_args

import msgspec
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.openapi.spec import (
    Link,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Schema,
    SecurityScheme,
)

from app.auth import require_admin_key, require_api_key
from app.protocol.errors import ErrorResponse

_ERROR_DESCRIPTIONS = {
    400: "The request is invalid: a bad field, document or URL, or a limit exceeded; the message says which",
    401: "No valid API key (only when OCRSERVE_API_KEYS is set)",
    403: "The key is not an admin key (OCRSERVE_ADMIN_KEYS)",
    404: "No such model, or no such response",
    413: "The request body is larger than OCRSERVE_MAX_REQUEST_BYTES",
    429: "Too many jobs or pages queued; retry after the Retry-After header's seconds",
    500: "An internal error",
    503: "The model is not loaded or no worker can take jobs; retry later",
}
ALWAYS = (400, 500)  # every operation validates its parameters, and any can fail unexpectedly


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """The OpenAI error envelope for `statuses`, plus 400 and 500."""
    return {
        status: ResponseSpec(ErrorResponse, description=_ERROR_DESCRIPTIONS[status], generate_examples=False)
        for status in sorted({*ALWAYS, *statuses})
    }


API_KEY_ERRORS = error_responses(401)
JOB_ERRORS = error_responses(401, 404, 413, 429, 503)
"""What creating a job can answer: bad input, unknown model, a body too large, admission (429, 503)."""


_EVENT = Schema(
    type=OpenAPIType.OBJECT,
    description="one server-sent event: `data` is a JSON object of the operation's stream (or `[DONE]`)",
    properties={"data": Schema(type=OpenAPIType.STRING), "event": Schema(type=OpenAPIType.STRING)},
    required=["data"],
)


@dataclass
class EventStreamOperation(Operation):
    """An operation whose 200 is JSON, or with `stream: true` a stream of server-sent events (`data: {json}` lines,
    the last one `data: [DONE]` for chat and completions)."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            ok.content = {**(ok.content or {}), "text/event-stream": OpenAPIMediaType(schema=_EVENT)}


def openapi_config(version: str, render_plugins: list[OpenAPIRenderPlugin]) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="ocrserve",
        version=version,
        path="/docs",
        render_plugins=render_plugins,
        create_examples=False,
    )


def _structs_of(annotation: Any) -> Iterator[type[msgspec.Struct]]:
    """The Struct types an annotation names, inside unions and generics (`Response[Health]`, `X | None`)."""
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        yield annotation
    for argument in get_args(annotation):
        yield from _structs_of(argument)


def documented_structs(app: Litestar) -> set[type[msgspec.Struct]]:
    structs: set[type[msgspec.Struct]] = set()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if not isinstance(handler, HTTPRouteHandler) or not handler.resolve_include_in_schema():
                continue
            signature = handler.parsed_fn_signature
            if data := signature.parameters.get("data"):
                structs.update(_structs_of(data.annotation))
            structs.update(_structs_of(signature.return_type.annotation))
            for spec in (handler.responses or {}).values():
                structs.update(_structs_of(spec.data_container))
    return structs


def use_msgspec_schemas(app: Litestar) -> None:
    """Replace the component schemas Litestar derived for the documented Structs with msgspec's JSON Schema of them,
    which is exactly what the strict decoder accepts (Litestar's translation loses some `Meta` constraints)."""
    structs = sorted(documented_structs(app), key=lambda struct: struct.__name__)
    _, components = msgspec.json.schema_components(structs, ref_template="#/components/schemas/{name}")
    openapi = app.openapi_schema
    openapi.components.schemas = {**openapi.components.schemas, **components}


MODEL_REQUESTS = ("ChatCompletionRequest", "CompletionRequest", "ResponseCreateRequest")
OPTIONAL_MODEL_REQUESTS = ("TokenizeRequest", "DetokenizeRequest")


def name_the_served_model(app: Litestar, names: tuple[str, ...]) -> None:
    """`model` in the requests as what it is on this server: one of its names (any other is a 404
    `model_not_found`), so clients and fuzzers built from the document send requests that get to work."""
    # msgspec's schemas, as plain JSON objects (`use_msgspec_schemas`)
    schemas = cast(dict[str, dict[str, Any]], app.openapi_schema.components.schemas)
    served = {"type": "string", "enum": list(dict.fromkeys(names))}
    for request in MODEL_REQUESTS:
        schemas[request]["properties"]["model"] = served
    for request in OPTIONAL_MODEL_REQUESTS:
        schemas[request]["properties"]["model"] = {"anyOf": [served, {"type": "null"}], "default": None}


def link_stored_responses(app: Litestar) -> None:
    """A created response's `id` leads to its retrieve, cancel and delete (OpenAPI links): generated clients and
    stateful fuzzers follow them with real ids instead of guessing."""
    paths = app.openapi_schema.paths or {}

    def operation(path: str, method: str) -> Operation:
        found = getattr(paths[path], method)
        assert isinstance(found, Operation), f"{method.upper()} {path} is not documented"
        return found

    created = (operation("/v1/responses", "post").responses or {})["200"]
    assert isinstance(created, OpenAPIResponse)
    by_id: dict[str, Any] = {"response_id": "$response.body#/id"}
    created.links = {
        name: Link(operation_id=operation(path, method).operation_id, parameters=by_id)
        for name, path, method in (
            ("retrieve", "/v1/responses/{response_id}", "get"),
            ("cancel", "/v1/responses/{response_id}/cancel", "post"),
            ("delete", "/v1/responses/{response_id}", "delete"),
        )
    }


BEARER = "bearer"


def declare_bearer_auth(app: Litestar, *, api_keys: bool, admin_keys: bool) -> None:
    """The operations whose guard checks a key say so (an HTTP bearer scheme), and only those: `/v1` when API keys
    are set, `/v1/devices` when either kind is (require_api_key and require_admin_key's own rules)."""
    guards = {require_api_key} if api_keys else set()
    if api_keys or admin_keys:
        guards.add(require_admin_key)
    if not guards:
        return
    openapi = app.openapi_schema
    openapi.components.security_schemes = {
        BEARER: SecurityScheme(type="http", scheme="bearer", description="an OCRSERVE_API_KEYS (or admin) key")
    }
    for route in app.routes:
        path_item = (openapi.paths or {}).get(route.path_format)
        for handler in getattr(route, "route_handlers", ()) if path_item else ():
            if not {getattr(guard, "func", guard) for guard in handler.resolve_guards()} & guards:
                continue
            for method in handler.http_methods:
                if operation := getattr(path_item, method.lower(), None):
                    operation.security = [{BEARER: []}]
