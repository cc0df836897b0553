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
        a = await make_node("a", **{"network.upload_rate_limit": 1 << 20})  # slow: the origin has time to serve
        task = a.models.share("alice/w", path=str(src), license="mit", web_seeds=(origin.url,))
        await a.tasks.wait(task)
        magnet = task.result["magnet"]
        assert "ws=" in magnet  # the origin travels in the magnet

        b = await make_node("b")
        t = await get(b, magnet, peers=(peer_of(a),))
        assert t.state == "done", t.error
        assert b.store.read_manifest("alice/w").to_json()["files"][0]["sha256"] == sha256(src)
        assert origin.served_bytes == 0, "a web seed from a magnet reached a loopback address"

        # control: the same URL typed by the user is trusted and serves bytes. The metadata still comes from the
        # peer (a web seed cannot serve a magnet's info dict); A's magnet without its ws= is what c is given
        served = origin.served_bytes
        c = await make_node("c")
        t = await get(c, "&".join(p for p in magnet.split("&") if not p.startswith("ws=")), web_seeds=(origin.url,))
        assert t.state == "done", t.error
        assert origin.served_bytes > served, "a web seed the user typed served nothing"
