"""A tiny fake Hugging Face Hub (aiohttp on 127.0.0.1, in a thread), so huggingface_hub's real
``hf_hub_download(..., endpoint=hub.url)`` writes a real cache (blobs/, snapshots/ links, refs/) offline."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path

from aiohttp import web
from huggingface_hub import hf_hub_download


def fake_gguf(tag: str, size: int = 64) -> bytes:
    body = f"{tag}:".encode()
    return b"GGUF" + body + b"\0" * max(0, size - len(body))


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------------
# a tiny fake Hub


class FakeHub:
    """Repos -> commits -> files, and branch names -> commits, served like huggingface.co/resolve."""

    def __init__(self) -> None:
        self.commits: dict[tuple[str, str], dict[str, bytes]] = {}  # (repo key, commit) -> files
        self.branches: dict[tuple[str, str], str] = {}  # (repo key, branch) -> commit
        self.url = ""
        self.requests: list[tuple[str, str]] = []
        self.ranges: list[tuple[str, str | None]] = []  # (path, Range header) of every GET
        self.served: dict[str, int] = {}  # path -> body bytes sent
        self.cut_after: dict[str, int] = {}  # path -> drop the connection after this many bytes, once
        self.slow: dict[str, float] = {}  # path -> seconds to wait before each 64 KiB piece of its body (a slow link)
        # file name -> bytes served in its place while the ETag still names the published file's LFS sha256
        # (a damaged CDN copy, a man in the middle)
        self.tamper: dict[str, bytes] = {}
        self.not_lfs: set[str] = set()  # file names stored in git itself: ETag is the git blob SHA-1, no LFS oid
        # called with (method, path) after each request is answered: lets a test move a branch mid-download
        self.after_request = None

    def publish(
        self, repo_id: str, commit: str, files: dict[str, bytes], *, branch: str = "main", repo_type: str = "model"
    ) -> None:
        key = f"{repo_type}:{repo_id}"
        self.commits[(key, commit)] = dict(files)
        if branch:
            self.branches[(key, branch)] = commit

    async def _resolve(self, request: web.Request) -> web.Response:
        repo_type = "dataset" if request.path.startswith("/datasets/") else "model"
        repo_id = f"{request.match_info['org']}/{request.match_info['name']}"
        rev = request.match_info["rev"]
        filename = request.match_info["path"]
        self.requests.append((request.method, request.path))
        key = f"{repo_type}:{repo_id}"
        commit = self.branches.get((key, rev), rev)
        files = self.commits.get((key, commit))
        if files is None:
            return web.Response(status=404, headers={"X-Error-Code": "RevisionNotFound"})
        if filename not in files:
            return web.Response(status=404, headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit})
        data = files[filename]
        lfs = filename.endswith(".gguf") and filename not in self.not_lfs
        etag = sha256(data) if lfs else git_sha1(data)  # the Hub's etag: LFS oid (sha256) or git blob sha1
        data = self.tamper.get(filename, data)
        headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"', "Content-Length": str(len(data))}
        if lfs:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
        if request.method == "HEAD":
            if self.after_request is not None:
                self.after_request(request.method, request.path)
            return web.Response(status=200, headers=headers)
        # GET, with Range as the Hub's CDN answers it (web seeds and resumed downloads ask for ranges)
        self.ranges.append((request.path, request.headers.get("Range")))
        start, stop, status = 0, len(data), 200
        if request.headers.get("Range"):
            rng = request.http_range
            start, stop, status = rng.start or 0, min(rng.stop or len(data), len(data)), 206
            if start >= len(data):
                return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
        headers["Content-Length"] = str(stop - start)
        headers["Accept-Ranges"] = "bytes"
        resp = web.StreamResponse(status=status, headers=headers)
        await resp.prepare(request)
        body = data[start:stop]
        cut = self.cut_after.pop(request.path, None)
        if cut is not None and cut < len(body):
            await resp.write(body[:cut])
            self.served[request.path] = self.served.get(request.path, 0) + cut
            request.transport.close()  # an interrupted download: the connection drops mid-body
            return resp
        if request.path in self.slow:
            for i in range(0, len(body), 1 << 16):
                await asyncio.sleep(self.slow.get(request.path, 0))
                await resp.write(body[i : i + (1 << 16)])
                self.served[request.path] = self.served.get(request.path, 0) + len(body[i : i + (1 << 16)])
            await resp.write_eof()
            return resp
        for i in range(0, len(body), 1 << 20):
            await resp.write(body[i : i + (1 << 20)])
        self.served[request.path] = self.served.get(request.path, 0) + len(body)
        await resp.write_eof()
        return resp

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/datasets/{org}/{name}/resolve/{rev}/{path:.+}", self._resolve)
        app.router.add_route("*", "/{org}/{name}/resolve/{rev}/{path:.+}", self._resolve)
        return app


import contextlib


@contextlib.contextmanager
def serve_hub():
    hub = FakeHub()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(hub.app())
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    hub.url = f"http://127.0.0.1:{port}"
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def download(hub: FakeHub, cache: Path, repo_id: str, filename: str, revision: str = "main", **kw) -> Path:
    """Let huggingface_hub itself fetch a file into the cache; returns the snapshot path."""
    return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache, endpoint=hub.url, **kw))
