"""Bearer-token auth for /v1/*: constant-time comparison against the configured keys."""

from __future__ import annotations

import hmac

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler


def require_api_key(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    keys: tuple[str, ...] = connection.app.state.context.settings.api_keys
    if not keys:
        return
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    presented = token.strip().encode()
    valid = scheme.lower() == "bearer" and any(hmac.compare_digest(presented, key.encode()) for key in keys)
    if not valid:
        raise NotAuthorizedException("missing or invalid API key; send `Authorization: Bearer <key>`")
