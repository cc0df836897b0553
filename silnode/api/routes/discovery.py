"""Discovery: search the merged catalogs, this node's catalog, the follow list."""

from __future__ import annotations

from aiohttp import web

from silnode.api.base import NODE, Field, ok, read_body, route
from silnode.discovery.index import parse_size
from silnode.errors import BadRequest


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def _text(request: web.Request, key: str) -> str | None:
    v = request.query.get(key)
    if v is not None and ("\x00" in v or len(v) > 256):
        raise BadRequest(f"query parameter {key!r} is too long or contains NUL")
    return v or None


@route(
    "GET",
    "/api/v1/discover",
    "Search the merged catalogs of followed and configured publishers",
    query={
        "pattern": Field("string", description="substring of the model name (case-insensitive)"),
        "tag": Field("string", description="only entries with this tag (e.g. llama)"),
        "quant": Field("string", description="only this quantisation (e.g. Q4_K_M)"),
        "max_size": Field("string", description="only entries up to this size (8GB, 500MB, bytes)"),
        "fits": Field("boolean", description="only what fits this machine (fit estimate), with the reason"),
        "limit": Field("integer", description="at most this many results"),
    },
)
async def discover(request: web.Request) -> web.Response:
    svc = request.app[NODE].discovery
    limit = _text(request, "limit")
    if limit is not None and not (limit.isdigit() and int(limit) > 0):
        raise BadRequest("query parameter 'limit' must be a positive integer")
    results = svc.search(
        _text(request, "pattern"),
        tag=_text(request, "tag"),
        quant=_text(request, "quant"),
        max_size=parse_size(_text(request, "max_size")),
        fits=_flag(request.query.get("fits")),
        limit=int(limit) if limit else None,
    )
    return ok({"results": results, **svc.summary()})


@route("POST", "/api/v1/discover/refresh", "Look up every followed catalog's pointer now and fetch what is newer")
async def refresh(request: web.Request) -> web.Response:
    return ok({"refreshed": await request.app[NODE].discovery.refresh()})


@route(
    "GET",
    "/api/v1/catalog",
    "This node's catalog: seq, catalog infohash, BEP 46 magnet, entries",
    responses={200: "OK", 503: "no unlocked identity (discovery_unavailable)"},
)
async def catalog(request: web.Request) -> web.Response:
    return ok({"catalog": request.app[NODE].discovery.show()})


@route(
    "POST",
    "/api/v1/catalog/publish",
    "Publish now: a new seq when the shared models changed, and the pointer put again either way",
    responses={200: "OK", 503: "no unlocked identity (discovery_unavailable)"},
)
async def publish(request: web.Request) -> web.Response:
    return ok({"catalog": await request.app[NODE].discovery.publish(force=True)})


@route("GET", "/api/v1/following", "The followed and configured catalogs, with their seq and entry counts")
async def following(request: web.Request) -> web.Response:
    return ok({"following": request.app[NODE].discovery.following()})


FOLLOW_BODY = {
    "publisher": Field(
        "string", required=True, description="catalog public key (64 hex), npub, or magnet:?xs=urn:btpk:…"
    ),
    "wait": Field("boolean", description="look the catalog up before answering (default true)"),
}


@route(
    "POST",
    "/api/v1/following",
    "Follow a publisher's catalog (its entries join the merge; we seed it and re-put its pointer)",
    body=FOLLOW_BODY,
    responses={200: "OK", 400: "not a catalog key or magnet", 404: "npub with no known catalog"},
)
async def follow(request: web.Request) -> web.Response:
    body = await read_body(request, FOLLOW_BODY)
    result = await request.app[NODE].discovery.follow(body["publisher"], wait=body["wait"] is not False)
    return ok({"follow": result})


@route(
    "DELETE",
    "/api/v1/following/{publisher}",
    "Stop following a catalog (its cached copy and seed are dropped)",
    responses={200: "OK", 404: "not followed"},
)
async def unfollow(request: web.Request) -> web.Response:
    return ok({"follow": await request.app[NODE].discovery.unfollow(request.match_info["publisher"])})
