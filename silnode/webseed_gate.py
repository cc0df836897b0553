"""The web-seed gate: libtorrent fetches web seeds that came from elsewhere through this, never directly.

libtorrent resolves, connects and follows redirects for a web seed on its own, so a ``ws=`` URL in a magnet
from a stranger could make it request ``http://127.0.0.1:8737/...`` or a LAN host. Instead, such a URL is
handed to libtorrent as a URL of this gate (a small HTTP server on 127.0.0.1, port chosen by the kernel):

    route("http://cdn.example/m.gguf", trusted=False)  ->  "http://127.0.0.1:<port>/ws/<id>"
    route("http://cdn.example/dir/", trusted=False)     ->  "http://127.0.0.1:<port>/ws/<id>/"  (+ <name>/<file>)

and the gate makes the real request with the checks of :mod:`silnode.netpolicy`: http(s) only, every address
the host resolves to checked at every new connection (a resolver that refuses, so DNS rebinding between check
and connect does not help), redirects followed here (at most ``MAX_REDIRECTS``) and each hop checked the same
way, a time limit on connecting and on every read (``network.web_seed_timeout``), and at most
``MAX_RESPONSE_BYTES`` per response (libtorrent asks for at most 16 MiB at a time). A refused origin gets
libtorrent a 403 and a warning in the log, and nothing is sent to it.

URLs the user typed (``--web-seed``, ``share --web-seed``) are trusted: route() returns them unchanged.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector, web

from silnode.errors import AddressRefused, BadRequest
from silnode.netpolicy import Policy, check_hop, checking_resolver, redirect_target

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
MAX_RESPONSE_BYTES = 64 << 20
PASS_REQUEST = ("Range", "If-Range", "User-Agent")
PASS_RESPONSE = ("Content-Type", "Content-Range", "Accept-Ranges", "Content-Length", "ETag", "Last-Modified")


@dataclass
class GateStats:
    forwarded: int = 0  # requests that reached an origin
    refused: int = 0  # requests refused by the address policy (nothing sent to the origin)
    failed: int = 0  # origin errors and timeouts
    refusals: list[str] = field(default_factory=list)  # the last few reasons, for status and tests


class WebSeedGate:
    name = "webseed-gate"

    def __init__(self, policy: Policy, *, timeout: float = 30.0) -> None:
        self.policy = policy
        self.timeout = timeout
        self.stats = GateStats()
        self._origins: dict[str, str] = {}  # id -> origin URL
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/ws/{id}{rest:.*}", self._handle)
        app.router.add_route("HEAD", "/ws/{id}{rest:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, keepalive_timeout=self.timeout)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        # use_dns_cache off: every new connection resolves, and so is checked, again
        connector = TCPConnector(resolver=checking_resolver(self.policy), use_dns_cache=False, limit=32)
        self._session = ClientSession(
            connector=connector,
            timeout=ClientTimeout(total=None, connect=self.timeout, sock_read=self.timeout),
            auto_decompress=False,
        )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ the one call site's API
    def route(self, url: str, *, trusted: bool) -> str:
        """The URL to give libtorrent for a web seed: ``url`` itself when the user typed it, else this gate's
        URL for it. Raises BadRequest for a URL that is not http(s) (nothing to route)."""
        if trusted:
            return url
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")) or len(url) > 4096:
            raise BadRequest(f"a web seed must be an http(s) URL, got {str(url)[:80]!r}")
        if self.port == 0:
            raise BadRequest("the web-seed gate is not running")
        gid = hashlib.sha256(url.encode()).hexdigest()[:24]
        self._origins[gid] = url
        return f"http://127.0.0.1:{self.port}/ws/{gid}" + ("/" if url.endswith("/") else "")

    def origin_of(self, routed: str) -> str:
        """The origin URL behind a routed URL (itself when it was not routed)."""
        prefix = f"http://127.0.0.1:{self.port}/ws/"
        if routed.startswith(prefix):
            return self._origins.get(routed[len(prefix) :].split("/", 1)[0], routed)
        return routed

    # ------------------------------------------------------------------ serving libtorrent
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        origin = self._origins.get(request.match_info["id"])
        if origin is None:
            return web.Response(status=404, text="unknown web seed")
        rest = request.raw_path.split("?", 1)[0][len("/ws/") + len(request.match_info["id"]) :]
        if origin.endswith("/"):
            if not rest.startswith("/"):
                return web.Response(status=404, text="a directory web seed needs a file path")
            target = origin + rest[1:]
        elif rest:
            return web.Response(status=404, text="a file web seed has no sub-paths")
        else:
            target = origin
        headers = {k: request.headers[k] for k in PASS_REQUEST if k in request.headers}
        try:
            return await self._forward(request, target, headers)
        except AddressRefused as exc:
            self.stats.refused += 1
            self.stats.refusals = [*self.stats.refusals[-9:], exc.message]
            log.warning("web seed refused: %s", exc.message)
            return web.Response(status=403, text=exc.message)
        except (ClientError, TimeoutError, OSError) as exc:
            self.stats.failed += 1
            log.info("web seed %s failed: %s", target[:120], exc.__class__.__name__)
            return web.Response(status=502, text=f"origin failed: {exc.__class__.__name__}")

    async def _forward(self, request: web.Request, target: str, headers: dict[str, str]) -> web.StreamResponse:
        assert self._session is not None
        url = target
        for _hop in range(MAX_REDIRECTS + 1):
            check_hop(self.policy, url)
            async with self._session.request(request.method, url, headers=headers, allow_redirects=False) as up:
                if up.status in (301, 302, 303, 307, 308):
                    url = redirect_target(url, up.headers.get("Location"))
                    continue
                self.stats.forwarded += 1
                return await self._relay(request, up)
        raise AddressRefused(f"{target[:120]} redirects more than {MAX_REDIRECTS} times")

    async def _relay(self, request: web.Request, up: Any) -> web.StreamResponse:
        length = up.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > MAX_RESPONSE_BYTES:
            self.stats.failed += 1
            return web.Response(status=502, text=f"origin response over {MAX_RESPONSE_BYTES} bytes")
        resp = web.StreamResponse(
            status=up.status, headers={k: up.headers[k] for k in PASS_RESPONSE if k in up.headers}
        )
        await resp.prepare(request)
        if request.method == "HEAD":
            return resp
        sent = 0
        async for chunk in up.content.iter_chunked(64 << 10):
            sent += len(chunk)
            if sent > MAX_RESPONSE_BYTES:  # an origin that lies about its length is cut off
                self.stats.failed += 1
                break
            await resp.write(chunk)
        await resp.write_eof()
        return resp
