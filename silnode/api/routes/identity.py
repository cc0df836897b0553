"""The node's public identity (never a secret)."""

from __future__ import annotations

from aiohttp import web

from silnode.api.base import NODE, ok, route


@route(
    "GET",
    "/api/v1/identity",
    "The node's public keys (npub, Nostr hex key, catalog key); never a secret",
    responses={200: "OK", 404: "no identity"},
)
async def identity(request: web.Request) -> web.Response:
    return ok({"identity": request.app[NODE].identity_info()})
