"""What every /api/v1 handler shares: the Node key, route declarations (once, with what OpenAPI needs), body
parsing and replies.

The one door: a handler reads ``request.app[NODE]`` and calls a Node service (``node.models``,
``node.distribution``, ``node.serving``, ``node.tasks``) or a node-wide query (``node.status()``,
``node.hardware()``, ``node.identity_info()``); it never touches the store or a library itself. Handlers
parse and check the request, call once, and shape the reply."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from silnode.errors import BadRequest, RequestTimeout, SilnodeError
from silnode.names import validate_name
from silnode.node import Node
from silnode.tasks import Task

NODE = web.AppKey("node", Node)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Field:
    type: str  # "string" | "boolean" | "integer" | "array" (of strings)
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


def route(
    method: str,
    path: str,
    summary: str,
    *,
    body: dict[str, Field] | None = None,
    query: dict[str, Field] | None = None,
    responses: dict[int, str] | None = None,
):
    def deco(fn: Handler) -> Handler:
        ROUTES.append(Route(method, path, fn, summary, body, responses or {200: "OK"}, query))
        return fn

    return deco


_PY = {"string": str, "boolean": bool, "integer": int, "array": list}


async def json_object(request: web.Request, *, empty_ok: bool = False) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 saying what is wrong with it. A body that trickles in
    slower than ``daemon.body_timeout`` is a 408 (a slow client must not hold a handler forever)."""
    limit = request.app[NODE].config.daemon.body_timeout
    try:
        async with asyncio.timeout(limit):
            raw = await request.read()
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {limit} s (daemon.body_timeout)") from None
    if empty_ok and not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


async def read_body(request: web.Request, spec: dict[str, Field]) -> dict[str, Any]:
    """Parse and check a JSON object body against ``spec``: unknown and mistyped fields are 400s."""
    data = await json_object(request, empty_ok=True)
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
        if f.type == "array" and (
            len(value) > 64 or not all(isinstance(v, str) and 0 < len(v) <= 2048 and "\x00" not in v for v in value)
        ):
            raise BadRequest(f"field {key!r} must be a list of at most 64 non-empty strings")
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
    if task.state in ("failed", "cancelled") and task.error:
        raise SilnodeError.from_json(task.error)
    return ok({"task": task.to_json()})


def query_ctx(request: web.Request) -> int | None:
    """The optional ``ctx`` query parameter: a positive context size."""
    text = request.query.get("ctx")
    if text is not None and not (text.isdigit() and 0 < int(text) <= 1 << 22):
        raise BadRequest("query parameter 'ctx' must be a positive integer")
    return int(text) if text else None


def check_ctx(value: int | None) -> int | None:
    """A ``ctx`` body field: a positive context size."""
    if value is not None and not 0 < value <= 1 << 22:
        raise BadRequest("field 'ctx' must be a positive integer")
    return value
