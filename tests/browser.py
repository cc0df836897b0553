"""Headless Chromium driven over the DevTools protocol (a websocket; aiohttp is all it needs): open a page,
evaluate JavaScript in it, take a screenshot. Debian's `chromium` is required (.ci/run installs it)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import aiohttp


class Browser:
    def __init__(self) -> None:
        exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        if exe is None:  # a failure, not a skip: .ci/run installs it (apt-get install chromium)
            raise RuntimeError("headless Chromium not found: apt-get install chromium")
        self.exe = exe
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Browser:
        self.profile = tempfile.mkdtemp(prefix="silnode-chromium-")
        self.proc = subprocess.Popen(
            [
                self.exe,
                "--headless=new",
                "--no-sandbox",  # tests run as root in containers, where the sandbox cannot start
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = Path(self.profile) / "DevToolsActivePort"
        for _ in range(600):  # Chromium writes its port here once it listens
            if port_file.exists() and port_file.read_text().strip():
                break
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        self.http = aiohttp.ClientSession()
        async with self.http.get(f"http://127.0.0.1:{port}/json/list") as r:
            pages = [t for t in await r.json() if t["type"] == "page"]
        self.ws = await self.http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=64 << 20)
        await self.send("Page.enable")
        await self.send("Runtime.enable")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()
        await self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        msg_id = next(self._ids)
        await self.ws.send_str(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
        while True:
            msg = json.loads((await self.ws.receive()).data)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", {"url": url})

    async def eval(self, expression: str) -> Any:
        r = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    async def wait_for(self, expression: str, what: str, timeout: float = 60.0) -> Any:
        """Poll a JavaScript expression until it is truthy; a hang guard naming `what`, not a speed limit."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                value = await self.eval(expression)
            except RuntimeError:
                value = None  # the page is still loading
            if value:
                return value
            if loop.time() > deadline:
                try:
                    page = await self.eval("location.href + '\\n' + document.body.innerText")
                except RuntimeError as exc:
                    page = str(exc)
                raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}; the page:\n{page}")
            await asyncio.sleep(0.1)

    async def screenshot(self, path: Path) -> None:
        data = (await self.send("Page.captureScreenshot", {"format": "png"}))["data"]
        path.write_bytes(base64.b64decode(data))
