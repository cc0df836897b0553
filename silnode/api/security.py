"""Who may call the API: Host/Origin checks against DNS rebinding and CSRF, and the bearer token.

Rules (design.md, Conventions):
- loopback bind: reads are open, mutating /api/v1 calls need the token;
- any other bind: every call needs the token;
- always: the Host header must name this node (or the bind is a wildcard and the token guards everything),
  and a browser Origin other than our own is refused. No CORS headers are ever sent.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from silnode.config import Config
from silnode.errors import Forbidden, Unauthorized

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
WILDCARD_BINDS = {"0.0.0.0", "::", ""}


def _host_only(value: str) -> str:
    """'127.0.0.1:8737' -> '127.0.0.1', '[::1]:8737' -> '::1'."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


class Guard:
    def __init__(self, config: Config, token: str) -> None:
        self.token = token
        self.loopback = config.loopback_bind
        bind = config.daemon.bind_address.strip("[]").lower()
        self.any_host = bind in WILDCARD_BINDS
        self.hosts = {"localhost", "127.0.0.1", "::1", bind} | {_host_only(h) for h in config.daemon.allowed_hosts}

    def check(self, request: web.Request) -> None:
        host = _host_only(request.headers.get("Host", ""))
        if not self.any_host and host not in self.hosts:
            raise Forbidden(
                f"Host header {request.headers.get('Host', '')!r} is not this node",
                hint="add the name to daemon.allowed_hosts if you reach the node through it",
            )
        origin = request.headers.get("Origin")
        if origin is not None:
            o = urlsplit(origin)
            if origin == "null" or _host_only(o.netloc) not in (self.hosts | ({host} if self.any_host else set())):
                raise Forbidden("cross-origin requests are not allowed")
        if request.headers.get("Sec-Fetch-Site") == "cross-site":
            raise Forbidden("cross-site requests are not allowed")
        needs_token = not self.loopback or (request.method in MUTATING and request.path.startswith("/api/"))
        if needs_token:
            auth = request.headers.get("Authorization", "")
            scheme, _, given = auth.partition(" ")
            if scheme.lower() != "bearer" or not given:
                raise Unauthorized("this call needs the API token")
            if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
                raise Unauthorized("wrong API token")


def guard_middleware(guard: Guard) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        guard.check(request)
        return await handler(request)

    return middleware
