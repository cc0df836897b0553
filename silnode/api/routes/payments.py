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
