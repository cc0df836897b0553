"""One scrape of /metrics shows the whole node: after a real share -> get between two nodes over loopback,
the seeder's series count the bytes it sent and the getter's the bytes it received, next to the store."""

from __future__ import annotations

import re

import pytest
from nodes import get, share

from silnode.api import make_app

pytestmark = pytest.mark.timeout(300)


def series(text: str, name: str) -> float:
    m = re.search(rf"^silnode_{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert m, f"silnode_{name} missing from /metrics"
    return float(m.group(1))


async def test_metrics_carry_transfers_and_the_store(make_node, tiny_gguf, aiohttp_client):
    a = await make_node("a")
    b = await make_node("b")
    shared = await share(a, tiny_gguf, "alice/tiny")
    t = await get(b, shared["magnet"])
    assert t.state == "done"
    size = tiny_gguf.stat().st_size

    for node, direction in ((a, "uploaded"), (b, "downloaded")):
        client = await aiohttp_client(make_app(node))
        r = await client.get("/metrics")
        assert r.status == 200
        text = await r.text()
        assert series(text, f"torrent_{direction}_bytes_total") >= size
        assert series(text, 'transfers{kind="seed",state="seeding"}') == 1
        assert series(text, "transfer_errors") == 0
        assert series(text, "store_models") == 1 and series(text, "store_bytes") >= size
        assert series(text, "store_free_bytes") > 0
        assert "# TYPE silnode_torrent_peers gauge" in text
