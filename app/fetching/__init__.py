"""Documents named by http(s) URLs, fetched by the API before a job is queued, behind an SSRF guard."""

from app.fetching.fetch import fetch_url
from app.fetching.url_policy import FetchFailed, UrlNotAllowed, UrlPolicy

__all__ = ["FetchFailed", "UrlNotAllowed", "UrlPolicy", "fetch_url"]
