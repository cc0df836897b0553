"""The daemon's HTTP surface: one aiohttp app, one error envelope, one OpenAPI document."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from silnode import __version__
from silnode.api import (
    openai,
    routes,  # noqa: F401  (registers every /api/v1 route)
)
from silnode.api.base import NODE, ROUTES, ok, route
from silnode.api.security import GUARD, Guard, guard_middleware, set_payment_verifier
from silnode.errors import SilnodeError
from silnode.home import ensure_token
from silnode.node import Node

log = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 400: "bad_request"}


def envelope(message: str, code: str, status: int) -> web.Response:
    return web.json_response({"ok": False, "error": message, "code": code, "status": status}, status=status)


_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    429: "rate_limit_error",
}
_OPENAI_CODES = {"model_not_loaded": "model_not_found", "context_overflow": "context_length_exceeded"}


def openai_error(
    request: web.Request,
    message: str,
    code: str,
    status: int,
    *,
    param: str | None = None,
    hint: str | None = None,
    retry_after: int | None = None,
) -> web.Response | None:
    """The same failure in OpenAI's shape, for the /v1 routes (OpenAI clients read error.message)."""
    if not request.path.startswith("/v1/"):
        return None
    text = f"{message} ({hint})" if hint else message
    body = {
        "error": {
            "message": text,
            "type": _OPENAI_TYPES.get(status, "server_error"),
            "param": param,
            "code": _OPENAI_CODES.get(code, code),
        }
    }
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return web.json_response(body, status=status, headers=headers)


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every failure leaves as the one JSON envelope; a bug is a logged 500 without internals."""
    try:
        return await handler(request)
    except SilnodeError as exc:
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, request.path, exc)
        retry_after = getattr(exc, "retry_after", None)
        # ecash for the caller (NUT-24): a 402's payment request, or a paid request's money back after a
        # failure; a header, as the payer's wallet expects it, and never in a log
        cashu = exc.details.pop("x_cashu", None)
        resp = _error_response(request, exc, retry_after)
        if cashu:
            resp.headers["X-Cashu"] = cashu
        return resp
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        return openai_error(request, exc.reason or code, code, exc.status) or envelope(
            exc.reason or code, code, exc.status
        )
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        message = "internal error (see the daemon log)"
        return openai_error(request, message, "internal", 500) or envelope(message, "internal", 500)


def _error_response(request: web.Request, exc: SilnodeError, retry_after: Any) -> web.Response:
    return openai_error(
        request,
        exc.message,
        exc.code,
        exc.status,
        param=exc.details.get("param"),
        hint=exc.hint,
        retry_after=retry_after,
    ) or web.json_response(
        exc.to_json(), status=exc.status, headers={"Retry-After": str(retry_after)} if retry_after else None
    )


def openapi_document() -> dict[str, Any]:
    error_schema = {
        "type": "object",
        "required": ["ok", "error", "code", "status"],
        "properties": {
            "ok": {"type": "boolean", "enum": [False]},
            "error": {"type": "string"},
            "code": {"type": "string"},
            "status": {"type": "integer"},
            "hint": {"type": "string"},
        },
    }
    paths: dict[str, Any] = {}
    for r in ROUTES:
        op: dict[str, Any] = {
            "summary": r.summary,
            "operationId": r.handler.__name__,
            "responses": {
                str(code): {
                    "description": text,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                    if code >= 400
                    else {"application/json": {"schema": {"type": "object"}}},
                }
                for code, text in r.responses.items()
            },
        }
        op["responses"].setdefault(
            "400",
            {
                "description": "bad input",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        )
        params = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in _path_params(r.path)
        ]
        for name, f in (r.query or {}).items():
            params.append(
                {
                    "name": name,
                    "in": "query",
                    "required": f.required,
                    "description": f.description,
                    "schema": {"type": f.type},
                }
            )
        if params:
            op["parameters"] = params
        if r.body is not None:
            props = {}
            for k, f in r.body.items():
                schema: dict[str, Any] = {"type": f.type, "description": f.description}
                if f.enum:
                    schema["enum"] = list(f.enum)
                props[k] = schema
            op["requestBody"] = {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": props,
                            "additionalProperties": False,
                            "required": [k for k, f in r.body.items() if f.required],
                        }
                    }
                },
            }
        if r.method in {"POST", "DELETE", "PUT", "PATCH"}:
            op["security"] = [{"bearer": []}]
            op["responses"].setdefault(
                "401",
                {
                    "description": "token missing or wrong",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            )
        paths.setdefault(r.path, {})[r.method.lower()] = op

    for method, path, handler, summary in openai.ROUTES:  # OpenAI's own schema applies; errors in its shape
        paths.setdefault(path, {})[method.lower()] = {
            "summary": summary,
            "operationId": handler.__name__,
            "tags": ["openai"],
            "responses": {"200": {"description": "OK"}, "400": {"description": "bad request (OpenAI error body)"}},
        }
        if method == "POST":  # the token is needed off loopback (on loopback, /v1 is open like Ollama's)
            paths[path]["post"]["security"] = [{"bearer": []}]
    return {
        "openapi": "3.0.3",
        "info": {"title": "silnode node API", "version": __version__},
        "servers": [{"url": "http://127.0.0.1:8737"}],
        "paths": paths,
        "components": {
            "schemas": {"Error": error_schema},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _path_params(path: str) -> list[str]:
    return re.findall(r"{(\w+)}", path)


@route("GET", "/api/v1/openapi.json", "This OpenAPI document")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


def make_app(node: Node) -> web.Application:
    token = ensure_token(node.config.token_file)
    guard = Guard(node.config, token)
    app = web.Application(
        middlewares=[error_middleware, guard_middleware(guard)], client_max_size=node.config.daemon.max_body_bytes
    )
    app[NODE] = node
    app[GUARD] = guard  # the dashboard's login routes issue and redeem its one-time links
    for r in ROUTES:
        app.router.add_route(r.method, r.path, r.handler)

    for method, path, handler, _ in openai.ROUTES:
        app.router.add_route(method, path, handler)
    http = getattr(getattr(node, "payments", None), "http", None)
    if http is not None and http.gate.ecash.allowed:  # ecash pays for one /v1 request (the table's "or ecash")
        set_payment_verifier(app, http.verify)
    return app


def runner_options(node: Node) -> dict[str, Any]:
    """What the daemon's AppRunner needs for slow clients: aiohttp closes a connection that has not sent a
    whole request within keepalive_timeout, counted from the connect (so a slow-loris that trickles headers
    is cut off too), and an idle keep-alive connection after the same time."""
    return {"keepalive_timeout": float(node.config.daemon.idle_timeout)}


__all__ = ["make_app", "runner_options", "openapi_document", "ok", "NODE"]
