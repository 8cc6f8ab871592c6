"""The OpenAPI document and the `Allow` headers, in process: what they say is what the server does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from app.asgi import create_app
from app.openapi import MODEL_REQUESTS, OPTIONAL_MODEL_REQUESTS, documented_structs
from app.protocol.chat import ChatCompletionRequest
from ocrserve.settings import Settings
from workers.dispatch import Dispatcher

STREAMING = {("post", "/v1/chat/completions"), ("post", "/v1/completions"), ("post", "/v1/responses")}
STREAMING |= {("get", "/v1/responses/{response_id}")}


class IdleDispatcher:
    """All the lifespan uses of a dispatcher; nothing here reaches a job."""

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


def _app(checkpoint: Path, **settings: Any) -> Litestar:
    return create_app(Settings(model=str(checkpoint), **settings), dispatcher=cast(Dispatcher, IdleDispatcher()))


@pytest.fixture(scope="module")
def app(model_files: Path) -> Litestar:
    return _app(model_files)


@pytest.fixture(scope="module")
def client(app: Litestar) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict:
    return client.get("/openapi.json").json()


def _operations(spec: dict) -> Iterator[tuple[str, str, dict]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                yield method, path, operation


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if isinstance(value.get("$ref"), str):
            yield value["$ref"]
        for item in value.values():
            yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _routes(app: Litestar) -> list[HTTPRoute]:
    return [route for route in app.routes if isinstance(route, HTTPRoute)]


def test_options_allow_every_method_of_the_path(app: Litestar, client: TestClient) -> None:
    for route in _routes(app):
        path = route.path_format.replace("{response_id}", "resp_x").replace("{model_id}", "m")
        path = path.replace("{file_path}", "swagger-ui.css").replace("{path}", "x").replace("{page}", "1")
        response = client.options(path)
        assert response.status_code == 204, path
        assert set(response.headers["allow"].split(", ")) == set(route.methods), path
    assert client.options("/v1/responses/resp_x").headers["allow"] == "DELETE, GET, OPTIONS"


def test_an_undeclared_method_is_a_405_with_allow(client: TestClient) -> None:
    for path, methods in (("/v1/responses/resp_x", {"DELETE", "GET", "OPTIONS"}), ("/metrics", {"GET", "OPTIONS"})):
        response = client.request("TRACE", path)
        assert response.status_code == 405
        assert set(response.headers["allow"].split(", ")) == methods
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_every_error_is_documented_as_the_openai_envelope(spec: dict) -> None:
    for method, path, operation in _operations(spec):
        errors = {status: response for status, response in operation["responses"].items() if status >= "400"}
        assert {"400", "500"} <= set(errors), (method, path)
        for status, response in errors.items():
            if (path, status) == ("/health", "503"):
                continue
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, status)
    assert "status_code" not in str(spec["components"]["schemas"]), "Litestar's own error schema is gone"


def test_statuses_and_content_types_are_the_real_ones(spec: dict) -> None:
    responses = {(method, path): operation["responses"] for method, path, operation in _operations(spec)}
    assert {"404", "413", "429", "503"} <= set(responses["post", "/v1/chat/completions"])
    assert "404" in responses["get", "/v1/responses/{response_id}"]
    assert "404" in responses["get", "/v1/models/{model_id}"]
    assert responses["get", "/health"]["503"]["content"]["application/json"]["schema"]["$ref"].endswith("/Health")
    assert list(responses["get", "/metrics"]["200"]["content"]) == ["text/plain; version=0.0.4"]
    for key, response in responses.items():
        assert ("text/event-stream" in response["200"]["content"]) is (key in STREAMING), key
    assert not {"/v1/embeddings", "/pooling", "/classify"} & set(spec["paths"]), "they only ever answer 400"


def test_body_schemas_are_msgspecs_own_with_their_constraints(app: Litestar, spec: dict) -> None:
    components = spec["components"]["schemas"]
    structs = documented_structs(app)
    _, expected = msgspec.json.schema_components(structs, ref_template="#/components/schemas/{name}")
    for name, schema in expected.items():
        schema = _without_nulls(schema)  # Litestar's writer leaves out null values
        if name in MODEL_REQUESTS + OPTIONAL_MODEL_REQUESTS:  # named as served (test_the_served_model_is_named)
            schema["properties"]["model"] = components[name]["properties"]["model"]
        assert components[name] == schema, name
    chat = components[ChatCompletionRequest.__name__]["properties"]
    assert {"type": "number", "minimum": 0, "maximum": 2} in chat["temperature"]["anyOf"]
    assert {"type": "number", "exclusiveMinimum": 0, "maximum": 1} in chat["top_p"]["anyOf"]
    assert chat["messages"]["minItems"] == 1
    for ref in _refs(spec):
        assert ref.removeprefix("#/components/schemas/") in components, ref


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


@pytest.mark.parametrize(
    ("keys", "guarded"),
    [
        ({"api_keys": ("k",), "admin_keys": ("a",)}, "/v1/"),
        ({"api_keys": ("k",)}, "/v1/"),
        ({"admin_keys": ("a",)}, "/v1/devices/"),  # /v1 stays open without API keys
    ],
)
def test_bearer_auth_is_declared_only_where_keys_are_checked(model_files: Path, keys: dict, guarded: str) -> None:
    with TestClient(_app(model_files, **keys)) as client:
        spec = client.get("/openapi.json").json()
        anonymous = client.get("/v1/models").status_code
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "an OCRSERVE_API_KEYS (or admin) key",
    }
    for method, path, operation in _operations(spec):
        assert (operation.get("security") == [{"bearer": []}]) is path.startswith(guarded), (method, path)
    assert (anonymous == 401) is (guarded == "/v1/"), "the document says what the server does"


def test_without_keys_nothing_claims_auth(spec: dict) -> None:
    assert "securitySchemes" not in spec["components"]
    assert not [path for _, path, operation in _operations(spec) if "security" in operation]


def test_the_served_model_is_named(spec: dict, model_files: Path) -> None:
    """Requests document `model` as this server's names (the served name, else the checkpoint)."""
    served = {"type": "string", "enum": [str(model_files)]}
    for name in MODEL_REQUESTS:
        assert spec["components"]["schemas"][name]["properties"]["model"] == served, name
    for name in OPTIONAL_MODEL_REQUESTS:
        assert spec["components"]["schemas"][name]["properties"]["model"]["anyOf"] == [served, {"type": "null"}]


def test_a_created_response_links_to_what_can_be_done_with_it(spec: dict) -> None:
    links = spec["paths"]["/v1/responses"]["post"]["responses"]["200"]["links"]
    stored = spec["paths"]["/v1/responses/{response_id}"]
    cancel = spec["paths"]["/v1/responses/{response_id}/cancel"]["post"]
    targets = {stored["get"]["operationId"], stored["delete"]["operationId"], cancel["operationId"]}
    assert {link["operationId"] for link in links.values()} == targets
    assert all(link["parameters"] == {"response_id": "$response.body#/id"} for link in links.values())


def test_the_playground_is_served_from_the_package_unless_turned_off(client: TestClient, model_files) -> None:
    page = client.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in ("/ui/app.js", "/ui/markdown.js", "/ui/style.css"):
        assert asset in page.text and client.get(asset).status_code == 200
    assert "//" not in page.text.replace("https://example.com", "")  # nothing from a CDN: it works offline
    with TestClient(_app(model_files, ui=False)) as without:
        assert without.get("/ui").status_code == 404


def test_the_page_image_route_is_documented_as_png(spec: dict) -> None:
    operation = spec["paths"]["/v1/responses/{response_id}/pages/{page}"]["get"]
    assert list(operation["responses"]["200"]["content"]) == ["image/png"]
    assert {"401", "404", "503"} <= set(operation["responses"])
