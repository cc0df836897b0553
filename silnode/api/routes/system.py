"""Node-wide: health, status, shutdown, hardware, and long-operation tasks."""

from __future__ import annotations

import asyncio

from aiohttp import web

from silnode.api.base import NODE, ok, route


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


@route(
    "GET",
    "/api/v1/hardware",
    "Devices (GPUs, CPU RAM) with total/free memory, which probe answered, and the probes that failed and why",
)
async def hardware(request: web.Request) -> web.Response:
    return ok({"hardware": await request.app[NODE].hardware()})
