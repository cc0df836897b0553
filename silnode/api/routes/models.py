"""The store's models: list, show, remove, import, verify, gc, share, get (download), inspect, recommend,
the starter model."""

from __future__ import annotations

from aiohttp import web

from silnode.api.base import NODE, Field, check_ctx, model_name, ok, query_ctx, read_body, route, task_reply
from silnode.api.security import principal
from silnode.errors import BadRequest
from silnode.names import validate_name
from silnode.transfer import parse_peers


@route("GET", "/api/v1/models", "Models in the store (summaries)")
async def models(request: web.Request) -> web.Response:
    return ok({"models": await request.app[NODE].models.list()})


@route("GET", "/api/v1/models/{org}/{model}", "One model's manifest", responses={200: "OK", 404: "not found"})
async def model(request: web.Request) -> web.Response:
    return ok({"model": await request.app[NODE].models.show(model_name(request))})


@route(
    "DELETE", "/api/v1/models/{org}/{model}", "Remove a model from the store", responses={200: "OK", 404: "not found"}
)
async def delete_model(request: web.Request) -> web.Response:
    return ok(await request.app[NODE].models.remove(model_name(request)))


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


@route(
    "POST",
    "/api/v1/models/import",
    "Import a GGUF file, or models from the HF cache / Ollama",
    body=IMPORT_BODY,
    responses={200: "done (wait=true)", 202: "task started", 400: "bad input", 409: "exists"},
)
async def import_model(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body = await read_body(request, IMPORT_BODY)
    if body["from"]:
        if body["path"] or body["name"]:
            raise BadRequest("give either path (+ name) or from, not both")
        task = node.models.import_found(body["from"], body["pattern"])
    else:
        if not body["path"] or not body["name"]:
            raise BadRequest("path and name are required (or from=hf|ollama)")
        task = node.models.import_file(
            body["path"],
            body["name"],
            license=body["license"],
            link=body["link"] is not False,
            file_name=body["file_name"],
        )
    return await task_reply(node, task, body["wait"])


VERIFY_BODY = {
    "name": Field("string", description="one model (default: all)"),
    "wait": Field("boolean", description="answer when done"),
}


@route(
    "POST",
    "/api/v1/verify",
    "Re-hash models against their manifests; quarantine damaged files",
    body=VERIFY_BODY,
    responses={200: "done (wait=true)", 202: "task started", 404: "no such model"},
)
async def verify(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body = await read_body(request, VERIFY_BODY)
    name = validate_name(body["name"]) if body["name"] is not None else None
    return await task_reply(node, node.models.verify(name), body["wait"])


@route("POST", "/api/v1/gc", "Delete orphaned partials and quarantined files")
async def gc(request: web.Request) -> web.Response:
    await read_body(request, {})
    return ok(await request.app[NODE].models.gc())


@route(
    "GET",
    "/api/v1/tasks/{task_id}",
    "Progress and result of a long operation",
    responses={200: "OK", 404: "no such task"},
)
async def task(request: web.Request) -> web.Response:
    return ok({"task": request.app[NODE].tasks.get(request.match_info["task_id"]).to_json()})


@route(
    "POST",
    "/api/v1/tasks/{task_id}/cancel",
    "Cancel a running long operation (import, share hf://, get from the seed catalog, verify)",
    responses={200: "cancelling: it ends at its next progress step", 404: "no such task", 409: "not running"},
)
async def cancel_task(request: web.Request) -> web.Response:
    await read_body(request, {})
    return ok({"task": request.app[NODE].tasks.cancel(request.match_info["task_id"]).to_json()})


@route(
    "GET",
    "/api/v1/inspect",
    "GGUF facts, memory need (weights, KV, compute, overhead) and fit of a model",
    query={
        "model": Field(
            "string", required=True, description="org/model in the store, or a .gguf path (a path needs admin)"
        ),
        "ctx": Field("integer", description="context size (default: the model's, capped at 4096)"),
        "flash_attn": Field("boolean", description="estimate with flash attention"),
    },
    responses={200: "OK", 404: "no such model"},
)
async def inspect(request: web.Request) -> web.Response:
    q = request.query
    model = q.get("model")
    if not model or "\x00" in model or len(model) > 4096:
        raise BadRequest("query parameter 'model' is required (org/model or a .gguf path)")
    if principal(request).scope != "admin":
        # the guard let a store name through without admin: it must name a store model, never a file that
        # happens to be spelled like one (a path argument needs admin)
        await request.app[NODE].models.show(validate_name(model))
    data = await request.app[NODE].models.inspect(
        model, n_ctx=query_ctx(request), flash_attn=q.get("flash_attn", "").lower() in ("1", "true", "yes")
    )
    return ok({"inspect": data})


@route(
    "GET",
    "/api/v1/recommend",
    "What fits this machine, best first (store and seed catalog), and why the others don't",
    query={
        "ctx": Field("integer", description="context size (default: each model's, capped at 4096)"),
        "catalog": Field("boolean", description="include the seed catalog (default true)"),
        "min_tps": Field("number", description="rank first the models estimated at least this fast (tokens/s)"),
    },
)
async def recommend(request: web.Request) -> web.Response:
    q = request.query
    catalog = q.get("catalog", "true").lower() not in ("0", "false", "no")
    min_tps = None
    if "min_tps" in q:
        try:
            min_tps = float(q["min_tps"])
        except ValueError:
            min_tps = -1.0
        if not 0 <= min_tps < 1e6:
            raise BadRequest("query parameter 'min_tps' must be a number of tokens per second, 0 or more")
    data = await request.app[NODE].models.recommend(n_ctx=query_ctx(request), catalog=catalog, min_tps=min_tps)
    return ok({"recommend": data})


SHARE_BODY = {
    "name": Field("string", description="the model to share (org/model); with source: the store name to use"),
    "source": Field(
        "string", description="hf://ORG/REPO/FILE.gguf[@REV]: download through huggingface_hub, then share"
    ),
    "path": Field("string", description="import this GGUF first (with name and license), then share it"),
    "license": Field("string", description="with path: license for the manifest"),
    "web_seeds": Field("array", description="HTTP origins serving the same files (BEP 19 web seeds)"),
    "v1_compat": Field("boolean", description="also seed a v1-only torrent for clients without BEP 52"),
    "wait": Field("boolean", description="answer when the torrent is made and seeding (default true)"),
}


@route(
    "POST",
    "/api/v1/models/share",
    "Make a model's torrent and seed it (optionally importing a file first)",
    body=SHARE_BODY,
    responses={200: "seeding", 202: "task started", 404: "no such model"},
)
async def share(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body = await read_body(request, SHARE_BODY)
    if body["source"]:
        if body["path"]:
            raise BadRequest("give either source or path, not both")
        task = node.models.share_hf(
            body["source"], body["name"], license=body["license"], v1_compat=bool(body["v1_compat"])
        )
    else:
        if not body["name"]:
            raise BadRequest("missing field 'name'")
        task = node.models.share(
            validate_name(body["name"]),
            path=body["path"],
            license=body["license"],
            web_seeds=tuple(body["web_seeds"] or ()),
            v1_compat=bool(body["v1_compat"]),
        )
    return await task_reply(node, task, body["wait"] is not False)


DOWNLOAD_BODY = {
    "target": Field(
        "string",
        description="magnet link, a v1 (40 hex) / v2 (64 hex) infohash, a seed-catalog or discovered model name, "
        "or a catalog magnet (magnet:?xs=urn:btpk:…, followed); omit with auto",
    ),
    "auto": Field("boolean", description="the best model that fits this machine (on disk first, else the catalog)"),
    "force": Field("boolean", description="download even when the model won't fit this machine's memory"),
    "ctx": Field("integer", description="context size the fit check assumes (default: the model's, capped at 4096)"),
    "peers": Field("array", description="peers to connect to, host:port"),
    "name": Field("string", description="store name (default: the magnet's dn, or derived from the files)"),
    "license": Field("string", description="license for the manifest"),
    "web_seeds": Field("array", description="HTTP origins serving the same files (BEP 19)"),
}


@route(
    "POST",
    "/api/v1/models/download",
    "Get a model: a magnet/infohash (202 + transfer), a catalog model "
    "(202 + task) or, with auto, the best fit (200 + model when it is already on disk)",
    body=DOWNLOAD_BODY,
    responses={
        200: "the best fit is on disk",
        202: "transfer or task started",
        400: "bad target",
        409: "already here, or won't fit (does_not_fit)",
    },
)
async def download(request: web.Request) -> web.Response:

    body = await read_body(request, DOWNLOAD_BODY)
    check_ctx(body["ctx"])
    # discovery: an org/model name resolves through the catalogs; a btpk magnet follows that publisher
    resolved = await request.app[NODE].discovery.resolve_get(body["target"], body["name"])
    if "followed" in resolved:
        return ok(resolved)
    body.update(target=resolved["target"], name=resolved["name"])
    result = await request.app[NODE].models.get(
        body["target"],
        auto=bool(body["auto"]),
        force=bool(body["force"]),
        n_ctx=body["ctx"],
        peers=parse_peers(body["peers"]),
        name=body["name"],
        license=body["license"],
        web_seeds=tuple(body["web_seeds"] or ()),
    )
    return ok(result, status=200 if result.get("on_disk") else 202)


@route(
    "POST",
    "/api/v1/models/starter",
    "Import the starter model (Gemma-3-270M from its pip package) as a task",
    responses={202: "task started", 404: "package not installed", 409: "already in the store"},
)
async def import_starter(request: web.Request) -> web.Response:
    return ok({"task": request.app[NODE].models.import_starter().to_json()}, status=202)
