"""GET /: the dashboard, one static page (silnode/api/static/dashboard.html) that polls the read-only
/api/v1 endpoints. Served from the package (importlib.resources), so it works from a wheel and offline."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from urllib.parse import urlencode

from aiohttp import web

from silnode.api.base import Field, ok, route
from silnode.api.security import GUARD, LOGIN_PATH, LOGIN_TTL_S, SESSION_COOKIE, SESSION_TTL_S, principal
from silnode.errors import Unauthorized


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


# ------------------------------------------------------------------ the login (one-time links, a cookie)
@route(
    "POST",
    "/api/v1/dashboard/login",
    "A one-time login link for the dashboard (single use, 2 minutes): opening it sets an HttpOnly, "
    "SameSite=Strict cookie that counts as the admin token in that browser",
)
async def login_link(request: web.Request) -> web.Response:
    code = request.app[GUARD].logins.issue()
    url = f"{request.scheme}://{request.host}{LOGIN_PATH}?{urlencode({'code': code})}"
    return ok({"url": url, "expires_in": LOGIN_TTL_S})


@route(
    "GET",
    LOGIN_PATH,
    "Open a one-time login link: sets the session cookie and redirects to the dashboard",
    query={"code": Field("string", required=True, description="the link's one-time code")},
    responses={303: "logged in: to /", 401: "the link was used already, or it expired"},
)
async def login(request: web.Request) -> web.Response:
    sid = request.app[GUARD].logins.redeem(request.query.get("code", ""))
    if sid is None:
        raise Unauthorized(
            "this login link was used already or has expired (each works once, for 2 minutes)",
            hint="run `silnode dashboard login` for a new one",
        )
    resp = web.Response(
        status=303, headers={"Location": "/", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )
    resp.set_cookie(
        SESSION_COOKIE, sid, httponly=True, samesite="Strict", path="/", max_age=SESSION_TTL_S, secure=request.secure
    )
    return resp


@route("GET", "/api/v1/dashboard/session", "Whether this browser is logged in (the dashboard shows its actions)")
async def session(request: web.Request) -> web.Response:
    who = principal(request)
    return ok({"admin": who.scope == "admin", "via": who.kind})


@route("POST", "/api/v1/dashboard/logout", "End this browser's dashboard session (its cookie stops working)")
async def logout(request: web.Request) -> web.Response:
    request.app[GUARD].logins.end(request.cookies.get(SESSION_COOKIE))
    resp = ok({"logged_out": True})
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp
