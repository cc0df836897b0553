"""The served models: list, load, unload."""

from __future__ import annotations

from aiohttp import web

from silnode.api.base import NODE, Field, check_ctx, ok, read_body, route
from silnode.names import validate_name

LOAD_BODY = {
    "name": Field("string", required=True, description="a store model, org/model"),
    "ctx": Field("integer", description="context size (default: serve.n_ctx, at most the model's trained one)"),
    "force": Field("boolean", description="load even when the memory estimate says it won't fit"),
    "embeddings": Field("boolean", description="load for POST /v1/embeddings (embedding mode), not generation"),
}


@route("GET", "/api/v1/serving", "The loaded models: state, worker, queue depth and counters")
async def serving(request: web.Request) -> web.Response:
    return ok({"models": request.app[NODE].serving.list()})


@route(
    "POST",
    "/api/v1/serving/load",
    "Load a store model into a worker; returns when it is ready",
    body=LOAD_BODY,
    responses={
        200: "ready",
        404: "no such model",
        409: "won't fit (does_not_fit)",
        500: "llama.cpp could not load it (its reason in the message)",
        504: "not ready within serve.load_timeout (load_timeout): the worker was killed",
    },
)
async def load_model(request: web.Request) -> web.Response:
    body = await read_body(request, LOAD_BODY)
    validate_name(body["name"])
    check_ctx(body["ctx"])
    model = await request.app[NODE].serving.load(
        body["name"], n_ctx=body["ctx"], force=bool(body["force"]), embedding=bool(body["embeddings"])
    )
    return ok({"model": model})


UNLOAD_BODY = {"name": Field("string", required=True, description="a loaded model")}


@route(
    "POST",
    "/api/v1/serving/unload",
    "Stop serving a model: its worker exits and frees its memory",
    body=UNLOAD_BODY,
    responses={200: "OK", 404: "not loaded"},
)
async def unload_model(request: web.Request) -> web.Response:
    body = await read_body(request, UNLOAD_BODY)
    return ok(await request.app[NODE].serving.unload(body["name"]))
