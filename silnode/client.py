"""Typed REST client for the daemon, used by the CLI (and usable from scripts).

It finds the daemon through ``SILNODE_HOME/daemon.json`` (or ``--api-url`` / ``SILNODE_API_URL``), sends the
token from ``api.token``, and turns every error envelope back into the same :mod:`silnode.errors` class the
daemon raised. Standard library only, so the CLI starts fast.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from silnode.config import Config
from silnode.errors import DaemonError, DaemonNotRunning, SilnodeError
from silnode.home import read_daemon_file
from silnode.names import validate_name


class Client:
    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "") or not parts.hostname:
            raise SilnodeError(f"unsupported API URL {base_url!r}: expected http://host:port")
        self.base_url = base_url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_config(cls, config: Config, api_url: str | None = None, **kw: Any) -> Client:

        token = None
        try:
            token = config.token_file.read_text().strip() or None
        except OSError:
            pass
        url = api_url or os.environ.get("SILNODE_API_URL")
        if not url:
            info = read_daemon_file(config)
            if info is None:
                raise DaemonNotRunning(f"daemon not running (no {config.daemon_file})")
            url = info.url
        return cls(url, token, **kw)

    # ------------------------------------------------------------------ transport
    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        if query:
            path = f"{path}?{urlencode({k: v for k, v in query.items() if v is not None})}"
        headers = {
            "Accept": "application/json",
            "Host": f"{self.host}:{self.port}" if ":" not in self.host else f"[{self.host}]:{self.port}",
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (ConnectionRefusedError, ConnectionResetError, OSError) as exc:
            raise DaemonNotRunning(f"daemon not running at {self.base_url} ({exc.__class__.__name__})") from exc
        finally:
            conn.close()
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            raise DaemonError(f"{method} {path}: HTTP {resp.status}, not a JSON reply") from None
        if resp.status >= 400 or (isinstance(payload, dict) and payload.get("ok") is False):
            if isinstance(payload, dict) and "code" in payload:
                raise SilnodeError.from_json(payload, resp.status)
            raise DaemonError(f"{method} {path}: HTTP {resp.status}")
        if not isinstance(payload, dict):
            raise DaemonError(f"{method} {path}: expected a JSON object")
        return payload

    # ------------------------------------------------------------------ node
    def health(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/health")

    def status(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/status")

    def shutdown(self) -> dict[str, Any]:
        return self.request("POST", "/api/v1/admin/shutdown")

    def hardware(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/hardware")["hardware"]

    def recommend(
        self, n_ctx: int | None = None, *, catalog: bool = True, min_tps: float | None = None
    ) -> dict[str, Any]:
        pairs = (("ctx", n_ctx), ("catalog", None if catalog else "false"), ("min_tps", min_tps))
        query = {k: v for k, v in pairs if v is not None}
        return self.request("GET", "/api/v1/recommend" + (f"?{urlencode(query)}" if query else ""))["recommend"]

    # ------------------------------------------------------------------ serving
    def serving(self) -> list[dict[str, Any]]:
        return self.request("GET", "/api/v1/serving")["models"]

    def load(
        self, name: str, *, n_ctx: int | None = None, force: bool = False, embeddings: bool = False
    ) -> dict[str, Any]:
        """Returns when the model is ready (a big model on a slow disk takes minutes: no 60 s timeout)."""
        body = {"name": name, "ctx": n_ctx, "force": force or None, "embeddings": embeddings or None}
        return self.request("POST", "/api/v1/serving/load", body, timeout=3600)["model"]

    def unload(self, name: str) -> dict[str, Any]:
        return self.request("POST", "/api/v1/serving/unload", {"name": name})

    def import_starter(self) -> dict[str, Any]:
        return self.request("POST", "/api/v1/models/starter", {})["task"]

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST an OpenAI request with stream=true and yield its SSE chunks (parsed) until [DONE]."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=3600)
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "Host": f"{self.host}:{self.port}",
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request("POST", path, body=json.dumps({**body, "stream": True}).encode(), headers=headers)
            resp = conn.getresponse()
            if resp.status >= 400:
                err = json.loads(resp.read() or b"{}").get("error") or {}
                raise SilnodeError(err.get("message") or f"HTTP {resp.status}")
            for line in resp:
                line = line.strip()
                if not line.startswith(b"data: "):
                    continue
                if line == b"data: [DONE]":
                    return
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    raise SilnodeError(chunk["error"].get("message", "generation failed"))
                yield chunk
        except (ConnectionRefusedError, ConnectionResetError) as exc:
            raise DaemonNotRunning(f"daemon not running at {self.base_url} ({exc.__class__.__name__})") from exc
        finally:
            conn.close()

    def identity(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/identity")["identity"]

    def openapi(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/openapi.json")

    # ------------------------------------------------------------------ models
    def models(self) -> list[dict[str, Any]]:
        return self.request("GET", "/api/v1/models")["models"]

    def model(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/models/{_name_path(name)}")["model"]

    def remove(self, name: str) -> dict[str, Any]:
        return self.request("DELETE", f"/api/v1/models/{_name_path(name)}")

    def import_path(
        self, path: str, name: str, *, license: str | None = None, link: bool = True, file_name: str | None = None
    ) -> dict[str, Any]:
        body = {"path": path, "name": name, "license": license, "link": link, "file_name": file_name}
        return self.request("POST", "/api/v1/models/import", body)["task"]

    def import_from(self, source: str, pattern: str | None = None) -> dict[str, Any]:
        return self.request("POST", "/api/v1/models/import", {"from": source, "pattern": pattern})["task"]

    def verify(self, name: str | None = None) -> dict[str, Any]:
        return self.request("POST", "/api/v1/verify", {"name": name})["task"]

    def gc(self) -> dict[str, Any]:
        return self.request("POST", "/api/v1/gc", {})

    # ------------------------------------------------------------------ BitTorrent
    def share(
        self,
        name: str | None,
        *,
        path: str | None = None,
        source: str | None = None,
        license: str | None = None,
        web_seeds: list[str] | None = None,
        v1_compat: bool = False,
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "path": path,
            "source": source,
            "license": license,
            "web_seeds": web_seeds,
            "v1_compat": v1_compat,
            "wait": False,
        }
        return self.request("POST", "/api/v1/models/share", body)["task"]

    def download(
        self,
        target: str,
        *,
        peers: list[str] | None = None,
        name: str | None = None,
        license: str | None = None,
        web_seeds: list[str] | None = None,
        force: bool = False,
        n_ctx: int | None = None,
    ) -> dict[str, Any]:
        """A magnet or infohash: the transfer."""
        return self.get(target, peers=peers, name=name, license=license, web_seeds=web_seeds, force=force, n_ctx=n_ctx)[
            "transfer"
        ]

    def get(
        self,
        target: str | None,
        *,
        auto: bool = False,
        force: bool = False,
        n_ctx: int | None = None,
        peers: list[str] | None = None,
        name: str | None = None,
        license: str | None = None,
        web_seeds: list[str] | None = None,
    ) -> dict[str, Any]:
        """{"transfer"} | {"task", "model"} | {"model", "on_disk": True}: see POST /api/v1/models/download."""
        body = {
            "target": target,
            "auto": auto or None,
            "force": force or None,
            "ctx": n_ctx,
            "peers": peers,
            "name": name,
            "license": license,
            "web_seeds": web_seeds,
        }
        return self.request("POST", "/api/v1/models/download", body)

    def transfers(self) -> list[dict[str, Any]]:
        return self.request("GET", "/api/v1/transfers")["transfers"]

    def transfer(self, tid: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/transfers/{quote(tid, safe='')}")["transfer"]

    def transfer_action(self, tid: str, action: str) -> dict[str, Any]:
        return self.request("POST", f"/api/v1/transfers/{quote(tid, safe='')}/{action}")["transfer"]

    def seeding(self, name: str, enabled: bool) -> dict[str, Any]:
        return self.request("POST", f"/api/v1/models/{_name_path(name)}/seeding", {"enabled": enabled})

    def recheck(self, name: str) -> dict[str, Any]:
        return self.request("POST", f"/api/v1/models/{_name_path(name)}/recheck", {})

    def task(self, task_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/tasks/{quote(task_id, safe='')}")["task"]

    def cancel_task(self, task_id: str) -> dict[str, Any]:
        return self.request("POST", f"/api/v1/tasks/{quote(task_id, safe='')}/cancel", {})["task"]

    def follow(self, task: dict[str, Any], interval: float = 0.2) -> Iterator[dict[str, Any]]:
        """Yield the task's state until it ends."""
        while True:
            yield task
            if task["state"] != "running":
                return
            time.sleep(interval)
            task = self.task(task["id"])

    def wait(self, task: dict[str, Any], on_progress: Callable[[dict[str, Any]], None] | None = None) -> Any:
        """Poll until the task ends; return its result or raise its error."""
        last = task
        for last in self.follow(task):
            if on_progress:
                on_progress(last)
        if last["state"] in ("failed", "cancelled"):
            raise SilnodeError.from_json(last["error"] or {"error": "task failed"})
        return last["result"]

    # ------------------------------------------------------------------ selling on Nostr (DVM)
    def jobs(self, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        query = {k: v for k, v in (("limit", str(limit)), ("status", status)) if v is not None}
        return self.request("GET", f"/api/v1/jobs?{urlencode(query)}")["jobs"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/jobs/{quote(job_id, safe='')}")["job"]

    def dvm(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/dvm")["dvm"]

    def set_selling(self, sell: bool) -> dict[str, Any]:
        return self.request("POST", "/api/v1/dvm/sell", {"sell": sell})["dvm"]


def _name_path(name: str) -> str:
    org, sep, model = name.partition("/")
    if not sep:
        validate_name(name)  # raises InvalidName with the usual message
    return f"{quote(org, safe='')}/{quote(model, safe='')}"
