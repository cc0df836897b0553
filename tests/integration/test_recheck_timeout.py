"""`recheck` past network.recheck_timeout answers 504 with a message (it was a 500), and the check goes on:
the model is still seeded and libtorrent's check completes. A 32 MiB model against a 1 ms limit: the re-hash
and the alert's trip back to the loop cannot both happen within it."""

from __future__ import annotations

import asyncio

import pytest
from ggufgen import make_sized_gguf
from nodes import share

from silnode.api import make_app

pytestmark = pytest.mark.timeout(180)


async def test_recheck_past_its_limit_answers_504(make_node, tmp_path, aiohttp_client):
    model = make_sized_gguf(tmp_path / "big.gguf", 32 << 20)
    node = await make_node("a", **{"network.recheck_timeout": 0.001})
    shared = await share(node, model, "alice/big")
    client = await aiohttp_client(make_app(node))
    auth = {"Authorization": f"Bearer {node.config.token_file.read_text().strip()}"}

    r = await client.post("/api/v1/models/alice/big/recheck", headers=auth)
    body = await r.json()
    assert r.status == 504, body
    assert body["code"] == "recheck_timeout" and "network.recheck_timeout" in body["error"]
    assert "goes on in the background" in body["error"] and body["hint"]

    tid = shared["infohash"]
    assert node.distribution.is_seeding("alice/big")
    states = set()
    for _ in range(2400):  # a hang guard, not a speed limit: the check finishes and the model seeds on
        st = node.distribution.session.status(tid)
        states.add(st.state)
        if st.state == "seeding" and st.progress == 1.0:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"the recheck never finished: {states}")
