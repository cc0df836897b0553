"""`share hf://` (and `get` of a seed-catalog model, the same task path) reports progress and can be cancelled
by the user: POST /api/v1/tasks/{id}/cancel ends it in state "cancelled" while bytes still flow, nothing half
done reaches the store or stays in the HF cache, and the next try completes. Real huggingface_hub against a
local fake Hub on a slow link (64 KiB per 50 ms)."""

from __future__ import annotations

import asyncio

import pytest
from ggufgen import make_sized_gguf

from silnode.api import make_app

pytestmark = pytest.mark.timeout(240)

SIZE = 16 << 20
REF = "hf://org/Slow-GGUF/slow-Q4_K_M.gguf"
COMMIT = "e" * 40
PATH = f"/org/Slow-GGUF/resolve/{COMMIT}/slow-Q4_K_M.gguf"  # what huggingface_hub GETs: pinned to the commit


async def poll(client, tid: str, until, what: str, timeout: float = 180.0) -> dict:
    """A hang guard, not a speed limit."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        t = (await (await client.get(f"/api/v1/tasks/{tid}")).json())["task"]
        if until(t):
            return t
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what}: {t}")
        await asyncio.sleep(0.05)


async def test_cancel_an_hf_download_then_resume_it(make_node, online_hub, aiohttp_client, tmp_path):
    data = make_sized_gguf(tmp_path / "slow.gguf", SIZE).read_bytes()  # a valid GGUF: the store checks it
    size = len(data)
    online_hub.publish("org/Slow-GGUF", COMMIT, {"slow-Q4_K_M.gguf": data})
    online_hub.slow[PATH] = 0.05
    node = await make_node("a")
    client = await aiohttp_client(make_app(node))
    auth = {"Authorization": f"Bearer {node.config.token_file.read_text().strip()}"}

    r = await client.post("/api/v1/models/share", json={"source": REF, "wait": False}, headers=auth)
    assert r.status == 202
    tid = (await r.json())["task"]["id"]
    t = await poll(client, tid, lambda t: t["done_bytes"] > 0, "progress")
    assert t["state"] == "running" and t["total_bytes"] == size and t["done_bytes"] < size

    r = await client.post(f"/api/v1/tasks/{tid}/cancel", headers=auth)
    assert r.status == 200 and (await r.json())["task"]["cancelling"] is True
    t = await poll(client, tid, lambda t: t["state"] != "running", "the cancel")
    assert t["state"] == "cancelled" and t["error"]["code"] == "cancelled", t
    assert "cancelled by the user" in t["error"]["error"]
    assert online_hub.served[PATH] < size  # it stopped in the middle
    assert not node.store.exists("org/slow")

    r = await client.post(f"/api/v1/tasks/{tid}/cancel", headers=auth)
    assert r.status == 409 and (await r.json())["code"] == "conflict"  # over: nothing to cancel
    r = await client.post("/api/v1/tasks/nope/cancel", headers=auth)
    assert r.status == 404
    r = await client.post(f"/api/v1/tasks/{tid}/cancel")  # admin only
    assert r.status == 401

    online_hub.slow.pop(PATH)
    r = await client.post("/api/v1/models/share", json={"source": REF, "wait": False}, headers=auth)
    tid = (await r.json())["task"]["id"]
    t = await poll(client, tid, lambda t: t["state"] != "running", "the second try")
    assert t["state"] == "done", t["error"]
    assert node.store.exists(t["result"]["name"])
    # huggingface_hub 2.x downloads into a file of its own per try and deletes it when a try fails: a cancel
    # leaves no partial file behind (and the next try starts from byte 0)
    assert not list((tmp_path / "hf").rglob("*.incomplete"))
