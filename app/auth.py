"""Bearer-token auth: API keys for /v1/*, admin keys for /v1/devices/*; keys compared in constant time."""

from __future__ import annotations

import hmac

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler

_MISSING_KEY = "missing or invalid API key; send `Authorization: Bearer <key>`"


def bearer_token(connection: ASGIConnection) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, if the request has one."""
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _presents_one_of(connection: ASGIConnection, keys: tuple[str, ...]) -> bool:
    token = bearer_token(connection)
    presented = (token or "").encode()
    # every key is compared (no early exit), so timing does not tell how many keys were tried
    matches = [hmac.compare_digest(presented, key.encode()) for key in keys]
    return token is not None and any(matches)


def require_api_key(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    keys: tuple[str, ...] = connection.app.state.context.settings.api_keys
    if keys and not _presents_one_of(connection, keys):
        raise NotAuthorizedException(_MISSING_KEY)


def require_admin_key(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Device status and switching: open when no keys are configured at all, else an admin key is needed (an
    ordinary API key gets a 403, so its holder knows the key works but lacks the right)."""
    settings = connection.app.state.context.settings
    if not settings.api_keys and not settings.admin_keys:
        return
    if _presents_one_of(connection, settings.admin_keys):
        return
    if _presents_one_of(connection, settings.api_keys):
        raise PermissionDeniedException("this endpoint needs an admin key (OCRSERVE_ADMIN_KEYS)")
    raise NotAuthorizedException(_MISSING_KEY)
