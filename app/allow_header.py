"""`Allow` on OPTIONS answers, listing every method of the path.

Litestar builds a path's OPTIONS handler with the first handler registered for it and keeps it when more handlers
join the path, so GET and DELETE of `/v1/responses/{id}`, registered one after the other, would answer
`Allow: GET, OPTIONS`. The route itself knows all its methods: this middleware writes them into the header.
"""

from __future__ import annotations

from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send


def _methods_of(scope: Scope) -> str | None:
    for route in scope["litestar_app"].routes:
        if isinstance(route, HTTPRoute) and route.path_format == scope.get("path_template"):
            return ", ".join(sorted(route.methods))
    return None


def allow_every_method(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        methods = _methods_of(scope) if scope["type"] == "http" and scope.get("method") == "OPTIONS" else None
        if methods is None:
            await app(scope, receive, send)
            return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                message = {**message, "headers": [*headers, (b"allow", methods.encode())]}
            await send(message)

        await app(scope, receive, send_with_allow)

    return middleware
