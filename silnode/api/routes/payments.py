"""Earnings: what the node was paid, per model and per day, from the payments ledger."""

from __future__ import annotations

from aiohttp import web

from silnode.api.base import NODE, Field, ok, route


@route(
    "GET",
    "/api/v1/earnings",
    "Earnings from the payments ledger: totals by state (free, unpaid, paid, expired, refunded, failed), per "
    "model and per UTC day; amounts in msats. No invoice keys, tokens or proofs.",
    query={"since": Field("string", description="only payments created since: 7d, 12h, 30m, 90s")},
)
async def earnings(request: web.Request) -> web.Response:
    return ok({"earnings": await request.app[NODE].payments.earnings(request.query.get("since"))})


def _http(request: web.Request):
    http = getattr(request.app[NODE].payments, "http", None)
    if http is None or not http.gate.ecash.allowed:
        from silnode.errors import PaymentsUnavailable

        raise PaymentsUnavailable("this node keeps no ecash balances", hint="set payments.mints in config.yaml")
    return http


@route(
    "POST",
    "/v1/balance",
    "Fund a balance for later /v1 requests with a cashu token in X-Cashu (all of it, less the mint's fee). "
    "Without a bearer: a new API key (sbal_…), shown once, whose balance each /v1 request is charged from (402 "
    "insufficient_balance when it runs out); with the key as the bearer: a top-up.",
    responses={200: "the balance (and api_key when new)", 402: "no token", 409: "token already spent"},
)
async def balance_deposit(request: web.Request) -> web.Response:
    return ok(await _http(request).deposit(request.headers))


@route("GET", "/v1/balance", "The bearer balance key's balance in msats.", responses={200: "OK", 401: "unknown key"})
async def balance_show(request: web.Request) -> web.Response:
    return ok(await _http(request).balance(request.headers))


@route(
    "DELETE",
    "/v1/balance",
    "Withdraw the bearer key's whole balance: one cashu token in the response's X-Cashu header.",
    responses={200: "OK; the token in X-Cashu", 401: "unknown key"},
)
async def balance_withdraw(request: web.Request) -> web.Response:
    body, token = await _http(request).withdraw(request.headers)
    resp = ok(body)
    if token:
        resp.headers["X-Cashu"] = token
    return resp
