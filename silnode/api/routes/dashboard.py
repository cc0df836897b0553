"""GET /: the dashboard, one static page (silnode/api/static/dashboard.html) that polls the read-only
/api/v1 endpoints. Served from the package (importlib.resources), so it works from a wheel and offline."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from aiohttp import web

from silnode.api.base import route


@cache
def _page() -> bytes:
    return files("silnode.api").joinpath("static/dashboard.html").read_bytes()


@route("GET", "/", "The dashboard (HTML): models, serving, transfers, hardware, jobs and earnings, live")
async def dashboard(request: web.Request) -> web.Response:
    # a strict policy: the page runs only its own inline script and talks only to this node
    csp = (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'"
    )
    return web.Response(
        body=_page(),
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": csp, "X-Frame-Options": "DENY", "Cache-Control": "no-store"},
    )
