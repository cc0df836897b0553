"""The BitTorrent REST surface in-process: share, download (202), transfers, pause/resume/cancel, seeding."""

from __future__ import annotations

import asyncio

import pytest
from ggufgen import make_sized_gguf

from silnode.config import load_config
from silnode.node import Node

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def seeder(tmp_path):
    cfg = load_config(tmp_path / "seeder", overrides={"daemon.port": 0, "network.upload_rate_limit": 1 << 20})
    node = Node(cfg)
    await node.start()
    yield node
    await node.stop()


async def poll(api, tid, states, timeout=60):
    for _ in range(int(timeout / 0.05)):
        t = (await (await api.get(f"/api/v1/transfers/{tid}")).json())["transfer"]
        if t["state"] in states:
            return t
        await asyncio.sleep(0.05)
    raise AssertionError(f"transfer never reached {states}: {t}")


async def test_share_download_pause_resume_cancel_seeding(api, node, seeder, tmp_path, tiny_gguf):
    src = make_sized_gguf(tmp_path / "m.gguf", 8 << 20, seed=21)
    task = seeder.models.share("alice/m", path=str(src), license="mit")
    await seeder.tasks.wait(task)
    magnet = task.result["magnet"]

    r = await api.post("/api/v1/models/download", json={"target": magnet}, headers=api.auth)
    assert r.status == 202, await r.text()
    t = (await r.json())["transfer"]
    assert t["id"] == task.result["infohash"] and t["kind"] == "download"
    await poll(api, t["id"], ("downloading",))

    r = await api.post(f"/api/v1/transfers/{t['id'][:12]}/pause", headers=api.auth)
    assert r.status == 200 and (await r.json())["transfer"]["state"] == "paused"
    r = await api.post(f"/api/v1/transfers/{t['id']}/pause", headers=api.auth)
    assert r.status == 409  # not running
    r = await api.post(f"/api/v1/transfers/{t['id']}/resume", headers=api.auth)
    assert (await r.json())["transfer"]["state"] == "downloading"
    r = await api.post(f"/api/v1/transfers/{t['id']}/cancel", headers=api.auth)
    assert r.status == 200 and (await r.json())["transfer"]["state"] == "cancelled"
    assert (await api.get(f"/api/v1/transfers/{t['id']}")).status == 404
    assert list(node.store.partial_dir.iterdir()) == []

    # again, to the end: it becomes a seed of the downloader
    r = await api.post("/api/v1/models/download", json={"target": magnet, "name": "bob/m"}, headers=api.auth)
    done = await poll(api, (await r.json())["transfer"]["id"], ("seeding",))
    assert done["kind"] == "seed" and done["name"] == "bob/m"
    st = await (await api.get("/api/v1/status")).json()
    assert st["torrents"]["seeding"] == 1 and st["torrents"]["listen_port"] > 0

    r = await api.post("/api/v1/models/bob/m/seeding", json={"enabled": False}, headers=api.auth)
    assert (await r.json())["seeding"] is False
    assert (await (await api.get("/api/v1/transfers")).json())["transfers"] == []
    r = await api.post("/api/v1/models/bob/m/seeding", json={"enabled": True}, headers=api.auth)
    assert len((await (await api.get("/api/v1/transfers")).json())["transfers"]) == 1

    # share a model already in the store
    await api.post(
        "/api/v1/models/import", json={"path": str(tiny_gguf), "name": "org/t", "wait": True}, headers=api.auth
    )
    r = await api.post("/api/v1/models/share", json={"name": "org/t"}, headers=api.auth)
    body = await r.json()
    assert r.status == 200 and body["task"]["result"]["magnet"].startswith("magnet:?")


@pytest.mark.parametrize(
    "body, code",
    [
        ({"target": "not-a-magnet"}, "bad_torrent"),
        ({"target": "magnet:?dn=x"}, "bad_torrent"),
        ({"target": "ab" * 20, "peers": ["nohostport"]}, "bad_torrent"),
        ({"target": "ab" * 20, "name": "../x"}, "invalid_name"),
        ({"target": "ab" * 20, "peers": "1.2.3.4:5"}, "bad_request"),
        ({}, "bad_request"),
    ],
)
async def test_bad_downloads(api, body, code):
    r = await api.post("/api/v1/models/download", json=body, headers=api.auth)
    assert r.status == 400 and (await r.json())["code"] == code


async def test_share_unknown_model_404(api):
    r = await api.post("/api/v1/models/share", json={"name": "no/such"}, headers=api.auth)
    assert r.status == 404
    r = await api.post("/api/v1/models/share", json={"source": "hf://x"}, headers=api.auth)
    assert r.status == 400
