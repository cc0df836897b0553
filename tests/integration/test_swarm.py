"""share -> get between real nodes over loopback: sizes, split models, identical infohashes, bad peers,
web seeds, full disks."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from nodes import big_gguf, get, peer_of, sha256, share, tmpfs
from origin import Origin

pytestmark = pytest.mark.timeout(300)


async def test_share_get_tiny_and_manifest(make_node, tiny_gguf):
    a = await make_node("a")
    b = await make_node("b")
    shared = await share(a, tiny_gguf, "alice/tiny")
    assert shared["magnet"].startswith("magnet:?xt=urn:btih:" + shared["infohash"])
    assert "x.pe=127.0.0.1:" in shared["magnet"] and "dn=alice%2Ftiny" in shared["magnet"]
    m = a.store.read_manifest("alice/tiny").to_json()
    assert m["infohash"] == shared["infohash"] and m["magnet"] == shared["magnet"]

    t = await get(b, shared["magnet"])
    assert t.state == "done" and t.name == "alice/tiny"
    got = b.store.read_manifest("alice/tiny").to_json()
    assert got["files"][0]["sha256"] == sha256(tiny_gguf) and got["infohash"] == shared["infohash"]
    assert got["source"]["type"] == "torrent" and got["gguf"]["arch"] == "llama"
    # the downloader now seeds it too, from the store
    assert shared["infohash"] in b.distribution.seeds
    assert not any(b.store.partial_dir.iterdir())
    assert (b.store.model_dir("alice/tiny") / ".silnode.torrent").read_bytes() == (
        a.store.model_dir("alice/tiny") / ".silnode.torrent"
    ).read_bytes()  # rebuilt bit for bit
    rows = {r["id"]: r for r in b.distribution.list()}
    assert rows[shared["infohash"]]["kind"] == "seed"


async def test_get_by_bare_infohash_with_peer_and_name(make_node, tiny_q8):
    a = await make_node("a")
    b = await make_node("b")
    shared = await share(a, tiny_q8, "alice/q8")
    t = await get(b, shared["infohash"], peers=(peer_of(a),), name="bob/q8-copy")
    assert t.state == "done"
    assert b.store.read_manifest("bob/q8-copy").to_json()["files"][0]["sha256"] == sha256(tiny_q8)


async def test_split_model_is_one_torrent(make_node, split_parts):
    a = await make_node("a")
    b = await make_node("b")
    shared = await share(a, split_parts[0], "alice/split")
    await get(b, shared["magnet"])
    files = b.store.read_manifest("alice/split").to_json()["files"]
    assert [f["path"] for f in files] == [p.name for p in split_parts]
    assert [f["sha256"] for f in files] == [sha256(p) for p in split_parts]


async def test_same_bytes_same_infohash_under_different_names(make_node, tiny_gguf, tmp_path):
    a = await make_node("a")
    b = await make_node("b")
    copy = tmp_path / "elsewhere" / tiny_gguf.name
    copy.parent.mkdir()
    shutil.copy(tiny_gguf, copy)
    ha = await share(a, tiny_gguf, "alice/model-one")
    hb = await share(b, copy, "bob/other-name")
    assert ha["infohash"] == hb["infohash"] and ha["infohash_v2"] == hb["infohash_v2"]
    # a third node gets it from both: one swarm
    c = await make_node("c")
    t = await get(c, ha["infohash"], peers=(peer_of(a), peer_of(b)), name="carol/m")
    assert t.state == "done"


@pytest.mark.timeout(600)
async def test_256_mib_share_get(make_node, tmp_path):
    src = big_gguf(tmp_path / "big.gguf", 256 << 20, seed=1)
    a = await make_node("a")
    b = await make_node("b")
    shared = await share(a, src, "alice/big")
    t = await get(b, shared["magnet"], timeout=500)
    assert t.state == "done"
    got = b.store.read_manifest("alice/big").to_json()
    assert got["total_size"] == src.stat().st_size and got["files"][0]["sha256"] == sha256(src)


async def test_bad_peer_detected_banned_and_data_refetched(make_node, tmp_path):
    """An evil peer has the same torrent but altered bytes (seed_mode: it never checks); an honest, slower
    peer sits next to it. Hash failures are seen, the evil peer is banned, the result is right."""
    from silnode.torrent.session import TorrentSession

    src = big_gguf(tmp_path / "m.gguf", 16 << 20, seed=2)
    honest = await make_node("honest", **{"network.upload_rate_limit": 4 << 20})
    shared = await share(honest, src, "alice/m")
    torrent = (honest.store.model_dir("alice/m") / ".silnode.torrent").read_bytes()
    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    shutil.copy(src, evil_dir / src.name)
    evil = TorrentSession(honest.config.network)
    await evil.start()
    try:
        # libtorrent checks what it serves once (seed_mode hashes a piece on first request), so the evil peer
        # seeds good data, lets libtorrent check it, then alters the file under it: from then on it serves
        # bytes that fail the piece hashes.
        from silnode.torrent.events import TorrentChecked

        checked = evil.expect(lambda e: isinstance(e, TorrentChecked))
        await evil.add_seed(torrent, evil_dir, seed_mode=False)
        await asyncio.wait_for(checked, 60)
        with open(evil_dir / src.name, "r+b") as fh:
            for off in range(4096, src.stat().st_size, 64 * 1024):  # damage every piece
                fh.seek(off)
                fh.write(b"\xde\xad\xbe\xef")
        leech = await make_node("leech")
        evil_peer = f"127.0.0.1:{evil.listen_port()}"
        # force: no fit check while the metadata is held, so the honest seed is still connected when the
        # evil one gets banned (libtorrent bans an IP address, and both peers are 127.0.0.1 here)
        t = await get(leech, shared["infohash"], peers=(evil_peer, peer_of(honest)), name="bob/m", force=True)
        assert t.state == "done"
        assert t.hash_failures > 0
        assert t.banned_peers, "the evil peer was not banned"
        assert evil_peer in t.banned_peers and peer_of(honest) not in t.banned_peers
        assert leech.store.read_manifest("bob/m").to_json()["files"][0]["sha256"] == sha256(src)
    finally:
        await evil.stop()


async def test_disk_full_before_download_is_refused(make_node, tmp_path):
    src = big_gguf(tmp_path / "m.gguf", 8 << 20, seed=3)
    a = await make_node("a")
    shared = await share(a, src, "alice/m")
    with tmpfs(tmp_path / "small", "4m") as mnt:
        b = await make_node("b", **{"storage.base_dir": str(mnt)})
        t = await get(b, shared["magnet"])
        assert t.state == "error" and "not enough disk space" in t.error
        assert not b.store.exists("alice/m")


async def test_disk_fills_mid_download(make_node, tmp_path, monkeypatch):
    """The free-space check passes (another writer takes the space later): the first write error pauses the
    transfer with a clear message, and nothing appears at the final path."""
    src = big_gguf(tmp_path / "m.gguf", 8 << 20, seed=4)
    a = await make_node("a")
    shared = await share(a, src, "alice/m")
    with tmpfs(tmp_path / "small", "4m") as mnt:
        b = await make_node("b", **{"storage.base_dir": str(mnt)})
        monkeypatch.setattr(b.store, "free_bytes", lambda: 100 << 30)
        t = await get(b, shared["magnet"])
        assert t.state == "error"
        assert "space" in t.error.lower() or "disk" in t.error.lower(), t.error
        assert not b.store.exists("alice/m")
        assert not (b.store.models_dir / "alice" / "m").exists()
        st = b.distribution.session.status(t.id)
        assert st.paused
        # it stays listed with its error, and can be cancelled, which frees the partial data
        assert [r for r in b.distribution.list() if r["id"] == t.id][0]["error"] == t.error
        await b.distribution.cancel(t.id)
        assert not (b.store.partial_dir / t.work_id).exists()


async def test_web_seed_and_peer_together(make_node, tmp_path):
    src = big_gguf(tmp_path / "w.gguf", 16 << 20, seed=5)
    async with Origin(src, cap=4 << 20) as origin:  # capped, so the peer has time to contribute too
        a = await make_node("a", **{"network.upload_rate_limit": 2 << 20})  # a capped peer
        shared = await share(a, src, "alice/w")
        b = await make_node("b")
        t = await get(b, shared["magnet"], web_seeds=(origin.url,))
        assert t.state == "done"
        assert b.store.read_manifest("alice/w").to_json()["files"][0]["sha256"] == sha256(src)
        assert origin.served_bytes > 0, "the HTTP origin served nothing"
        uploaded = a.distribution.session.status(shared["infohash"]).all_time_upload
        assert uploaded > 0, "the peer served nothing"
        print(json.dumps({"origin_bytes": origin.served_bytes, "peer_bytes": uploaded}))


async def test_verify_rechecks_seeds_and_stops_seeding_damage(make_node, tiny_q8, tmp_path):
    tiny_q8 = Path(shutil.copy(tiny_q8, tmp_path / tiny_q8.name))  # the store hardlinks: damage a private copy
    a = await make_node("a")
    shared = await share(a, tiny_q8, "alice/q8")
    task = a.models.verify("alice/q8")
    await a.tasks.wait(task)
    [report] = task.result["models"]
    assert (
        report["ok"] and report["torrent"]["complete"] is True and report["torrent"]["infohash"] == shared["infohash"]
    )
    stored = a.store.model_dir("alice/q8") / tiny_q8.name
    raw = bytearray(stored.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    stored.write_bytes(bytes(raw))
    task = a.models.verify("alice/q8")
    await a.tasks.wait(task)
    [report] = task.result["models"]
    assert not report["ok"] and report["seeding"] == "stopped: damaged"
    assert not a.distribution.is_seeding("alice/q8")


async def test_periodic_recheck_catches_damage_while_seeding(make_node, tiny_q8, tmp_path):
    tiny_q8 = Path(shutil.copy(tiny_q8, tmp_path / tiny_q8.name))  # the store hardlinks: damage a private copy
    a = await make_node("a", **{"network.recheck_interval": 1})
    await share(a, tiny_q8, "alice/q8")
    stored = a.store.model_dir("alice/q8") / tiny_q8.name
    with open(stored, "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00" * 64)
    for _ in range(100):
        if a.store.read_manifest("alice/q8").to_json()["state"] == "damaged":
            break
        await asyncio.sleep(0.1)
    m = a.store.read_manifest("alice/q8").to_json()
    assert m["state"] == "damaged" and "libtorrent recheck" in m["problems"][0]
    assert not a.distribution.is_seeding("alice/q8")


async def test_origin_dropped_once_enough_peers_seed(make_node, tmp_path):
    """network.web_seed_max_seeds: with that many seeding peers the HTTP origin is dropped (the swarm carries
    the load)."""
    src = big_gguf(tmp_path / "o.gguf", 8 << 20, seed=6)
    async with Origin(src, cap=512 << 10, chunk=16 * 1024) as origin:  # a slow origin: 512 KiB/s
        a = await make_node("a", **{"network.upload_rate_limit": 1 << 20})
        shared = await share(a, src, "alice/o")
        b = await make_node("b", **{"network.web_seed_max_seeds": 1})
        t = await b.distribution.download(shared["magnet"], web_seeds=(origin.url,))
        for _ in range(200):
            if not t.web_seeds or t.state == "done":
                break
            await asyncio.sleep(0.05)
        assert t.web_seeds == [], "the origin was not dropped although a peer seeds the model"
        await asyncio.wait_for(b.distribution.wait(t.id), 120)
        assert t.state == "done"


async def test_get_by_bare_infohash_through_a_private_dht(make_node, tiny_q8):
    """No --peer, no hints: the leecher finds the seeder through a DHT of three nodes bootstrapped only to
    each other (network.dht_private lifts the public DHT's one-node-per-IP limits)."""
    dht = {"network.dht_enabled": True, "network.dht_private": True, "network.dht_bootstrap": []}
    nodes = [await make_node(n, **dht) for n in ("a", "b", "c")]
    for x in nodes:
        for y in nodes:
            if x is not y:
                x.distribution.session.add_dht_node("127.0.0.1", y.distribution.session.listen_port())
    for _ in range(100):
        if all([await n.distribution.session.dht_nodes() >= 2 for n in nodes]):
            break
        await asyncio.sleep(0.1)
    a, _, c = nodes
    shared = await share(a, tiny_q8, "alice/q8")
    # bare infohash, no peers at all: the DHT finds the seeder (see min_reconnect_time in torrent/settings.py)
    t = await get(c, shared["infohash"], name="carol/q8", timeout=150)
    assert t.state == "done" and t.peers == []
    assert c.store.read_manifest("carol/q8").to_json()["files"][0]["sha256"] == sha256(tiny_q8)
    assert (await c.distribution.session.dht_nodes()) >= 1
