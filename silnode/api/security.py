"""Who may call what: the ONE auth table, Host/Origin checks, bearer tokens, the ecash hook.

Every request passes :meth:`Guard.check` (a middleware) before any handler runs; no handler checks
credentials itself. The table (also in the README, "API access"):

    route class                      loopback bind                 any other bind
    -------------------------------  ----------------------------  -----------------------------------
    open     GET /api/v1/health      anyone                        anyone
    infer    /v1/* (OpenAI)          anyone                        inference or admin token, or ecash
    read     other GETs, /metrics    anyone                        admin token
    admin    POST/PUT/PATCH/DELETE   admin token                   admin token
             /api/v1/tokens*, and a
             path argument (inspect?model=/a/file.gguf)
    open     GET /login?code=…       anyone (the code is the       anyone (the code is the credential)
                                     credential)

Credentials also include the dashboard's login cookie (``silnode_session``: HttpOnly, SameSite=Strict), set
by a one-time login link (``silnode dashboard login``: single use, 2 minutes). It counts as the admin token,
for the browser that opened the link; a mutating call it authenticates must carry our own Origin (CSRF:
SameSite=Strict keeps the cookie off cross-site requests, the Origin check covers the rest).

Credentials: the admin token (``api.token``, or a token made with ``--scope admin``), an inference token
(``silnode tokens create --scope inference``: /v1 only), an ecash payment for one /v1 request (header
``X-Cashu``, checked by the verifier the payments service registers with :func:`set_payment_verifier`; it
counts as inference scope for that request), or none.

A valid token with too narrow a scope gets 403 naming what it may do; a missing or unknown credential where one
is needed gets 401. A bearer that matches no token is ignored where no credential is needed (OpenAI
clients send a made-up key to local servers), and then counts as no credential for fairness too, so
rotating made-up keys buys no extra turns.

Always: the Host header must name this node (unless the bind is a wildcard) against DNS rebinding, a browser
Origin other than our own is refused, and no CORS headers are ever sent.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from silnode.config import Config
from silnode.errors import Forbidden, Unauthorized
from silnode.home import TokenStore
from silnode.names import is_valid_name
from silnode.serving.queue import KEY_SEP

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
WILDCARD_BINDS = {"0.0.0.0", "::", ""}
PAYMENT_HEADER = "X-Cashu"

# route classes, and the scope each needs: (on a loopback bind, on any other bind)
OPEN, INFER, READ, ADMIN = "open", "infer", "read", "admin"
NEEDS: dict[str, tuple[str | None, str | None]] = {
    OPEN: (None, None),
    INFER: (None, "inference"),
    READ: (None, "admin"),
    ADMIN: ("admin", "admin"),
}
# GET routes whose query names something on disk: a store name is a read, anything else a path (admin)
PATH_QUERIES = {"/api/v1/inspect": "model"}
# the dashboard's login: a one-time link opens a session kept in a cookie (in memory: a restart logs out)
SESSION_COOKIE = "silnode_session"
LOGIN_PATH = "/login"
LOGIN_TTL_S = 120  # a login link works once, within 2 minutes
SESSION_TTL_S = 12 * 3600


@dataclass(frozen=True)
class Principal:
    """Who a request is, once the guard let it in."""

    kind: str  # "admin" | "token" | "session" (the dashboard's login cookie) | "paid" | "anonymous"
    scope: str | None  # "admin" | "inference" | None
    key: str  # for fairness and logs: "admin", "token:<id>", "paid:<ref>", "" (anonymous); never a secret
    name: str = ""


ANONYMOUS = Principal("anonymous", None, "")
GUARD = web.AppKey("guard", object)  # app[GUARD]: the Guard (the dashboard's login routes use its Logins)
PRINCIPAL = web.RequestKey("principal", Principal)  # request[PRINCIPAL], set by the guard
PaymentVerifier = Callable[[web.Request], Awaitable[str | None]]
PAYMENT_VERIFIER = web.AppKey("payment_verifier", object)
CASHU_PREFIXES = ("cashuA", "cashuB")  # a cashu token (NUT-00); a real API token matched first still wins
PAID_KEY_PREFIXES = (*CASHU_PREFIXES, "sbal_")  # ... or the key of a balance the node keeps (payments/http.py)


def set_payment_verifier(app: web.Application, verifier: PaymentVerifier) -> None:
    """The payments service's hook: ``await verifier(request)`` for a /v1 request carrying X-Cashu returns a
    reference for the payment (accepted: the request runs with inference scope) or None (not enough); it may
    raise its own error (402, ...) with a clearer message."""
    app[PAYMENT_VERIFIER] = verifier


def principal(request: web.Request) -> Principal:
    return request.get(PRINCIPAL, ANONYMOUS)


def route_class(request: web.Request) -> str:
    """Which row of the table a request falls in."""
    path, method = request.path, request.method
    if path.startswith("/v1/") or path == "/v1":
        return INFER
    if path in ("/api/v1/health", LOGIN_PATH) and method in ("GET", "HEAD"):
        return OPEN
    if method in MUTATING or path == "/api/v1/tokens" or path.startswith("/api/v1/tokens/"):
        return ADMIN
    query = PATH_QUERIES.get(path)
    if query is not None:
        value = request.query.get(query)
        if value is not None and not is_valid_name(value):
            return ADMIN
    return READ


def _host_only(value: str) -> str:
    """'127.0.0.1:8737' -> '127.0.0.1', '[::1]:8737' -> '::1'."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Logins:
    """One-time login links and the sessions they open. Only SHA-256 digests are kept; all in memory."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._codes: dict[str, float] = {}  # digest -> expiry
        self._sessions: dict[str, float] = {}

    def _prune(self) -> None:
        now = self.clock()
        for table in (self._codes, self._sessions):
            for k in [k for k, exp in table.items() if exp < now]:
                del table[k]

    def issue(self) -> str:
        """A new login code (the secret part of the link)."""
        self._prune()
        code = secrets.token_urlsafe(32)
        self._codes[_digest(code)] = self.clock() + LOGIN_TTL_S
        return code

    def redeem(self, code: str) -> str | None:
        """A session id for a live code, once; None for an unknown, used or expired one."""
        expiry = self._codes.pop(_digest(code), None)  # single use: gone whatever happens next
        if expiry is None or expiry < self.clock():
            return None
        sid = secrets.token_urlsafe(32)
        self._sessions[_digest(sid)] = self.clock() + SESSION_TTL_S
        return sid

    def valid(self, sid: str | None) -> bool:
        if not sid:
            return False
        expiry = self._sessions.get(_digest(sid))
        return expiry is not None and expiry >= self.clock()

    def end(self, sid: str | None) -> None:
        if sid:
            self._sessions.pop(_digest(sid), None)


class Guard:
    def __init__(self, config: Config, admin_token: str, tokens: TokenStore | None = None) -> None:
        self.logins = Logins()
        self.admin_token = admin_token
        self.tokens = tokens or TokenStore.for_config(config)
        self.loopback = config.loopback_bind
        bind = config.daemon.bind_address.strip("[]").lower()
        self.any_host = bind in WILDCARD_BINDS
        self.hosts = {"localhost", "127.0.0.1", "::1", bind} | {_host_only(h) for h in config.daemon.allowed_hosts}

    # ------------------------------------------------------------------ the browser checks
    def check_host_origin(self, request: web.Request) -> None:
        host = _host_only(request.headers.get("Host", ""))
        if not self.any_host and host not in self.hosts:
            raise Forbidden(
                f"Host header {request.headers.get('Host', '')[:100]!r} is not this node",
                hint="add the name to daemon.allowed_hosts if you reach the node through it",
            )
        origin = request.headers.get("Origin")
        if origin is not None:
            o = urlsplit(origin)
            if origin == "null" or _host_only(o.netloc) not in (self.hosts | ({host} if self.any_host else set())):
                raise Forbidden("cross-origin requests are not allowed")
        if request.headers.get("Sec-Fetch-Site") == "cross-site":
            raise Forbidden("cross-site requests are not allowed")

    # ------------------------------------------------------------------ credentials
    def identify(self, request: web.Request) -> tuple[Principal, bool]:
        """(who the bearer token says the caller is, whether a bearer was given at all)."""
        auth = request.headers.get("Authorization")
        if auth is None:
            if self.logins.valid(request.cookies.get(SESSION_COOKIE)):
                return Principal("session", "admin", "session", "dashboard login"), False
            return ANONYMOUS, False
        scheme, _, given = auth.partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            return ANONYMOUS, True
        if hmac.compare_digest(given.encode(), self.admin_token.encode()):
            return Principal("admin", "admin", "admin", "api.token"), True
        tok = self.tokens.match(given)
        if tok is None:
            return ANONYMOUS, True
        return Principal("token", tok.scope, f"token:{tok.id}", tok.name), True

    async def authorize(self, request: web.Request) -> Principal:
        self.check_host_origin(request)
        cls = route_class(request)
        need = NEEDS[cls][0 if self.loopback else 1]
        who, gave_bearer = self.identify(request)
        if who.kind == "session" and request.method in MUTATING and "Origin" not in request.headers:
            # a browser sends Origin on every POST; one without it is not our page (check_host_origin vetted it)
            raise Forbidden("a dashboard action must come from the dashboard (no Origin header)")
        if need is None or who.scope == "admin" or who.scope == need:
            return who
        if who.scope is not None:  # a real token, too narrow
            raise Forbidden(
                f"the token {who.name!r} has {who.scope} scope: it may call /v1 (inference) only; "
                f"{request.method} {request.path} needs the admin token",
                hint="use the admin token (SILNODE_HOME/api.token) or `silnode tokens create --scope admin`",
            )
        # ecash in X-Cashu, or as the API key (an OpenAI client has nowhere else to put it)
        cashu_key = request.headers.get("Authorization", "").partition(" ")[2].strip().startswith(PAID_KEY_PREFIXES)
        if cls == INFER and ((not gave_bearer and PAYMENT_HEADER in request.headers) or cashu_key):
            paid = await self._paid(request)
            if paid is not None:
                return paid
        if gave_bearer:
            raise Unauthorized("wrong API token (no such token, or it was revoked)")
        what = "an inference or admin token" if need == "inference" else "the admin token"
        raise Unauthorized(f"{request.method} {request.path} needs {what}")

    async def _paid(self, request: web.Request) -> Principal | None:
        verifier: Any = request.app.get(PAYMENT_VERIFIER)
        if verifier is None:
            raise Unauthorized(
                "this node takes no ecash payments for /v1", hint="ask the node's owner for an inference token"
            )
        ref = await verifier(request)
        if not ref:
            return None
        return Principal("paid", "inference", f"paid:{str(ref)[:64]}")


def guard_middleware(guard: Guard) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        request[PRINCIPAL] = await guard.authorize(request)
        return await handler(request)

    return middleware


# ------------------------------------------------------------------ fairness keys


def client_key(request: web.Request, body: dict[str, Any]) -> str:
    """Who is asking, for the fair queue. A token (or a payment) is the key when there is one; else the peer
    address, refined by the OpenAI ``user`` field. The queue bounds how many distinct finer keys one source
    may hold at once, so rotating ``user`` buys at most that many turns."""
    who = principal(request)
    if who.key:
        return who.key
    source = f"addr:{request.remote}"
    user = body.get("user")
    if isinstance(user, str) and user:
        return f"{source}{KEY_SEP}user:{user[:200]}"
    return source
