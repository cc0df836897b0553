"""Seeding limits hold across restarts: the counters persist and a model at its limit stays paused."""

from __future__ import annotations

import asyncio

import pytest
from nodes import get, share

pytestmark = pytest.mark.timeout(180)


async def test_ratio_limit_reached_stays_paused_after_restart(make_node, tiny_gguf):
    limits = {"network.seed_ratio_limit": 1.0}
    a = await make_node("a", **limits)
    shared = await share(a, tiny_gguf, "alice/tiny")
    tid = shared["infohash"]
    b = await make_node("b")
    t = await get(b, shared["magnet"], force=True)
    assert t.state == "done"  # a uploaded the whole model once: ratio 1.0, the limit
    deadline = asyncio.get_running_loop().time() + 60
    while not a.distribution.session.status(tid).paused:
        assert asyncio.get_running_loop().time() < deadline, "the seed was never paused at its ratio limit"
        await asyncio.sleep(0.2)
    stats = a.store.read_manifest("alice/tiny").to_json()["seed_stats"]
    assert stats["uploaded"] >= tiny_gguf.stat().st_size
    await a.stop()

    a2 = await make_node("a", **limits)
    assert a2.distribution.seeds == {tid: "alice/tiny"}
    assert a2.distribution.session.status(tid).paused
    assert a2.distribution.session.status(tid).all_time_upload >= tiny_gguf.stat().st_size
    row = next(r for r in a2.distribution.list() if r["id"] == tid)
    assert row["state"] == "paused"
