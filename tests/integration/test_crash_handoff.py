"""SIGKILL at each step between "all pieces in" and "done": after a restart the model is in the store
(seeding, one copy) or the partial download resumes and completes without fetching anything again."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from nodes import big_gguf, sha256, share

pytestmark = pytest.mark.timeout(300)

CHILD = Path(__file__).with_name("handoff_child.py")


@pytest.mark.parametrize("step", ["resume-saved", "sha256", "move", "placed", "state"])
async def test_sigkill_during_the_hand_off(make_node, tmp_path, step):
    src = big_gguf(tmp_path / "m.gguf", 4 << 20, seed=3)
    a = await make_node("a")
    shared = await share(a, src, "alice/m")
    target = shared["magnet"]  # its x.pe names the seeder
    home = tmp_path / "b"
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(CHILD), str(home), target, step],
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert proc.returncode == -9, (proc.stdout, proc.stderr[-3000:])
    await a.stop()  # nobody to fetch from: whatever completes after the restart had all its data already

    b = await make_node("b")
    dist = b.distribution
    deadline = asyncio.get_running_loop().time() + 60
    while not (b.store.exists("bob/m") and shared["infohash"] in dist.seeds):
        t = dist.transfers.get(shared["infohash"])
        assert t is None or t.state in ("downloading", "verifying", "done"), (t.state, t.error)
        assert asyncio.get_running_loop().time() < deadline, f"never completed after the kill at {step}"
        await asyncio.sleep(0.1)
    m = b.store.read_manifest("bob/m").to_json()
    assert m["files"][0]["sha256"] == sha256(src) and m["infohash"] == shared["infohash"]
    assert b.store.names() == ["bob/m"]  # one copy
    assert sorted(p.name for p in b.store.model_dir("bob/m").iterdir()) == [
        ".silnode.json",
        ".silnode.torrent",
        "m.gguf",
    ]
    assert not any(b.store.partial_dir.iterdir())
    assert not list((b.config.state_dir / "resume").iterdir())


async def test_a_download_resumed_after_a_restart_writes_the_same_torrent(make_node, tmp_path):
    """After a restart libtorrent's resume data holds only part of each merkle tree: the piece layers are
    completed from whatever levels it kept, and the .torrent is still the sharer's, bit for bit."""
    src = big_gguf(tmp_path / "m.gguf", 24 << 20, seed=8)
    a = await make_node("a", **{"network.upload_rate_limit": 4 << 20})
    shared = await share(a, src, "alice/m")
    b = await make_node("b")
    t = await b.distribution.download(shared["magnet"], force=True)
    deadline = asyncio.get_running_loop().time() + 60
    while not (t.state == "downloading" and b.distribution.session.status(t.id).progress >= 0.3):
        assert asyncio.get_running_loop().time() < deadline, "the download never got going"
        await asyncio.sleep(0.05)
    await b.stop()
    b2 = await make_node("b")
    t2 = b2.distribution.get(shared["infohash"])
    await asyncio.wait_for(b2.distribution.wait(t2.id), 120)
    assert (t2.state, t2.error) == ("done", None)
    original = (a.store.model_dir("alice/m") / ".silnode.torrent").read_bytes()
    assert (b2.store.model_dir("alice/m") / ".silnode.torrent").read_bytes() == original
