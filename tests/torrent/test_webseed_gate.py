"""Web seeds that came from elsewhere go through the gate, with a real libtorrent session and real HTTP
origins that count what they are asked: a ws= URL at 127.0.0.1 (also as localhost, 127.1, or behind a
redirect) never gets a request, the same URL typed by the user does, and an allowed origin delivers."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from aiohttp import web
from torrent_helpers import file_record, poll, random_file, same_bytes

from silnode.netpolicy import Policy, classify
from silnode.torrent import create
from silnode.torrent.events import TorrentFinished
from silnode.webseed_gate import WebSeedGate

WAIT = 60  # seconds; a guard against hangs, not a speed limit


def lan_address() -> str:
    """This machine's address on its LAN (the kernel's choice of source address; nothing is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 9))
        ip = s.getsockname()[0]
    assert classify(ip) == "private", f"these tests need a private, non-loopback address; got {ip}"
    return ip


class CountingServer:
    """Serves a folder (Range requests included) or answers every request with one redirect; counts them."""

    def __init__(self, host: str, folder: Path | None = None, redirect_to: str | None = None) -> None:
        self.host, self.folder, self.redirect_to = host, folder, redirect_to
        self.requests = 0

    async def __aenter__(self) -> CountingServer:
        @web.middleware
        async def count(request, handler):
            self.requests += 1
            if self.redirect_to:
                raise web.HTTPFound(self.redirect_to)
            return await handler(request)

        app = web.Application(middlewares=[count])
        if self.folder is not None:
            app.router.add_static("/files", self.folder)
        else:
            app.router.add_get("/{tail:.*}", lambda r: web.Response(text="never"))
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    def url(self, host: str | None = None, name: str = "web.gguf") -> str:
        return f"http://{host or self.host}:{self.port}/files/{name}"

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


async def _gate(lan_only: bool) -> WebSeedGate:
    gate = WebSeedGate(Policy(lan_only=lan_only), timeout=10)
    await gate.start()
    return gate


async def test_ws_urls_at_this_machine_are_never_requested_but_typed_ones_are(make_session, model_dir, tmp_path):
    src = random_file(model_dir / "web.gguf", 3 << 20, seed=21)
    torrent = create.make_torrent(model_dir, [file_record(src)])
    gate = await _gate(lan_only=True)  # even with the LAN allowed, this machine itself is not
    try:
        async with (
            CountingServer("127.0.0.1", model_dir) as origin,
            CountingServer(lan_address(), redirect_to="") as redirector,
        ):
            redirector.redirect_to = origin.url()
            leecher = await make_session()
            lid = await leecher.add_download(torrent, tmp_path / "w")
            from_elsewhere = [
                origin.url(),
                origin.url("localhost"),
                origin.url("127.1"),
                redirector.url(),  # allowed itself (LAN), but it redirects to 127.0.0.1
            ]
            for url in from_elsewhere:
                leecher.add_web_seed(lid, gate.route(url, trusted=False))
            await poll(lambda: gate.stats.refused >= len(from_elsewhere), WAIT)
            assert origin.requests == 0, "a web seed from elsewhere reached 127.0.0.1"
            assert redirector.requests >= 1  # the redirect hop was fetched, its target refused
            assert any("127.0.0.1 (loopback)" in r for r in gate.stats.refusals), gate.stats.refusals
            assert leecher.status(lid).progress == 0

            done = leecher.expect(lambda e: isinstance(e, TorrentFinished) and e.id == lid)
            typed = origin.url()
            assert gate.route(typed, trusted=True) == typed  # a URL the user typed goes straight to libtorrent
            leecher.add_web_seed(lid, typed)
            await asyncio.wait_for(done, WAIT)
            assert origin.requests >= 1
            assert same_bytes(src, tmp_path / "w" / "web.gguf")
    finally:
        await gate.stop()


async def test_the_gate_delivers_from_an_allowed_origin_and_refuses_the_lan_by_default(
    make_session, model_dir, tmp_path
):
    src = random_file(model_dir / "web.gguf", 3 << 20, seed=22)
    torrent = create.make_torrent(model_dir, [file_record(src)])
    async with CountingServer(lan_address(), model_dir) as origin:
        strict = await _gate(lan_only=False)
        try:
            leecher = await make_session()
            lid = await leecher.add_download(torrent, tmp_path / "strict")
            leecher.add_web_seed(lid, strict.route(origin.url(), trusted=False))
            await poll(lambda: strict.stats.refused >= 1, WAIT)
            assert origin.requests == 0 and "(private)" in strict.stats.refusals[0]
        finally:
            await strict.stop()

        lan = await _gate(lan_only=True)
        try:
            leecher = await make_session()
            lid = await leecher.add_download(torrent, tmp_path / "lan")
            done = leecher.expect(lambda e: isinstance(e, TorrentFinished) and e.id == lid)
            routed = lan.route(origin.url(), trusted=False)
            assert routed.startswith(f"http://127.0.0.1:{lan.port}/ws/") and lan.origin_of(routed) == origin.url()
            leecher.add_web_seed(lid, routed)
            await asyncio.wait_for(done, WAIT)
            assert same_bytes(src, tmp_path / "lan" / "web.gguf")
            assert origin.requests >= 1 and lan.stats.forwarded == origin.requests and lan.stats.refused == 0
        finally:
            await lan.stop()
