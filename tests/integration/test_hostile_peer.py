"""A hostile peer cannot end a download. An evil peer seeds the same hybrid (v1+v2) torrent with altered bytes
next to an honest one; the download starts from a bare infohash (no piece layers up front), under a CPU hog
(the failure hid in timing). Before the fix about half of such runs under load ended for good with
libtorrent's "v1 and v2 hashes do not describe the same data" (bench/hostile_peer.py: the measured rates); now
every run completes with the right bytes. Repeated: one pass proves little."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess
import sys

import pytest
from nodes import big_gguf, get, peer_of, sha256, share

from silnode.torrent.create import DISABLE_V1_HASHES

pytestmark = pytest.mark.timeout(300)

REPEATS = 5

# busy-loops until its parent is gone, so a killed run leaves no hog behind
EVIL_IP = "127.0.0.2"
HOG = "import os\np = os.getppid()\nwhile os.getppid() == p:\n    pass"


@pytest.fixture(scope="module")
def cpu_hog():
    """One busy-looping process for the whole module: the race needs a loaded machine to show."""
    hog = subprocess.Popen([sys.executable, "-c", HOG])
    yield hog
    hog.kill()
    hog.wait()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return big_gguf(tmp_path_factory.mktemp("hostile") / "m.gguf", 16 << 20, seed=2)


async def _evil_seed(honest, name: str, src, where):
    """A libtorrent session that seeds ``name``'s torrent but serves altered bytes in every piece."""
    from silnode.torrent.events import TorrentChecked
    from silnode.torrent.session import TorrentSession

    torrent = (honest.store.model_dir(name) / ".silnode.torrent").read_bytes()
    where.mkdir()
    shutil.copy(src, where / src.name)
    # its own loopback address (all of 127/8 is loopback): libtorrent bans an IP address, and with both
    # peers on 127.0.0.1 banning the evil one would cut off the honest one too
    evil = TorrentSession(dataclasses.replace(honest.config.network, listen_address=EVIL_IP))
    await evil.start()
    # it checks its data once (a clean check), then the file is altered under it: from then on it serves
    # bytes that fail the piece hashes
    checked = evil.expect(lambda e: isinstance(e, TorrentChecked))
    await evil.add_seed(torrent, where, seed_mode=False)
    await asyncio.wait_for(checked, 60)
    with open(where / src.name, "r+b") as fh:
        for off in range(4096, src.stat().st_size, 64 * 1024):
            fh.seek(off)
            fh.write(b"\xde\xad\xbe\xef")
    return evil


@pytest.mark.parametrize("attempt", range(REPEATS))
async def test_an_evil_peer_cannot_end_a_hybrid_download(make_node, model, tmp_path, cpu_hog, attempt):
    honest = await make_node("honest", **{"network.upload_rate_limit": 4 << 20})
    shared = await share(honest, model, "alice/m")
    assert shared["infohash_v2"], "the test needs a hybrid torrent"
    evil = await _evil_seed(honest, "alice/m", model, tmp_path / "evil")
    try:
        leech = await make_node("leech")
        evil_peer = f"{EVIL_IP}:{evil.listen_port()}"
        # force: no fit check while the metadata is held, so both peers stay connected
        t = await get(leech, shared["infohash"], peers=(evil_peer, peer_of(honest)), name="bob/m", force=True)
        assert t.state == "done", t.error
        assert t.hash_failures > 0, "the evil peer sent nothing: the test proved nothing"
        # not asserted: which peers were banned. The evil one usually is; the honest one sometimes too, as
        # collateral: with SHA-256-only checks and no piece layer yet, one bad block fails every piece of its
        # file's subtree and libtorrent docks trust from every peer that sent any of them (README: seen in
        # 2 runs of 6 here). The point of this test is that the download always ends with the right bytes.
        assert leech.store.read_manifest("bob/m").to_json()["files"][0]["sha256"] == sha256(model)
    finally:
        await evil.stop()


async def test_downloads_check_a_hybrid_by_its_sha256_tree_only(make_node, tiny_gguf, tmp_path):
    """The fix itself, seen on libtorrent's handle: disable_v1_hashes is set on a download (and kept when
    libtorrent has the metadata), not on a seed."""
    from silnode.torrent.session import TorrentSession

    a = await make_node("a")
    shared = await share(a, tiny_gguf, "alice/tiny")
    # a seed checks what it serves with both hashes, as before (its bytes passed the store's SHA-256)
    assert not int(a.distribution.session._rec(shared["infohash"]).handle.flags()) & DISABLE_V1_HASHES
    torrent = (a.store.model_dir("alice/tiny") / ".silnode.torrent").read_bytes()
    ses = TorrentSession(a.config.network)
    await ses.start()
    try:
        tid = await ses.add_download(torrent, tmp_path / "dl")
        assert int(ses._rec(tid).handle.flags()) & DISABLE_V1_HASHES
    finally:
        await ses.stop()
