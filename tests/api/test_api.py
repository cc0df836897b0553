"""The /api/v1 surface in-process (aiohttp test server on loopback, the real app and node)."""

from __future__ import annotations

import json
import shutil

import pytest

from silnode.api import openapi_document
from silnode.api.base import ROUTES


async def test_health_and_status(api):
    r = await api.get("/api/v1/health")
    assert r.status == 200
    body = await r.json()
    assert body["ok"] is True and body["version"] and body["pid"]
    st = await (await api.get("/api/v1/status")).json()
    assert (
        st["store"]["models"] == 0
        and st["uptime_s"] >= 0
        and st["services"]
        == [
            "store",
            "tasks",
            "webseed-gate",
            "torrent-engine",
            "distribution",
            "discovery",
            "serving",
            "models",
            "payments",
            "dvm",
        ]
    )
    assert st["dvm"]["state"] == "off" and "no identity" in st["dvm"]["reason"]  # no keys: selling says so


async def test_import_list_show_delete(api, tiny_gguf):
    r = await api.post(
        "/api/v1/models/import",
        json={"path": str(tiny_gguf), "name": "org/tiny", "license": "mit", "wait": True},
        headers=api.auth,
    )
    assert r.status == 200, await r.text()
    task = (await r.json())["task"]
    assert task["state"] == "done" and task["result"]["name"] == "org/tiny"
    models = (await (await api.get("/api/v1/models")).json())["models"]
    assert [m["name"] for m in models] == ["org/tiny"] and models[0]["arch"] == "llama"
    m = (await (await api.get("/api/v1/models/org/tiny")).json())["model"]
    assert m["files"][0]["sha256"] and m["license"] == "mit"
    st = await (await api.get("/api/v1/status")).json()
    assert st["store"]["models"] == 1 and st["store"]["bytes"] >= tiny_gguf.stat().st_size
    r = await api.delete("/api/v1/models/org/tiny", headers=api.auth)
    assert r.status == 200
    r = await api.get("/api/v1/models/org/tiny")
    assert r.status == 404 and (await r.json())["code"] == "model_not_found"


async def test_import_async_task(api, tiny_gguf):
    r = await api.post("/api/v1/models/import", json={"path": str(tiny_gguf), "name": "org/t2"}, headers=api.auth)
    assert r.status == 202
    tid = (await r.json())["task"]["id"]
    for _ in range(200):
        t = (await (await api.get(f"/api/v1/tasks/{tid}")).json())["task"]
        if t["state"] != "running":
            break
        import asyncio

        await asyncio.sleep(0.02)
    assert t["state"] == "done" and t["done_bytes"] == t["total_bytes"] == tiny_gguf.stat().st_size


async def test_import_errors_travel_in_envelope(api, tmp_path, tiny_gguf):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" * 10)
    r = await api.post(
        "/api/v1/models/import", json={"path": str(bad), "name": "org/bad", "wait": True}, headers=api.auth
    )
    assert r.status == 400 and (await r.json())["code"] == "invalid_gguf"
    await api.post(
        "/api/v1/models/import", json={"path": str(tiny_gguf), "name": "org/x", "wait": True}, headers=api.auth
    )
    r = await api.post(
        "/api/v1/models/import", json={"path": str(tiny_gguf), "name": "org/x", "wait": True}, headers=api.auth
    )
    assert r.status == 409 and (await r.json())["code"] == "model_exists"


async def test_verify_and_gc(api, node, tiny_q8):
    await api.post(
        "/api/v1/models/import",
        json={"path": str(tiny_q8), "name": "org/q", "link": False, "wait": True},
        headers=api.auth,
    )
    r = await api.post("/api/v1/verify", json={"wait": True}, headers=api.auth)
    assert (await r.json())["task"]["result"]["ok"] is True
    f = node.store.models_dir / "org" / "q" / tiny_q8.name
    data = bytearray(f.read_bytes())
    data[-10] ^= 0xFF
    f.write_bytes(bytes(data))
    res = (await (await api.post("/api/v1/verify", json={"name": "org/q", "wait": True}, headers=api.auth)).json())[
        "task"
    ]["result"]
    assert res["ok"] is False and res["models"][0]["files"][0]["reason"] == "sha256 mismatch"
    gc = await (await api.post("/api/v1/gc", headers=api.auth)).json()
    assert gc["freed"] == len(data)


# ------------------------------------------------------------------ auth, Host, Origin


async def test_mutations_need_token(api, tiny_gguf):
    body = {"path": str(tiny_gguf), "name": "org/x"}
    r = await api.post("/api/v1/models/import", json=body)
    assert r.status == 401 and (await r.json())["code"] == "unauthorized"
    r = await api.post("/api/v1/models/import", json=body, headers={"Authorization": "Bearer wrong"})
    assert r.status == 401
    r = await api.post("/api/v1/admin/shutdown", headers={"Authorization": "Basic abc"})
    assert r.status == 401
    r = await api.delete("/api/v1/models/org/x")
    assert r.status == 401
    assert (await api.get("/api/v1/models")).status == 200  # reads are open on loopback


async def test_host_and_origin_checks(api):
    r = await api.get("/api/v1/health", headers={"Host": "evil.example:8737"})
    assert r.status == 403 and (await r.json())["code"] == "forbidden"
    r = await api.get("/api/v1/health", headers={"Host": "localhost:8737"})
    assert r.status == 200
    r = await api.post("/api/v1/gc", headers={**api.auth, "Origin": "http://evil.example"})
    assert r.status == 403
    r = await api.get("/api/v1/health", headers={"Origin": "null"})
    assert r.status == 403
    r = await api.get("/api/v1/health", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status == 403
    r = await api.get("/api/v1/health", headers={"Origin": f"http://127.0.0.1:{api.port}"})
    assert r.status == 200
    assert "Access-Control-Allow-Origin" not in r.headers


async def test_non_loopback_bind_needs_token_everywhere(clean_env, aiohttp_client):
    from silnode.api import make_app
    from silnode.config import load_config
    from silnode.node import Node

    cfg = load_config(clean_env, overrides={"daemon.bind_address": "0.0.0.0", "daemon.port": 0})
    node = Node(cfg)
    await node.start()
    try:
        client = await aiohttp_client(make_app(node))
        assert (await client.get("/api/v1/models")).status == 401
        assert (await client.get("/api/v1/health")).status == 200  # liveness stays open (the auth table)
        tok = cfg.token_file.read_text().strip()
        r = await client.get("/api/v1/models", headers={"Authorization": f"Bearer {tok}", "Host": "node.lan:8737"})
        assert r.status == 200
    finally:
        await node.stop()


async def test_token_file_is_private(api, node):
    assert node.config.token_file.stat().st_mode & 0o777 == 0o600


# ------------------------------------------------------------------ bad input never gives a 500


BAD_BODIES = [
    b"{",
    b"[]",
    b"null",
    b"42",
    b'"x"',
    b"\xff\xfe",
    b'{"path": 1, "name": "a/b"}',
    b'{"name": "a/b"}',
    b'{"path": "/x"}',
    b'{"path": "/nonexistent.gguf", "name": "a/b", "wait": true}',
    b'{"path": "/etc", "name": "a/b", "wait": true}',
    b'{"path": "/etc/passwd", "name": "../x"}',
    b'{"path": "/x", "name": "a/b", "bogus": 1}',
    b'{"from": "nowhere"}',
    b'{"from": "hf", "path": "/x"}',
    b'{"path": "/x\\u0000y", "name": "a/b"}',
    b'{"path": "/x", "name": "a/b", "wait": "yes"}',
    b'{"from": "hf", "pattern": "zzz", "wait": true}',
    json.dumps({"path": "x" * 5000, "name": "a/b"}).encode(),
]


@pytest.mark.parametrize("body", BAD_BODIES)
async def test_bad_import_bodies_are_4xx(api, body):
    r = await api.post("/api/v1/models/import", data=body, headers={**api.auth, "Content-Type": "application/json"})
    assert 400 <= r.status < 500, (body, r.status, await r.text())
    env = await r.json()
    assert env["ok"] is False and env["status"] == r.status and env["error"] and env["code"]


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/api/v1/models/a/..%2F..%2Fetc"),
        ("GET", "/api/v1/models/a%00/b"),
        ("GET", "/api/v1/models/.a/b"),
        ("DELETE", "/api/v1/models/a/b"),
        ("GET", "/api/v1/tasks/nope"),
        ("GET", "/api/v1/nothing"),
        ("PUT", "/api/v1/models"),
        ("POST", "/api/v1/verify"),
        ("GET", "/api/v1/models/a"),
        ("POST", "/api/v1/gc"),
    ],
)
async def test_odd_paths_give_envelopes(api, method, path):
    r = await api.request(method, path, headers=api.auth, data=b"[1]" if method == "POST" else None)
    assert 400 <= r.status < 500, (path, r.status)
    env = await r.json()
    assert env["ok"] is False and env["code"]


async def test_body_too_large(api):
    import io

    r = await api.post(
        "/api/v1/models/import",
        data=io.BytesIO(b"{" + b" " * (2 << 20) + b"}"),
        headers={**api.auth, "Content-Type": "application/json"},
    )
    assert r.status == 413 and (await r.json())["code"] == "payload_too_large"


async def test_verify_unknown_model_404(api):
    r = await api.post("/api/v1/verify", json={"name": "no/such"}, headers=api.auth)
    assert r.status == 404


# ------------------------------------------------------------------ OpenAPI


async def test_openapi_covers_every_route(api):
    doc = await (await api.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    from silnode.api import openai

    registered = {(r.method.lower(), r.path) for r in ROUTES} | {(m.lower(), p) for m, p, _, _ in openai.ROUTES}
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert registered == documented
    app_routes = {(r.method.lower(), r.resource.canonical) for r in api.app.router.routes() if r.method != "HEAD"}
    assert app_routes == documented
    for ops in doc["paths"].values():
        for m, op in ops.items():
            assert op["summary"] and op["responses"]
            if m in ("post", "delete"):
                assert op["security"] == [{"bearer": []}]
    assert doc == openapi_document()


async def test_admin_shutdown_sets_flag(api, node):
    r = await api.post("/api/v1/admin/shutdown", headers=api.auth)
    assert r.status == 202
    import asyncio

    await asyncio.wait_for(node.shutdown_requested.wait(), 5)


async def test_import_from_hf_cache(api, tmp_path, tiny_gguf, monkeypatch):
    """An HF cache laid out as huggingface_hub lays it out (blobs + snapshot symlinks) imports by blob."""
    from silnode.store import sha256_file

    digest = sha256_file(tiny_gguf)
    cache = tmp_path / "hf" / "hub" / "models--acme--tiny-GGUF"
    blob = cache / "blobs" / digest
    blob.parent.mkdir(parents=True)
    shutil.copy(tiny_gguf, blob)
    snap = cache / "snapshots" / ("c" * 40)
    snap.mkdir(parents=True)
    (snap / "tiny-q8.gguf").symlink_to(f"../../blobs/{digest}")
    (cache / "refs").mkdir()
    (cache / "refs" / "main").write_text("c" * 40)
    r = await api.post("/api/v1/models/import", json={"from": "hf", "wait": True}, headers=api.auth)
    assert r.status == 200, await r.text()
    result = (await r.json())["task"]["result"]
    assert result["skipped"] == []
    [m] = result["imported"]
    assert m["name"] == "acme/tiny"
    manifest = (await (await api.get("/api/v1/models/acme/tiny")).json())["model"]
    assert manifest["files"][0]["sha256"] == digest
    assert manifest["source"]["type"] == "hf" and manifest["source"]["repo_id"] == "acme/tiny-GGUF"
    # the store hardlinked the blob (same filesystem), so no second copy of the bytes exists
    stored = tmp_path / "home" / "models" / "acme" / "tiny" / "tiny-q8.gguf"
    assert stored.stat().st_ino == blob.stat().st_ino
    # importing again skips it
    r = await api.post("/api/v1/models/import", json={"from": "hf", "wait": True}, headers=api.auth)
    assert (await r.json())["task"]["result"]["skipped"][0]["reason"] == "already in the store"


async def test_identity_route(api, node):
    r = await api.get("/api/v1/identity")
    assert r.status == 404 and (await r.json())["code"] == "no_identity"
    from silnode.identity import FAST_TEST_KDF, Identity, Keystore

    ident = Identity.generate()
    Keystore(node.config.home / "identity.enc", kdf=FAST_TEST_KDF).save(ident, "pw-for-tests-only-123")
    body = (await (await api.get("/api/v1/identity")).json())["identity"]
    assert body["npub"] == ident.npub and body["unlocked"] is False  # locked: public header only
    node.identity = ident
    body = (await (await api.get("/api/v1/identity")).json())["identity"]
    assert body["unlocked"] is True and set(body) == {
        "npub",
        "nostr_pubkey",
        "catalog_pubkey",
        "nostr_path",
        "catalog_path",
        "unlocked",
    }


async def test_inspect_route(api, tiny_gguf):
    await api.post(
        "/api/v1/models/import", json={"path": str(tiny_gguf), "name": "org/tiny", "wait": True}, headers=api.auth
    )
    body = (await (await api.get("/api/v1/inspect", params={"model": "org/tiny", "ctx": "512"})).json())["inspect"]
    assert body["gguf"]["arch"] == "llama" and body["fits"] is True and body["estimate"]["total_bytes"] > 0
    r = await api.get("/api/v1/inspect", params={"model": str(tiny_gguf)})
    assert r.status == 401 and "admin token" in (await r.json())["error"]  # a path argument needs admin
    r = await api.get("/api/v1/inspect", params={"model": str(tiny_gguf)}, headers=api.auth)
    by_path = (await r.json())["inspect"]
    assert by_path["gguf"] == body["gguf"]
    for params, status in (
        ({}, 400),
        ({"model": "no/such"}, 404),
        ({"model": "org/tiny", "ctx": "-1"}, 400),
        ({"model": "org/tiny", "ctx": "x"}, 400),
    ):
        r = await api.get("/api/v1/inspect", params=params)
        assert r.status == status, (params, await r.text())
    doc = await (await api.get("/api/v1/openapi.json")).json()
    names = {p["name"] for p in doc["paths"]["/api/v1/inspect"]["get"]["parameters"]}
    assert names == {"model", "ctx", "flash_attn"}
