"""Selling on Nostr: the DVM's state, turning selling on/off, and the job store (list, detail)."""

from __future__ import annotations

import re

from aiohttp import web

from silnode.api.base import NODE, Field, ok, read_body, route
from silnode.errors import BadRequest

STATUSES = ("received", "processing", "success", "error", "cancelled", "expired")
JOB_ID = re.compile(r"^[0-9a-f]{64}$")


@route("GET", "/api/v1/dvm", "Selling on Nostr: state (or why it is off), npub, relays and their state, job counts")
async def dvm(request: web.Request) -> web.Response:
    return ok({"dvm": await request.app[NODE].dvm.status()})


SELL_BODY = {
    "sell": Field("boolean", required=True, description="true: sell the served models; false: keep them local")
}


@route(
    "POST",
    "/api/v1/dvm/sell",
    "Turn selling on Nostr on or off (remembered across restarts; `silnode serve` / `serve --no-sell`)",
    body=SELL_BODY,
)
async def sell(request: web.Request) -> web.Response:
    body = await read_body(request, SELL_BODY)
    return ok({"dvm": await request.app[NODE].dvm.set_selling(body["sell"])})


@route(
    "GET",
    "/api/v1/jobs",
    "Recent NIP-90 jobs, newest first: customer, model, status, tokens, bid and amount, times",
    query={
        "limit": Field("integer", description="at most this many (1-1000, default 50)"),
        "status": Field("string", description="only jobs in this state", enum=STATUSES),
    },
)
async def jobs(request: web.Request) -> web.Response:
    limit_text = request.query.get("limit", "50")
    if not (limit_text.isdigit() and 1 <= int(limit_text) <= 1000):
        raise BadRequest("query parameter 'limit' must be an integer from 1 to 1000")
    status = request.query.get("status")
    if status is not None and status not in STATUSES:
        raise BadRequest(f"query parameter 'status' must be one of {', '.join(STATUSES)}")
    return ok({"jobs": await request.app[NODE].dvm.jobs(int(limit_text), status)})


@route(
    "GET",
    "/api/v1/jobs/{job_id}",
    "One job with its state transitions",
    responses={200: "OK", 404: "no such job (job_not_found)"},
)
async def job(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    if not JOB_ID.match(job_id):
        raise BadRequest("a job id is the request event's id: 64 lowercase hex digits")
    return ok({"job": await request.app[NODE].dvm.job(job_id)})
