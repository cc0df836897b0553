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


def route(method: str, path: str, summary: str, *, body: dict[str, Field] | None = None,
          query: dict[str, Field] | None = None, responses: dict[int, str] | None = None):
    def deco(fn: Handler) -> Handler:
        ROUTES.append(Route(method, path, fn, summary, body, responses or {200: "OK"}, query))
        return fn

    return deco


_PY = {"string": str, "boolean": bool, "integer": int, "array": list}


async def json_object(request: web.Request, *, empty_ok: bool = False) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 saying what is wrong with it."""
    raw = await request.read()
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
        if f.type == "array" and (len(value) > 64 or not all(isinstance(v, str) and 0 < len(v) <= 2048
                                                              and "\x00" not in v for v in value)):
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


# ---------------------------------------------------------------------- BitTorrent

SHARE_BODY = {
    "name": Field("string", description="the model to share (org/model); with source: the store name to use"),
    "source": Field("string", description="hf://ORG/REPO/FILE.gguf[@REV]: download through huggingface_hub, then share"),
    "path": Field("string", description="import this GGUF first (with name and license), then share it"),
    "license": Field("string", description="with path: license for the manifest"),
    "web_seeds": Field("array", description="HTTP origins serving the same files (BEP 19 web seeds)"),
    "v1_compat": Field("boolean", description="also seed a v1-only torrent for clients without BEP 52"),
    "wait": Field("boolean", description="answer when the torrent is made and seeding (default true)"),
}


@route("POST", "/api/v1/models/share", "Make a model's torrent and seed it (optionally importing a file first)",
       body=SHARE_BODY, responses={200: "seeding", 202: "task started", 404: "no such model"})
async def share(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body = await read_body(request, SHARE_BODY)
    if body["source"]:
        if body["path"]:
            raise BadRequest("give either source or path, not both")
        task = node.share_hf(body["source"], body["name"], license=body["license"],
                             v1_compat=bool(body["v1_compat"]))
    else:
        if not body["name"]:
            raise BadRequest("missing field 'name'")
        task = node.share(validate_name(body["name"]), path=body["path"], license=body["license"],
                          web_seeds=tuple(body["web_seeds"] or ()), v1_compat=bool(body["v1_compat"]))
    return await task_reply(node, task, body["wait"] is not False)


DOWNLOAD_BODY = {
    "target": Field("string", description="magnet link, a v1 (40 hex) / v2 (64 hex) infohash, or a seed-catalog "
                                          "model name; omit with auto"),
    "auto": Field("boolean", description="the best model that fits this machine (on disk first, else the catalog)"),
    "force": Field("boolean", description="download even when the model won't fit this machine's memory"),
    "ctx": Field("integer", description="context size the fit check assumes (default: the model's, capped at 4096)"),
    "peers": Field("array", description="peers to connect to, host:port"),
    "name": Field("string", description="store name (default: the magnet's dn, or derived from the files)"),
    "license": Field("string", description="license for the manifest"),
    "web_seeds": Field("array", description="HTTP origins serving the same files (BEP 19)"),
}


@route("POST", "/api/v1/models/download", "Get a model: a magnet/infohash (202 + transfer), a catalog model "
       "(202 + task) or, with auto, the best fit (200 + model when it is already on disk)",
       body=DOWNLOAD_BODY, responses={200: "the best fit is on disk", 202: "transfer or task started",
                                      400: "bad target", 409: "already here, or won't fit (does_not_fit)"})
async def download(request: web.Request) -> web.Response:
    from silnode.distribution import parse_peers

    body = await read_body(request, DOWNLOAD_BODY)
    if body["ctx"] is not None and not 0 < body["ctx"] <= 1 << 22:
        raise BadRequest("field 'ctx' must be a positive integer")
    result = await request.app[NODE].get(
        body["target"], auto=bool(body["auto"]), force=bool(body["force"]), n_ctx=body["ctx"],
        peers=parse_peers(body["peers"]), name=body["name"], license=body["license"],
        web_seeds=tuple(body["web_seeds"] or ()))
    return ok(result, status=200 if result.get("on_disk") else 202)


@route("GET", "/api/v1/transfers", "Every transfer: downloads and seeds, with progress, rates, peers, ratio")
async def transfers(request: web.Request) -> web.Response:
    return ok({"transfers": request.app[NODE].torrents.list()})


@route("GET", "/api/v1/transfers/{transfer_id}", "One transfer", responses={200: "OK", 404: "no such transfer"})
async def transfer(request: web.Request) -> web.Response:
    return ok({"transfer": request.app[NODE].torrents.describe(request.match_info["transfer_id"])})


@route("POST", "/api/v1/transfers/{transfer_id}/pause", "Pause a download",
       responses={200: "OK", 404: "no such transfer", 409: "not running"})
async def pause_transfer(request: web.Request) -> web.Response:
    torrents = request.app[NODE].torrents
    return ok({"transfer": torrents.describe(torrents.pause(request.match_info["transfer_id"]).id)})


@route("POST", "/api/v1/transfers/{transfer_id}/resume", "Resume a paused or failed download",
       responses={200: "OK", 404: "no such transfer", 409: "not paused"})
async def resume_transfer(request: web.Request) -> web.Response:
    torrents = request.app[NODE].torrents
    return ok({"transfer": torrents.describe(torrents.resume(request.match_info["transfer_id"]).id)})


@route("POST", "/api/v1/transfers/{transfer_id}/cancel", "Cancel a download and delete its partial data",
       responses={200: "OK", 404: "no such transfer", 409: "already done"})
async def cancel_transfer(request: web.Request) -> web.Response:
    t = await request.app[NODE].torrents.cancel(request.match_info["transfer_id"])
    return ok({"transfer": t.public(None)})


SEEDING_BODY = {"enabled": Field("boolean", required=True, description="seed this model or not")}


@route("POST", "/api/v1/models/{org}/{model}/seeding", "Turn seeding of one model on or off",
       body=SEEDING_BODY, responses={200: "OK", 404: "no such model"})
async def seeding(request: web.Request) -> web.Response:
    body = await read_body(request, SEEDING_BODY)
    return ok(await request.app[NODE].torrents.set_seeding(model_name(request), body["enabled"]))


@route("POST", "/api/v1/models/{org}/{model}/recheck", "Re-hash a seeded model's pieces (libtorrent recheck)",
       responses={200: "OK", 404: "not seeded"})
async def recheck(request: web.Request) -> web.Response:
    await read_body(request, {})
    return ok(await request.app[NODE].torrents.recheck(model_name(request)))


# ---------------------------------------------------------------------- identity


@route("GET", "/api/v1/identity", "The node's public keys (npub, Nostr hex key, catalog key); never a secret",
       responses={200: "OK", 404: "no identity"})
async def identity(request: web.Request) -> web.Response:
    return ok({"identity": request.app[NODE].identity_info()})


# ---------------------------------------------------------------------- fit


@route("GET", "/api/v1/hardware", "Devices (GPUs, CPU RAM) with total/free memory, which probe answered, "
       "and the probes that failed and why")
async def hardware(request: web.Request) -> web.Response:
    return ok({"hardware": await request.app[NODE].hardware()})


@route("GET", "/api/v1/inspect", "GGUF facts, memory need (weights, KV, compute, overhead) and fit of a model",
       query={"model": Field("string", required=True, description="org/model in the store, or a .gguf path"),
              "ctx": Field("integer", description="context size (default: the model's, capped at 4096)"),
              "flash_attn": Field("boolean", description="estimate with flash attention")},
       responses={200: "OK", 404: "no such model"})
async def inspect(request: web.Request) -> web.Response:
    q = request.query
    model = q.get("model")
    if not model or "\x00" in model or len(model) > 4096:
        raise BadRequest("query parameter 'model' is required (org/model or a .gguf path)")
    ctx_text = q.get("ctx")
    if ctx_text is not None and not (ctx_text.isdigit() and 0 < int(ctx_text) <= 1 << 22):
        raise BadRequest("query parameter 'ctx' must be a positive integer")
    data = await request.app[NODE].inspect(model, n_ctx=int(ctx_text) if ctx_text else None,
                                           flash_attn=q.get("flash_attn", "").lower() in ("1", "true", "yes"))
    return ok({"inspect": data})


@route("GET", "/api/v1/recommend", "What fits this machine, best first (store and seed catalog), and why the "
       "others don't",
       query={"ctx": Field("integer", description="context size (default: each model's, capped at 4096)"),
              "catalog": Field("boolean", description="include the seed catalog (default true)")})
async def recommend(request: web.Request) -> web.Response:
    q = request.query
    ctx_text = q.get("ctx")
    if ctx_text is not None and not (ctx_text.isdigit() and 0 < int(ctx_text) <= 1 << 22):
        raise BadRequest("query parameter 'ctx' must be a positive integer")
    catalog = q.get("catalog", "true").lower() not in ("0", "false", "no")
    data = await request.app[NODE].recommend(n_ctx=int(ctx_text) if ctx_text else None, catalog=catalog)
    return ok({"recommend": data})


# ---------------------------------------------------------------------- serving

LOAD_BODY = {
    "name": Field("string", required=True, description="a store model, org/model"),
    "ctx": Field("integer", description="context size (default: serve.n_ctx, at most the model's trained one)"),
    "force": Field("boolean", description="load even when the memory estimate says it won't fit"),
}


@route("GET", "/api/v1/serving", "The loaded models: state, worker, queue depth and counters")
async def serving(request: web.Request) -> web.Response:
    return ok({"models": request.app[NODE].serve.list()})


@route("POST", "/api/v1/serving/load", "Load a store model into a worker; returns when it is ready",
       body=LOAD_BODY, responses={200: "ready", 404: "no such model", 409: "won't fit (does_not_fit)",
                                  500: "llama.cpp could not load it (its reason in the message)"})
async def load_model(request: web.Request) -> web.Response:
    body = await read_body(request, LOAD_BODY)
    validate_name(body["name"])
    if body["ctx"] is not None and not 0 < body["ctx"] <= 1 << 22:
        raise BadRequest("field 'ctx' must be a positive integer")
    model = await request.app[NODE].serve.load(body["name"], n_ctx=body["ctx"], force=bool(body["force"]))
    return ok({"model": model})


UNLOAD_BODY = {"name": Field("string", required=True, description="a loaded model")}


@route("POST", "/api/v1/serving/unload", "Stop serving a model: its worker exits and frees its memory",
       body=UNLOAD_BODY, responses={200: "OK", 404: "not loaded"})
async def unload_model(request: web.Request) -> web.Response:
    body = await read_body(request, UNLOAD_BODY)
    return ok(await request.app[NODE].serve.unload(body["name"]))


@route("POST", "/api/v1/models/starter", "Import the starter model (Gemma-3-270M from its pip package) as a task",
       responses={202: "task started", 404: "package not installed", 409: "already in the store"})
async def import_starter(request: web.Request) -> web.Response:
    return ok({"task": request.app[NODE].import_starter().to_json()}, status=202)
