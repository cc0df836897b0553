"""The OpenAI-compatible surface on the daemon's port: /v1/models, /v1/chat/completions, /v1/completions
(SSE streaming as OpenAI sends it), and Prometheus /metrics. Errors here use OpenAI's body
({"error": {"message", "type", "param", "code"}}) so OpenAI clients show them; see api/__init__.py.

A request is checked here, queued on its model (fair across clients: the `user` field names the client,
else the bearer token, else the peer address), and its tokens are relayed as the worker produces them. A
client that hangs up — while waiting or while streaming — cancels its request, which stops the generation.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from silnode.api.base import NODE, json_object
from silnode.api.metrics import node_metrics
from silnode.api.security import client_key
from silnode.errors import BadRequest, InvalidGenerationRequest
from silnode.serving.request import GenerationRequest
from silnode.serving.service import Request, ServedModel

# fields OpenAI clients send that only work at their default here: accepted at it, 400 otherwise
AT_DEFAULT_ONLY = {
    "n": 1,
    "echo": False,
    "best_of": 1,
    "logprobs": None,
    "top_logprobs": None,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logit_bias": None,
    "suffix": None,
    "tools": None,
    "tool_choice": None,
    "parallel_tool_calls": None,
    "response_format": None,
    "store": None,
    "metadata": None,
    "service_tier": None,
}
COMMON = {
    "model",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "user",
}


def OpenAIBadRequest(message: str, param: str | None = None) -> BadRequest:
    """A 400 that names the offending field (OpenAI's `param`; the error body carries it)."""
    return BadRequest(message, **({"param": param} if param else {}))


async def _parse(request: web.Request, kind: str) -> dict[str, Any]:
    body = await json_object(request)
    allowed = COMMON | ({"messages"} if kind == "chat" else {"prompt"})
    for key, value in body.items():
        if key in allowed:
            continue
        if key in AT_DEFAULT_ONLY:
            if value not in (AT_DEFAULT_ONLY[key], None) and value != {"type": "text"}:
                raise OpenAIBadRequest(f"'{key}' is not supported by this server (only its default)", key)
            continue
        raise OpenAIBadRequest(f"unknown field '{key}'", key)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise OpenAIBadRequest("'model' is required: a loaded model's name (GET /v1/models)", "model")
    return body


def _messages(body: dict) -> list[dict[str, Any]]:
    """OpenAI's message forms, reduced to {role, content} strings: text parts joined, `developer` as
    `system`. The generation request checks roles and types."""
    msgs = body.get("messages")
    if not isinstance(msgs, list):
        return msgs  # type: ignore[return-value]  (the generation request names the problem)
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            out.append(m)
            continue
        content = m.get("content")
        if isinstance(content, list):  # [{"type": "text", "text": ...}]: the text parts, joined
            if not all(
                isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content
            ):
                raise OpenAIBadRequest(f"messages[{i}].content: only text parts are supported", "messages")
            content = "".join(p["text"] for p in content)
        out.append({"role": "system" if m.get("role") == "developer" else m.get("role"), "content": content})
    return out


def _prompt(body: dict) -> str:
    p = body.get("prompt")
    if isinstance(p, list) and len(p) == 1:
        p = p[0]
    if not isinstance(p, str):
        raise OpenAIBadRequest("'prompt' must be a string (or a list of one string)", "prompt")
    return p


def _generation(body: dict, kind: str, model: ServedModel, default_max: int) -> GenerationRequest:
    """The OpenAI body as the neutral generation request; its checks become OpenAI 400s naming the field."""
    field_name = "max_tokens" if body.get("max_tokens") is not None else "max_completion_tokens"
    max_tokens = body.get(field_name)
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= model.n_ctx
    ):  # the model's context bounds it
        raise OpenAIBadRequest(f"'{field_name}' must be an integer from 1 to {model.n_ctx}", field_name)
    given = {k: body[k] for k in ("temperature", "top_p", "top_k", "seed", "stop") if body.get(k) is not None}
    given["stream"] = body.get("stream") if body.get("stream") is not None else False
    given["max_tokens"] = max_tokens or default_max
    try:
        if kind == "chat":
            return GenerationRequest.chat(_messages(body), **given)
        return GenerationRequest.completion(_prompt(body), **given)
    except InvalidGenerationRequest as exc:
        raise OpenAIBadRequest(exc.message, exc.details.get("param")) from None


def _client_key(request: web.Request, body: dict) -> str:
    """Who is asking, for the fair queue: the rule lives with the auth table (api/security.py)."""
    return client_key(request, body)


async def _watch_disconnect(request: web.Request, req: Request) -> None:
    """aiohttp does not cancel a handler when its client hangs up: notice it and cancel the request."""
    while not req.cancelled:
        transport = request.transport
        if transport is None or transport.is_closing():
            req.cancel()
            return
        await asyncio.sleep(0.05)


def _usage(done: dict[str, Any]) -> dict[str, int]:
    p, c = int(done.get("prompt_tokens") or 0), int(done.get("completion_tokens") or 0)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


async def _complete(request: web.Request, kind: str) -> web.StreamResponse:
    node = request.app[NODE]
    body = await _parse(request, kind)
    model = node.serving.get(body["model"])
    generation = _generation(body, kind, model, node.config.serve.max_tokens)
    req = model.submit(_client_key(request, body), generation)  # QueueFull (429) carries its retry_after
    watcher = asyncio.create_task(_watch_disconnect(request, req))
    rid = ("chatcmpl-" if kind == "chat" else "cmpl-") + req.id
    meta = {"id": rid, "created": int(time.time()), "model": model.name}
    try:
        if body.get("stream"):
            opts = body.get("stream_options") if isinstance(body.get("stream_options"), dict) else {}
            return await _stream(request, req, kind, meta, bool(opts.get("include_usage")))
        return await _whole(req, kind, meta)
    finally:
        watcher.cancel()
        req.cancel()  # a no-op once it is done; otherwise the client is gone or we failed: stop it


async def _whole(req: Request, kind: str, meta: dict[str, Any]) -> web.Response:
    parts: list[str] = []
    done: dict[str, Any] = {}
    async for ev in req.stream():
        if ev["type"] == "delta":
            parts.append(ev["text"])
        elif ev["type"] == "done":
            done = ev
    text = "".join(parts)
    finish = done.get("finish_reason", "stop")
    if kind == "chat":
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish,
            "logprobs": None,
        }
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
        obj = "text_completion"
    return web.json_response({**meta, "object": obj, "choices": [choice], "usage": _usage(done)})


async def _stream(
    request: web.Request, req: Request, kind: str, meta: dict[str, Any], include_usage: bool
) -> web.StreamResponse:
    events = req.stream()
    first = await anext(events, None)  # errors (context overflow, ...) still become a plain JSON error
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await resp.prepare(request)
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"

    async def send(choice: dict[str, Any] | None, usage: dict[str, int] | None = None) -> None:
        chunk = {**meta, "object": obj, "choices": [choice] if choice else []}
        if usage is not None:
            chunk["usage"] = usage
        await resp.write(b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n")

    def choice(text: str | None, finish: str | None) -> dict[str, Any]:
        if kind == "chat":
            delta = {"content": text} if text is not None else {}
            return {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}

    try:
        if kind == "chat":
            await send(
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None, "logprobs": None}
            )
        ev = first
        while ev is not None:
            if ev["type"] == "delta" and ev["text"]:
                await send(choice(ev["text"], None))
            elif ev["type"] == "done":
                await send(choice(None, ev.get("finish_reason", "stop")))
                if include_usage:
                    await send(None, _usage(ev))
            ev = await anext(events, None)
        await resp.write(b"data: [DONE]\n\n")
    except (ConnectionResetError, ConnectionError):
        req.cancel()  # the client hung up mid-stream
        return resp
    except Exception as exc:  # the headers are out: report in-band, as OpenAI does
        err = {
            "error": {
                "message": str(exc),
                "type": "server_error",
                "param": None,
                "code": getattr(exc, "code", "internal"),
            }
        }
        try:
            await resp.write(b"data: " + json.dumps(err).encode() + b"\n\n")
        except (ConnectionResetError, ConnectionError):
            pass
        return resp
    await resp.write_eof()
    return resp


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _complete(request, "chat")


async def completions(request: web.Request) -> web.StreamResponse:
    return await _complete(request, "completion")


async def list_models(request: web.Request) -> web.Response:
    data = []
    for m in request.app[NODE].serving.list():
        info = m.get("info") or {}
        data.append(
            {
                "id": m["name"],
                "object": "model",
                "created": int(m["loaded_at"] or 0),
                "owned_by": "silnode",
                "state": m["state"],
                "n_ctx": m["n_ctx"],
                "chat_template": info.get("chat_template"),
            }
        )
    return web.json_response({"object": "list", "data": data})


async def metrics(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return web.Response(
        text=node.serving.prometheus() + await node_metrics(node),
        content_type="text/plain",
        headers={"X-Content-Type-Options": "nosniff"},
    )


# (method, path, handler, summary): outside /api/v1, so OpenAI clients and Prometheus find them where they look
ROUTES = [
    ("GET", "/v1/models", list_models, "OpenAI: the loaded models"),
    ("POST", "/v1/chat/completions", chat_completions, "OpenAI: chat completion (SSE with stream=true)"),
    ("POST", "/v1/completions", completions, "OpenAI: text completion (SSE with stream=true)"),
    ("GET", "/metrics", metrics, "Prometheus: per-model requests, tokens, tokens/s, queue depth, restarts"),
]
