"""GET /ui: the web playground, static files inside the package (no CDN: it works offline). It holds nothing
secret, so it is served without a key; everything it does goes through the API, with the key typed into it."""

from __future__ import annotations

from pathlib import Path

from litestar.router import Router
from litestar.static_files import create_static_files_router

UI_FILES = Path(__file__).resolve().parent.parent / "ui"


def ui_router() -> Router:
    return create_static_files_router(
        path="/ui", directories=[UI_FILES], html_mode=True, name="ui", include_in_schema=False
    )
