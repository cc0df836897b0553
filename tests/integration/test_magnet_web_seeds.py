"""A magnet's ws= URLs come from whoever made the magnet: the node uses them only through the web-seed gate
(silnode/webseed_gate.py), which refuses a loopback, link-local or private address. One that points at
127.0.0.1 gets no request from the downloading node, which still gets the model from its peer; the same URL
typed by the user (--web-seed) is trusted and serves bytes (the control case, so the test can fail)."""

from __future__ import annotations

import pytest
from nodes import big_gguf, get, peer_of, sha256
from origin import Origin

pytestmark = pytest.mark.timeout(180)


async def test_a_magnets_loopback_web_seed_is_never_contacted(make_node, tmp_path):
    src = big_gguf(tmp_path / "w.gguf", 8 << 20, seed=7)
    async with Origin(src, cap=64 << 20) as origin:  # paced handler: it counts what it serves
        a = await make_node("a")
        task = a.models.share("alice/w", path=str(src), license="mit", web_seeds=(origin.url,))
        await a.tasks.wait(task)
        magnet = task.result["magnet"]
        assert "ws=" in magnet  # the origin travels in the magnet

        b = await make_node("b")
        t = await get(b, magnet, peers=(peer_of(a),))
        assert t.state == "done", t.error
        assert b.store.read_manifest("alice/w").to_json()["files"][0]["sha256"] == sha256(src)
        assert origin.served_bytes == 0, "a web seed from a magnet reached a loopback address"

        c = await make_node("c")  # control: the user types the same URL, and no peer is given
        t = await get(c, magnet.split("&ws=")[0], web_seeds=(origin.url,))
        assert t.state == "done", t.error
        assert origin.served_bytes >= src.stat().st_size
