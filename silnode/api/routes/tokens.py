"""Scoped API tokens: create (the token is in this one reply only), list, revoke. Admin only (the guard's
table puts every /api/v1/tokens call in the admin row, reads included)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from silnode.api.base import NODE, Field, ok, read_body, route
from silnode.home import TOKEN_SCOPES, TokenStore

CREATE_BODY = {
    "scope": Field("string", required=True, description="what the token may do", enum=TOKEN_SCOPES),
    "name": Field("string", description="a label to list and revoke it by (default: scope-xxxx)"),
}


def _store(request: web.Request) -> TokenStore:
    return TokenStore.for_config(request.app[NODE].config)


@route("GET", "/api/v1/tokens", "The scoped API tokens (id, name, scope, created; never the token)")
async def list_tokens(request: web.Request) -> web.Response:
    tokens = await asyncio.to_thread(_store(request).tokens)
    return ok({"tokens": [t.public() for t in tokens]})


@route(
    "POST",
    "/api/v1/tokens",
    "Make a token; the reply is the only place the token itself ever appears",
    body=CREATE_BODY,
    responses={201: "created", 409: "a token with that name exists"},
)
async def create_token(request: web.Request) -> web.Response:
    body = await read_body(request, CREATE_BODY)
    tok, secret = await asyncio.to_thread(_store(request).create, body["scope"], body["name"])
    return ok({"token": {**tok.public(), "token": secret}}, status=201)


@route(
    "DELETE",
    "/api/v1/tokens/{ref}",
    "Revoke a token by id or name (at once: the next request with it is refused)",
    responses={200: "revoked", 404: "no such token"},
)
async def revoke_token(request: web.Request) -> web.Response:
    tok = await asyncio.to_thread(_store(request).revoke, request.match_info["ref"])
    return ok({"revoked": tok.public()})
