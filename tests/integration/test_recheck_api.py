"""POST /api/v1/models/{org}/{model}/recheck: libtorrent re-hashes a seeded model's pieces and says whether
they are complete. A byte flipped on disk makes it incomplete; a model that is not seeded is a 404."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from nodes import share

from silnode.api import make_app

pytestmark = pytest.mark.timeout(180)


async def test_recheck_through_rest_finds_damage(make_node, tiny_q8, tmp_path, aiohttp_client):
    tiny_q8 = Path(shutil.copy(tiny_q8, tmp_path / tiny_q8.name))  # the store hardlinks: damage a private copy
    node = await make_node("a")
    shared = await share(node, tiny_q8, "alice/q8")
    client = await aiohttp_client(make_app(node))
    auth = {"Authorization": f"Bearer {node.config.token_file.read_text().strip()}"}

    r = await client.post("/api/v1/models/alice/q8/recheck", headers=auth)
    body = await r.json()
    assert r.status == 200, body
    assert body["infohash"] == shared["infohash"] and body["complete"] is True and body["progress"] == 1.0

    stored = node.store.model_dir("alice/q8") / tiny_q8.name
    raw = bytearray(stored.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    stored.write_bytes(bytes(raw))
    r = await client.post("/api/v1/models/alice/q8/recheck", headers=auth)
    body = await r.json()
    assert r.status == 200 and body["complete"] is False and 0 <= body["progress"] < 1.0, body

    r = await client.post("/api/v1/models/alice/nothing/recheck", headers=auth)
    assert r.status == 404 and (await r.json())["code"] == "not_found"
    r = await client.post("/api/v1/models/alice/q8/recheck")  # mutating: the token is needed
    assert r.status == 401
