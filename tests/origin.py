"""A local HTTP origin for one file (a BEP 19 web seed in tests and benches), optionally rate-capped."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiohttp import web


class Origin:
    """``async with Origin(path, cap=bytes_per_s) as o: o.url``. Without a cap the file is served by aiohttp's
    static handler (sendfile: the fair HTTP anchor); with one, Range requests are answered at that rate, so
    peers have time to contribute next to it. ``served_bytes`` counts what the capped origin sent."""

    def __init__(self, path: Path, cap: int = 0, *, chunk: int = 64 * 1024) -> None:
        self.path, self.cap, self.chunk = Path(path), cap, chunk
        self.url = ""
        self.served_bytes = 0

    async def __aenter__(self) -> Origin:
        app = web.Application()
        if self.cap:
            app.router.add_get(f"/{self.path.name}", self._paced)
        else:
            app.router.add_static("/", self.path.parent)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/{self.path.name}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()

    async def _paced(self, request: web.Request) -> web.StreamResponse:
        size = self.path.stat().st_size
        rng = request.http_range
        start, stop = rng.start or 0, min(rng.stop or size, size)
        resp = web.StreamResponse(
            status=206 if request.headers.get("Range") else 200,
            headers={
                "Content-Range": f"bytes {start}-{stop - 1}/{size}",
                "Accept-Ranges": "bytes",
                "Content-Length": str(stop - start),
            },
        )
        await resp.prepare(request)
        t0 = time.perf_counter()
        sent = 0
        with open(self.path, "rb") as fh:
            fh.seek(start)
            while sent < stop - start:
                chunk = fh.read(min(stop - start - sent, self.chunk))
                await resp.write(chunk)
                sent += len(chunk)
                self.served_bytes += len(chunk)
                ahead = sent / self.cap - (time.perf_counter() - t0)  # pace against the clock, not per chunk
                if ahead > 0:
                    await asyncio.sleep(ahead)
        return resp
