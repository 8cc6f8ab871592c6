"""The request class of the app: JSON bodies decoded strictly, in one pass, into the handler's Struct.

Litestar decodes a body to Python objects and then converts them leniently (`"2"` would pass for an integer). Here
the body goes straight into the `data` parameter's type with msgspec's strict decoder, so the server accepts exactly
what the OpenAPI document (msgspec's schema of the same Structs, `app.openapi`) describes, a bad field fails at the
first wrong byte, and a deeply nested value is refused instead of exhausting the recursion limit.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

from app.errors import invalid_json


class ApiRequest(Request):
    def _body_type(self) -> Any:
        data = self.route_handler.parsed_fn_signature.parameters.get("data")
        return None if data is None else data.annotation

    async def json(self) -> Any:
        """The body as the handler's `data` type (Litestar's lenient conversion then passes the Struct through).
        A RecursionError can only come from nesting: msgspec decodes arrays and objects recursively."""
        body_type = self._body_type()
        try:
            if body_type is None:
                return await super().json()
            body = await self.body()
            return msgspec.json.decode(body, type=body_type)  # never empty: Litestar does not call json() then
        except msgspec.ValidationError as exc:
            raise ValidationException(str(exc)) from exc
        except msgspec.DecodeError as exc:
            raise invalid_json(str(exc)) from None
        except RecursionError:
            raise invalid_json("arrays and objects nest too deeply (a few hundred levels at most)") from None
