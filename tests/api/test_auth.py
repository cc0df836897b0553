"""The auth table (api/security.py, README "API access"), row by row, on the real app; then scoped tokens
against real daemon processes bound to a non-loopback address."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from silnode.api import make_app
from silnode.api.security import set_payment_verifier
from silnode.config import load_config
from silnode.home import TokenStore
from silnode.node import Node
from tests.daemons import run_cli, start_daemon, stop_daemon

pytestmark = pytest.mark.timeout(240)

CREDS = ("none", "admin", "inference", "named_admin", "made_up")
NOPE = "/nonexistent/dir/model.gguf"

# (method, path, {credential: status on a loopback bind}, {credential: status on a 0.0.0.0 bind})
ALL_200 = dict.fromkeys(CREDS, 200)
TABLE = [
    ("GET", "/api/v1/health", ALL_200, ALL_200),
    (
        "GET",
        "/api/v1/models",
        ALL_200,
        {"none": 401, "admin": 200, "inference": 403, "named_admin": 200, "made_up": 401},
    ),
    ("GET", "/metrics", ALL_200, {"none": 401, "admin": 200, "inference": 403, "named_admin": 200, "made_up": 401}),
    ("GET", "/v1/models", ALL_200, {"none": 401, "admin": 200, "inference": 200, "named_admin": 200, "made_up": 401}),
    (
        "POST",
        "/api/v1/gc",
        {"none": 401, "admin": 200, "inference": 403, "named_admin": 200, "made_up": 401},
        {"none": 401, "admin": 200, "inference": 403, "named_admin": 200, "made_up": 401},
    ),
    (
        "GET",
        "/api/v1/tokens",
        {"none": 401, "admin": 200, "inference": 403, "named_admin": 200, "made_up": 401},
        {"none": 401, "admin": 200, "inference": 403, "named_admin": 200, "made_up": 401},
    ),
    (  # a path argument needs admin (who then gets the honest 404 for a missing file)
        "GET",
        f"/api/v1/inspect?model={NOPE}",
        {"none": 401, "admin": 404, "inference": 403, "named_admin": 404, "made_up": 401},
        {"none": 401, "admin": 404, "inference": 403, "named_admin": 404, "made_up": 401},
    ),
    (  # a store name does not (a missing one is a 404 for anyone who may read)
        "GET",
        "/api/v1/inspect?model=org/missing",
        {"none": 404, "admin": 404, "inference": 404, "named_admin": 404, "made_up": 404},
        {"none": 401, "admin": 404, "inference": 403, "named_admin": 404, "made_up": 401},
    ),
]


async def _client(clean_env, aiohttp_client, bind: str):
    cfg = load_config(clean_env, overrides={"daemon.bind_address": bind, "daemon.port": 0})
    node = Node(cfg)
    await node.start()
    app = make_app(node)
    client = await aiohttp_client(app)
    store = TokenStore.for_config(cfg)
    headers = {
        "none": {},
        "admin": {"Authorization": f"Bearer {cfg.token_file.read_text().strip()}"},
        "inference": {"Authorization": f"Bearer {store.create('inference', 'laptop')[1]}"},
        "named_admin": {"Authorization": f"Bearer {store.create('admin', 'ops')[1]}"},
        "made_up": {"Authorization": "Bearer sk-anything-an-openai-client-sends"},
    }
    return node, app, client, headers


@pytest.mark.parametrize("bind", ["127.0.0.1", "0.0.0.0"])
async def test_the_auth_table_row_by_row(clean_env, aiohttp_client, bind):
    node, _app, client, headers = await _client(clean_env, aiohttp_client, bind)
    try:
        seen, want = {}, {}
        for method, path, on_loopback, elsewhere in TABLE:
            expected = on_loopback if bind == "127.0.0.1" else elsewhere
            for cred in CREDS:
                body = {} if method == "POST" else None
                r = await client.request(method, path, headers=headers[cred], json=body)
                seen[(path, cred)] = r.status
                want[(path, cred)] = expected[cred]
        assert seen == want
    finally:
        await node.stop()


async def test_refusals_say_why(clean_env, aiohttp_client):
    node, _app, client, headers = await _client(clean_env, aiohttp_client, "0.0.0.0")
    try:
        r = await client.delete("/api/v1/models/org/x", headers=headers["inference"])
        body = await r.json()
        assert r.status == 403 and body["code"] == "forbidden"
        assert "'laptop' has inference scope" in body["error"] and "admin token" in body["error"]
        r = await client.get("/api/v1/models")
        assert r.status == 401 and (await r.json())["error"] == "GET /api/v1/models needs the admin token"
        r = await client.post("/v1/chat/completions", json={})
        err = (await r.json())["error"]  # the OpenAI shape on /v1
        assert (
            r.status == 401 and err["type"] == "authentication_error" and "inference or admin token" in err["message"]
        )
        r = await client.get("/v1/models", headers=headers["made_up"])
        assert r.status == 401 and "no such token, or it was revoked" in (await r.json())["error"]["message"]
    finally:
        await node.stop()


async def test_a_revoked_token_is_refused_at_once(clean_env, aiohttp_client):
    node, _app, client, headers = await _client(clean_env, aiohttp_client, "0.0.0.0")
    try:
        assert (await client.get("/v1/models", headers=headers["inference"])).status == 200
        TokenStore.for_config(node.config).revoke("laptop")  # as `silnode tokens revoke` does, beside the daemon
        assert (await client.get("/v1/models", headers=headers["inference"])).status == 401
    finally:
        await node.stop()


async def test_token_rest_create_list_revoke(clean_env, aiohttp_client):
    node, _app, client, headers = await _client(clean_env, aiohttp_client, "127.0.0.1")
    admin = headers["admin"]
    try:
        r = await client.post("/api/v1/tokens", json={"scope": "inference", "name": "phone"}, headers=admin)
        made = (await r.json())["token"]
        assert r.status == 201 and made["token"].startswith("sil_") and made["scope"] == "inference"
        listed = (await (await client.get("/api/v1/tokens", headers=admin)).json())["tokens"]
        assert sorted(t["name"] for t in listed) == ["laptop", "ops", "phone"]
        assert all(set(t) == {"id", "name", "scope", "created"} for t in listed)  # never a token or its hash
        raw = node.config.home.joinpath("tokens.json").read_text()
        assert made["token"] not in raw and node.config.home.joinpath("tokens.json").stat().st_mode & 0o777 == 0o600
        r = await client.post("/api/v1/tokens", json={"scope": "root"}, headers=admin)
        assert r.status == 400
        r = await client.post("/api/v1/tokens", json={"scope": "inference", "name": "phone"}, headers=admin)
        assert r.status == 409
        r = await client.delete(f"/api/v1/tokens/{made['id']}", headers=admin)
        assert r.status == 200 and (await r.json())["revoked"]["name"] == "phone"
        assert (await client.delete("/api/v1/tokens/phone", headers=admin)).status == 404
    finally:
        await node.stop()


async def test_an_ecash_paid_request_counts_as_inference_scope(clean_env, aiohttp_client):
    node, app, client, _headers = await _client(clean_env, aiohttp_client, "0.0.0.0")
    try:
        r = await client.get("/v1/models", headers={"X-Cashu": "cashuAabc"})
        assert r.status == 401 and "takes no ecash" in (await r.json())["error"]["message"]
        seen = []

        async def verifier(request):  # the payments service's role: accept one token, refuse the rest
            seen.append(request.headers["X-Cashu"])
            return "proof-1" if request.headers["X-Cashu"] == "cashuAgood" else None

        set_payment_verifier(app, verifier)
        assert (await client.get("/v1/models", headers={"X-Cashu": "cashuAgood"})).status == 200
        assert (await client.get("/v1/models", headers={"X-Cashu": "cashuAbad"})).status == 401
        assert (await client.get("/api/v1/models", headers={"X-Cashu": "cashuAgood"})).status == 401  # /v1 only
        assert seen == ["cashuAgood", "cashuAbad"]
    finally:
        await node.stop()


# ------------------------------------------------------------------ real daemons, non-loopback bind


def _call(url: str, method: str = "GET", token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_inference_token_chats_but_cannot_delete_import_or_stop_a_daemon(clean_env, tiny_gguf):
    d = start_daemon(clean_env, "--bind", "0.0.0.0")
    try:
        made = json.loads(
            run_cli(clean_env, "tokens", "create", "--scope", "inference", "--name", "laptop", "--json").stdout
        )
        inf, admin = made["token"], d.token
        status, body = _call(
            f"{d.url}/api/v1/models/import", "POST", admin, {"path": str(tiny_gguf), "name": "org/tiny", "wait": True}
        )
        assert status == 200, body

        assert _call(f"{d.url}/v1/models", token=inf)[0] == 200
        assert _call(f"{d.url}/v1/models")[0] == 401  # no credential off loopback
        for method, path, payload in (
            ("DELETE", "/api/v1/models/org/tiny", None),
            ("POST", "/api/v1/models/import", {"path": str(tiny_gguf), "name": "org/again"}),
            ("POST", "/api/v1/admin/shutdown", {}),
            ("GET", f"/api/v1/inspect?model={tiny_gguf}", None),
        ):
            status, body = _call(f"{d.url}{path}", method, inf, payload)
            assert status == 403 and body["code"] == "forbidden" and "inference scope" in body["error"], (path, body)
        assert d.proc.poll() is None
        assert [m["name"] for m in _call(f"{d.url}/api/v1/models", token=admin)[1]["models"]] == ["org/tiny"]

        status, body = _call(f"{d.url}/api/v1/inspect?model={tiny_gguf}", token=admin)
        assert status == 200 and body["inspect"]["gguf"]["arch"] == "llama"
        assert _call(f"{d.url}/api/v1/models/org/tiny", "DELETE", admin)[0] == 200

        listed = json.loads(run_cli(clean_env, "tokens", "list", "--json").stdout)["tokens"]
        assert [t["name"] for t in listed] == ["laptop"]
        run_cli(clean_env, "tokens", "revoke", "laptop")
        assert _call(f"{d.url}/v1/models", token=inf)[0] == 401  # the running daemon sees the revocation

        assert _call(f"{d.url}/api/v1/admin/shutdown", "POST", admin, {})[0] == 202
        assert d.proc.wait(30) == 0
    finally:
        stop_daemon(d)


def test_inspect_with_a_path_needs_admin_on_a_loopback_daemon(clean_env, tmp_path):
    secret = tmp_path / "not-yours.gguf"
    secret.write_bytes(b"GGUF" + b"\0" * 60)
    d = start_daemon(clean_env)
    try:
        status, body = _call(f"{d.url}/api/v1/inspect?model={secret}")
        assert status == 401 and body["error"] == "GET /api/v1/inspect needs the admin token"
        status, body = _call(f"{d.url}/api/v1/inspect?model={secret}", token=d.token)
        assert status == 400 and body["code"] == "invalid_gguf"  # admin gets the file read
    finally:
        stop_daemon(d)
