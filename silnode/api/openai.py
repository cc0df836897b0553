"""The OpenAI-compatible surface on the daemon's port: /v1/models, /v1/chat/completions, /v1/completions
(SSE streaming as OpenAI sends it; tool calls in OpenAI's shapes, read by serving/tools.py in the worker),
and Prometheus /metrics. Errors here use OpenAI's body ({"error": {"message", "type", "param", "code"}}) so
OpenAI clients show them; see api/__init__.py.

A request is checked here, queued on its model (fair across clients: the `user` field names the client,
else the bearer token, else the peer address), and its tokens are relayed as the worker produces them. A
client that hangs up — while waiting or while streaming — cancels its request, which stops the generation.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
from dataclasses import replace
from typing import Any

from aiohttp import web

from silnode.api.base import NODE, json_object
from silnode.api.metrics import node_metrics
from silnode.api.security import client_key
from silnode.errors import BadRequest, InvalidGenerationRequest, SilnodeError
from silnode.payments.http import carries_payment
from silnode.serving.request import EmbeddingRequest, GenerationRequest
from silnode.serving.service import Request, ServedModel

# fields OpenAI clients send that only work at their default here: accepted at it, 400 otherwise
AT_DEFAULT_ONLY = {"echo": False, "best_of": 1, "suffix": None, "store": None, "metadata": None, "service_tier": None}
COMMON = {
    "model",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "presence_penalty",
    "frequency_penalty",
    "repeat_penalty",
    "logit_bias",
    "logprobs",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "user",
    "n",
}
CHAT_ONLY = {"messages", "response_format", "top_logprobs", "tools", "tool_choice", "parallel_tool_calls"}
# passed to the generation request as they are (it checks types and ranges)
SAMPLING = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "presence_penalty",
    "frequency_penalty",
    "repeat_penalty",
    "logit_bias",
    "seed",
    "stop",
)
MAX_COMPLETION_LOGPROBS = 5  # /v1/completions `logprobs` (OpenAI's limit)


def OpenAIBadRequest(message: str, param: str | None = None) -> BadRequest:
    """A 400 that names the offending field (OpenAI's `param`; the error body carries it)."""
    return BadRequest(message, **({"param": param} if param else {}))


async def _parse(request: web.Request, kind: str) -> dict[str, Any]:
    body = await json_object(request)
    allowed = COMMON | (CHAT_ONLY if kind == "chat" else {"prompt", "response_format"})
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
    """OpenAI's message forms, reduced to {role, content} strings (plus an assistant turn's `tool_calls`, a
    tool turn's `tool_call_id` and `name`): text parts joined, `developer` as `system`. The generation
    request checks roles and types."""
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
        msg = {"role": "system" if m.get("role") == "developer" else m.get("role"), "content": content}
        msg.update({k: m[k] for k in ("tool_calls", "tool_call_id", "name") if m.get(k) is not None})
        out.append(msg)
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
    given = {k: body[k] for k in SAMPLING if body.get(k) is not None}
    given["stream"] = body.get("stream") if body.get("stream") is not None else False
    given["max_tokens"] = max_tokens or default_max
    given["response_format"] = body.get("response_format")
    if kind == "chat":
        for key in ("tools", "tool_choice", "parallel_tool_calls"):
            if body.get(key) is not None:
                given[key] = body[key]
    given.update(_logprobs(body, kind))
    try:
        if kind == "chat":
            return GenerationRequest.chat(_messages(body), **given)
        return GenerationRequest.completion(_prompt(body), **given)
    except InvalidGenerationRequest as exc:
        raise OpenAIBadRequest(exc.message, exc.details.get("param")) from None


def _logprobs(body: dict, kind: str) -> dict[str, Any]:
    """Chat: logprobs (bool) + top_logprobs (0-20). Completions: logprobs is the number of alternatives (0-5)."""
    lp = body.get("logprobs")
    if kind == "chat":
        if lp is not None and not isinstance(lp, bool):
            raise OpenAIBadRequest("'logprobs' must be a boolean", "logprobs")
        top = body.get("top_logprobs")
        if top is not None and not lp:
            raise OpenAIBadRequest("'top_logprobs' needs 'logprobs': true", "top_logprobs")
        return {"logprobs": bool(lp), "top_logprobs": top} if lp else {}
    if lp is None:
        return {}
    if isinstance(lp, bool) or not isinstance(lp, int) or not 0 <= lp <= MAX_COMPLETION_LOGPROBS:
        raise OpenAIBadRequest(f"'logprobs' must be an integer from 0 to {MAX_COMPLETION_LOGPROBS}", "logprobs")
    return {"logprobs": True, "top_logprobs": lp}


def _choices(body: dict, limit: int) -> int:
    n = body.get("n")
    if n is None:
        return 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= limit:
        raise OpenAIBadRequest(f"'n' must be an integer from 1 to {limit} (serve.max_n)", "n")
    return n


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
    n = _choices(body, node.config.serve.max_n)
    # n choices are generated in turn (one llama.cpp context, one sequence); with a seed, choice i uses seed + i
    # so that they differ and each is still reproducible
    gens = [
        generation if i == 0 or generation.seed is None else replace(generation, seed=generation.seed + i)
        for i in range(n)
    ]
    run = _Run(request, model, _client_key(request, body))
    paid = await _charge(request, node, model.name, generation, n)
    try:
        first = run.submit(gens[0])  # QueueFull (429) carries its retry_after
        rid = ("chatcmpl-" if kind == "chat" else "cmpl-") + first.id
        fmt = _Format(kind, generation, len(generation.prompt or ""))
        meta = {"id": rid, "created": int(time.time()), "model": model.name}
        headers = paid.headers() if paid is not None else {}  # X-Cashu: the change of a paid request
        if body.get("stream"):
            opts = body.get("stream_options") if isinstance(body.get("stream_options"), dict) else {}
            resp = await _stream(request, run, gens, fmt, meta, bool(opts.get("include_usage")), headers)
        else:
            resp = await _whole(run, gens, fmt, meta)
            resp.headers.update(headers)
    except SilnodeError as exc:
        if paid is not None and paid.status != "free":  # failed after it was paid: the money goes back
            back = await request.app[NODE].payments.http.refund(paid)  # a token, or credited to the balance
            if back:
                exc.details["x_cashu"] = back
        raise
    finally:
        run.close()
    if paid is not None:
        await request.app[NODE].payments.http.finish(paid, run.completion_tokens)
    return resp


async def _charge(request: web.Request, node: Any, model: str, generation: GenerationRequest, n: int) -> Any:
    """Ecash for this request (payments/http.py): redeemed before any work when the caller sent some, or when
    payments.require_payment_http asks every caller to (402 with a NUT-18 payment request otherwise)."""
    http = getattr(getattr(node, "payments", None), "http", None)
    if http is None or not (http.required or carries_payment(request.headers)):
        return None
    max_tokens = (generation.max_tokens or node.config.serve.max_tokens) * n
    return await http.charge(request.headers, model, max_tokens)


class _Run:
    """The requests of one API call (one per choice, in turn), each cancelled when the client hangs up."""

    def __init__(self, request: web.Request, model: ServedModel, client: str) -> None:
        self.request, self.model, self.client = request, model, client
        self.current: Request | None = None
        self._watcher: asyncio.Task | None = None
        self.completion_tokens = 0  # over every choice: what a paid request is recorded with

    def submit(self, generation: GenerationRequest) -> Request:
        self.close()
        self.current = self.model.submit(self.client, generation)
        self._watcher = asyncio.create_task(_watch_disconnect(self.request, self.current))
        return self.current

    async def events(self, generation: GenerationRequest) -> Any:
        req = self.current if self.current is not None and self.current.generation is generation else None
        async for ev in (req or self.submit(generation)).stream():
            if ev.get("type") == "done":
                self.completion_tokens += int(ev.get("completion_tokens") or 0)
            yield ev

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        if self.current is not None:
            self.current.cancel()  # a no-op once it is done; otherwise the client is gone or we failed: stop it
        self.current = self._watcher = None


class _Format:
    """OpenAI's shapes for one kind of request: choices, deltas, logprobs."""

    def __init__(self, kind: str, generation: GenerationRequest, prompt_chars: int) -> None:
        self.kind, self.generation, self.prompt_chars = kind, generation, prompt_chars

    def logprobs(self, entries: list[dict[str, Any]] | None, offset: int = 0) -> dict[str, Any] | None:
        if not self.generation.logprobs:
            return None
        entries = entries or []
        if self.kind == "chat":
            return {
                "content": [
                    {
                        "token": e["token"],
                        "logprob": e["logprob"],
                        "bytes": e["bytes"],
                        "top_logprobs": [
                            {"token": t["token"], "logprob": t["logprob"], "bytes": t["bytes"]}
                            for t in e["top_logprobs"]
                        ],
                    }
                    for e in entries
                ],
                "refusal": None,
            }
        offsets, at = [], self.prompt_chars + offset
        for e in entries:
            offsets.append(at)
            at += len(e["token"])
        return {
            "tokens": [e["token"] for e in entries],
            "token_logprobs": [e["logprob"] for e in entries],
            "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries],
            "text_offset": offsets,
        }

    def choice(
        self, index: int, text: str, finish: str, entries: list[dict[str, Any]], calls: list[dict[str, Any]]
    ) -> dict[str, Any]:
        if self.kind == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if calls:
                message["content"] = text or None  # OpenAI's shape for an answer that only calls tools
                message["tool_calls"] = [tool_call(c) for c in calls]
            return {"index": index, "message": message, "finish_reason": finish, "logprobs": self.logprobs(entries)}
        return {"index": index, "text": text, "finish_reason": finish, "logprobs": self.logprobs(entries)}

    def chunk(
        self,
        index: int,
        text: str | None,
        finish: str | None,
        entries: list[dict[str, Any]] | None,
        offset: int,
        calls: list[dict[str, Any]] | None = None,
        first_call: int = 0,
    ) -> dict[str, Any]:
        lp = self.logprobs(entries, offset) if entries else None
        if self.kind == "chat":
            delta: dict[str, Any] = {"content": text} if text is not None and (text or not calls) else {}
            if calls:  # each call whole, in one delta (the client's accumulator takes that as well as pieces)
                delta["tool_calls"] = [{"index": first_call + i, **tool_call(c)} for i, c in enumerate(calls)]
            return {"index": index, "delta": delta, "finish_reason": finish, "logprobs": lp}
        return {"index": index, "text": text or "", "finish_reason": finish, "logprobs": lp}


def tool_call(call: dict[str, Any]) -> dict[str, Any]:
    """A worker's call {id, name, arguments} in OpenAI's shape."""
    return {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}


def _add_usage(total: dict[str, int], done: dict[str, Any]) -> dict[str, int]:
    u = _usage(done)
    if not total:
        return u
    # the prompt is counted once, as OpenAI does for n > 1
    return {
        "prompt_tokens": total["prompt_tokens"],
        "completion_tokens": total["completion_tokens"] + u["completion_tokens"],
        "total_tokens": total["total_tokens"] + u["completion_tokens"],
    }


async def _whole(run: _Run, gens: list[GenerationRequest], fmt: _Format, meta: dict[str, Any]) -> web.Response:
    choices, usage = [], {}
    for index, gen in enumerate(gens):
        parts: list[str] = []
        entries: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        done: dict[str, Any] = {}
        async for ev in run.events(gen):
            entries += ev.get("logprobs") or []
            if ev["type"] == "delta":
                parts.append(ev["text"])
                calls += ev.get("tool_calls") or []
            elif ev["type"] == "done":
                done = ev
        choices.append(fmt.choice(index, "".join(parts), done.get("finish_reason", "stop"), entries, calls))
        usage = _add_usage(usage, done)
    obj = "chat.completion" if fmt.kind == "chat" else "text_completion"
    return web.json_response({**meta, "object": obj, "choices": choices, "usage": usage})


async def _stream(
    request: web.Request,
    run: _Run,
    gens: list[GenerationRequest],
    fmt: _Format,
    meta: dict[str, Any],
    include_usage: bool,
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    events = run.events(gens[0])
    first = await anext(events, None)  # errors (context overflow, ...) still become a plain JSON error
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            **(headers or {}),
        }
    )
    await resp.prepare(request)
    obj = "chat.completion.chunk" if fmt.kind == "chat" else "text_completion"

    async def send(choice: dict[str, Any] | None, usage: dict[str, int] | None = None) -> None:
        chunk = {**meta, "object": obj, "choices": [choice] if choice else []}
        if usage is not None:
            chunk["usage"] = usage
        await resp.write(b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n")

    usage: dict[str, int] = {}
    try:
        for index, gen in enumerate(gens):
            if index:
                events = run.events(gen)
                ev = await anext(events, None)
            else:
                ev = first
            if fmt.kind == "chat":
                await send(
                    {
                        "index": index,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                        "logprobs": None,
                    }
                )
            offset = n_calls = 0
            while ev is not None:
                entries = ev.get("logprobs")
                calls = ev.get("tool_calls")
                if ev["type"] == "delta" and (ev["text"] or entries or calls):
                    await send(fmt.chunk(index, ev["text"], None, entries, offset, calls, n_calls))
                    offset += len(ev["text"])
                    n_calls += len(calls or [])
                elif ev["type"] == "done":
                    await send(fmt.chunk(index, None, ev.get("finish_reason", "stop"), entries, offset))
                    usage = _add_usage(usage, ev)
                ev = await anext(events, None)
        if include_usage:
            await send(None, usage)
        await resp.write(b"data: [DONE]\n\n")
    except (ConnectionResetError, ConnectionError):
        run.close()  # the client hung up mid-stream
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
    http = getattr(getattr(request.app[NODE], "payments", None), "http", None)
    # what a request costs, per model, when /v1 is sold for ecash (payments/http.py); None when it is free
    sold = http is not None and not http.gate.pricing.free and (http.required or bool(http.gate.ecash.allowed))
    pricing = http.prices() if sold else None
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
                # how tool calls work on this model (serving/tools.py): "template" or "grammar"
                "tool_path": info.get("tool_path"),
                "embedding": bool(m.get("embedding")),
                **({"pricing": pricing} if pricing else {}),
            }
        )
    return web.json_response({"object": "list", "data": data})


EMBED_FIELDS = {"model", "input", "encoding_format", "dimensions", "user"}


async def embeddings(request: web.Request) -> web.Response:
    """One vector per input, from a model loaded with --embeddings; float lists or base64 float32 (little endian)."""
    node = request.app[NODE]
    body = await json_object(request)
    for key in body:
        if key not in EMBED_FIELDS:
            raise OpenAIBadRequest(f"unknown field '{key}'", key)
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise OpenAIBadRequest("'model' is required: a model loaded with --embeddings (GET /v1/models)", "model")
    model = node.serving.get(body["model"])
    if not model.embedding:
        raise OpenAIBadRequest(
            f"{model.name} is loaded for generation: `silnode serve {model.name} --embeddings` loads it for this",
            "model",
        )
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise OpenAIBadRequest("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    n_embd = int((model.info or {}).get("n_embd") or 0)
    dims = body.get("dimensions")
    if dims is not None and dims != n_embd:
        raise OpenAIBadRequest(f"this model's vectors have {n_embd} dimensions; it cannot shorten them", "dimensions")
    try:
        req = model.submit(_client_key(request, body), EmbeddingRequest(body.get("input")))
    except InvalidGenerationRequest as exc:
        raise OpenAIBadRequest(exc.message, exc.details.get("param")) from None
    watcher = asyncio.create_task(_watch_disconnect(request, req))
    vectors: dict[int, list[float]] = {}
    done: dict[str, Any] = {}
    try:
        async for ev in req.stream():
            if ev["type"] == "delta" and "embedding" in ev:
                vectors[int(ev["index"])] = ev["embedding"]
            elif ev["type"] == "done":
                done = ev
    finally:
        watcher.cancel()
        req.cancel()
    data = []
    for i in sorted(vectors):
        vec: Any = vectors[i]
        if fmt == "base64":
            vec = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vec})
    tokens = int(done.get("prompt_tokens") or 0)
    return web.json_response(
        {
            "object": "list",
            "data": data,
            "model": model.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


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
    ("POST", "/v1/embeddings", embeddings, "OpenAI: embeddings (a model loaded with --embeddings)"),
    ("GET", "/metrics", metrics, "Prometheus: per-model requests, tokens, tokens/s, queue depth, restarts"),
]
