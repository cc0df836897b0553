"""/api/v1 handlers: parse -> node call -> JSON. Each route is declared once with what OpenAPI needs."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

from silnode.errors import BadRequest, SilnodeError
from silnode.names import validate_name
from silnode.node import Node, Task

NODE = web.AppKey("node", Node)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Field:
    type: str  # "string" | "boolean" | "integer"
    required: bool = False
    description: str = ""
    enum: tuple[str, ...] | None = None


@dataclass
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    body: dict[str, Field] | None = None
    responses: dict[int, str] = field(default_factory=dict)
    query: dict[str, Field] | None = None


ROUTES: list[Route] = []


def route(method: str, path: str, summary: str, *, body: dict[str, Field] | None = None,
          query: dict[str, Field] | None = None, responses: dict[int, str] | None = None):
    def deco(fn: Handler) -> Handler:
        ROUTES.append(Route(method, path, fn, summary, body, responses or {200: "OK"}, query))
        return fn

    return deco


_PY = {"string": str, "boolean": bool, "integer": int}


async def read_body(request: web.Request, spec: dict[str, Field]) -> dict[str, Any]:
    """Parse and check a JSON object body against ``spec``: unknown and mistyped fields are 400s."""
    raw = await request.read()
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    unknown = sorted(set(data) - set(spec))
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(map(str, unknown))}; allowed: {', '.join(spec)}")
    for key, f in spec.items():
        if key not in data or data[key] is None:
            if f.required:
                raise BadRequest(f"missing field {key!r}")
            data[key] = None
            continue
        value = data[key]
        ok = isinstance(value, _PY[f.type]) and not (f.type == "integer" and isinstance(value, bool))
        if not ok:
            raise BadRequest(f"field {key!r} must be a {f.type}")
        if f.type == "string" and ("\x00" in value or len(value) > 4096):
            raise BadRequest(f"field {key!r} is too long or contains NUL")
        if f.enum and value not in f.enum:
            raise BadRequest(f"field {key!r} must be one of {', '.join(f.enum)}")
    return data


def ok(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response({"ok": True, **data}, status=status)


def model_name(request: web.Request) -> str:
    return validate_name(f"{request.match_info['org']}/{request.match_info['model']}")


async def task_reply(node: Node, task: Task, wait: bool | None) -> web.Response:
    """202 with the task for callers that poll; with wait=true, the finished result or its error."""
    if not wait:
        return ok({"task": task.to_json()}, status=202)
    await node.tasks.wait(task)
    if task.state == "failed" and task.error:
        raise SilnodeError.from_json(task.error)
    return ok({"task": task.to_json()})


# ---------------------------------------------------------------------- node


@route("GET", "/api/v1/health", "Liveness: version and pid")
async def health(request: web.Request) -> web.Response:
    return ok(request.app[NODE].health())


@route("GET", "/api/v1/status", "Node status: uptime, version, store size, services, running tasks")
async def status(request: web.Request) -> web.Response:
    return ok(await request.app[NODE].status())


@route("POST", "/api/v1/admin/shutdown", "Stop the daemon cleanly", responses={202: "stopping"})
async def shutdown(request: web.Request) -> web.Response:
    node = request.app[NODE]
    asyncio.get_running_loop().call_later(0.05, node.request_shutdown)  # after this reply is sent
    return ok({"stopping": True}, status=202)


# ---------------------------------------------------------------------- models


@route("GET", "/api/v1/models", "Models in the store (summaries)")
async def models(request: web.Request) -> web.Response:
    return ok({"models": await request.app[NODE].models()})


@route("GET", "/api/v1/models/{org}/{model}", "One model's manifest", responses={200: "OK", 404: "not found"})
async def model(request: web.Request) -> web.Response:
    return ok({"model": await request.app[NODE].model(model_name(request))})


@route("DELETE", "/api/v1/models/{org}/{model}", "Remove a model from the store", responses={200: "OK", 404: "not found"})
async def delete_model(request: web.Request) -> web.Response:
    return ok(await request.app[NODE].remove(model_name(request)))


IMPORT_BODY = {
    "path": Field("string", description="a GGUF file on the daemon's machine (part 1 of a split GGUF brings the rest)"),
    "name": Field("string", description="store name org/model (required with path)"),
    "license": Field("string", description="SPDX id or license name recorded in the manifest"),
    "link": Field("boolean", description="hardlink when on the same filesystem (default true), else copy"),
    "file_name": Field("string", description="file name inside the store (default: the source's name)"),
    "from": Field("string", description="import models already on disk instead of a path", enum=("hf", "ollama")),
    "pattern": Field("string", description="with from: glob or substring to select models"),
    "wait": Field("boolean", description="answer when done (200) instead of at once (202 + task)"),
}


@route("POST", "/api/v1/models/import", "Import a GGUF file, or models from the HF cache / Ollama",
       body=IMPORT_BODY, responses={200: "done (wait=true)", 202: "task started", 400: "bad input", 409: "exists"})
async def import_model(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body = await read_body(request, IMPORT_BODY)
    if body["from"]:
        if body["path"] or body["name"]:
            raise BadRequest("give either path (+ name) or from, not both")
        task = node.import_found(body["from"], body["pattern"])
    else:
        if not body["path"] or not body["name"]:
            raise BadRequest("path and name are required (or from=hf|ollama)")
        task = node.import_path(
            body["path"], body["name"], license=body["license"],
            link=body["link"] is not False, file_name=body["file_name"],
        )
    return await task_reply(node, task, body["wait"])


VERIFY_BODY = {
    "name": Field("string", description="one model (default: all)"),
    "wait": Field("boolean", description="answer when done"),
}


@route("POST", "/api/v1/verify", "Re-hash models against their manifests; quarantine damaged files",
       body=VERIFY_BODY, responses={200: "done (wait=true)", 202: "task started", 404: "no such model"})
async def verify(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body = await read_body(request, VERIFY_BODY)
    name = validate_name(body["name"]) if body["name"] is not None else None
    return await task_reply(node, node.verify(name), body["wait"])


@route("POST", "/api/v1/gc", "Delete orphaned partials and quarantined files")
async def gc(request: web.Request) -> web.Response:
    await read_body(request, {})
    return ok(await request.app[NODE].gc())


@route("GET", "/api/v1/tasks/{task_id}", "Progress and result of a long operation", responses={200: "OK", 404: "no such task"})
async def task(request: web.Request) -> web.Response:
    return ok({"task": request.app[NODE].tasks.get(request.match_info["task_id"]).to_json()})
