"""Transfers (downloads and seeds) and per-model seeding."""

from __future__ import annotations

from aiohttp import web

from silnode.api.base import NODE, Field, model_name, ok, read_body, route


@route("GET", "/api/v1/transfers", "Every transfer: downloads and seeds, with progress, rates, peers, ratio")
async def transfers(request: web.Request) -> web.Response:
    return ok({"transfers": request.app[NODE].distribution.list()})


@route("GET", "/api/v1/transfers/{transfer_id}", "One transfer", responses={200: "OK", 404: "no such transfer"})
async def transfer(request: web.Request) -> web.Response:
    return ok({"transfer": request.app[NODE].distribution.describe(request.match_info["transfer_id"])})


@route(
    "POST",
    "/api/v1/transfers/{transfer_id}/pause",
    "Pause a download",
    responses={200: "OK", 404: "no such transfer", 409: "not running"},
)
async def pause_transfer(request: web.Request) -> web.Response:
    distribution = request.app[NODE].distribution
    return ok({"transfer": distribution.describe(distribution.pause(request.match_info["transfer_id"]).id)})


@route(
    "POST",
    "/api/v1/transfers/{transfer_id}/resume",
    "Resume a paused or failed download",
    responses={200: "OK", 404: "no such transfer", 409: "not paused"},
)
async def resume_transfer(request: web.Request) -> web.Response:
    distribution = request.app[NODE].distribution
    return ok({"transfer": distribution.describe(distribution.resume(request.match_info["transfer_id"]).id)})


@route(
    "POST",
    "/api/v1/transfers/{transfer_id}/cancel",
    "Cancel a download and delete its partial data",
    responses={200: "OK", 404: "no such transfer", 409: "already done"},
)
async def cancel_transfer(request: web.Request) -> web.Response:
    t = await request.app[NODE].distribution.cancel(request.match_info["transfer_id"])
    return ok({"transfer": t.public(None)})


SEEDING_BODY = {"enabled": Field("boolean", required=True, description="seed this model or not")}


@route(
    "POST",
    "/api/v1/models/{org}/{model}/seeding",
    "Turn seeding of one model on or off",
    body=SEEDING_BODY,
    responses={200: "OK", 404: "no such model"},
)
async def seeding(request: web.Request) -> web.Response:
    body = await read_body(request, SEEDING_BODY)
    return ok(await request.app[NODE].distribution.set_seeding(model_name(request), body["enabled"]))


@route(
    "POST",
    "/api/v1/models/{org}/{model}/recheck",
    "Re-hash a seeded model's pieces (libtorrent recheck)",
    responses={200: "OK", 404: "not seeded", 504: "not done within network.recheck_timeout (recheck_timeout)"},
)
async def recheck(request: web.Request) -> web.Response:
    await read_body(request, {})
    return ok(await request.app[NODE].distribution.recheck(model_name(request)))
