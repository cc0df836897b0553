"""Real libtorrent swarms on 127.0.0.1: seeder and leecher sessions in one process (TCP, no DHT/LSD/UPnP).

No wall-clock thresholds: timeouts only stop a hang.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from pathlib import Path

import libtorrent as lt
import pytest
from ggufgen import make_gguf, make_split_gguf
from mounts import tmpfs
from torrent_helpers import file_record, poll, random_file, same_bytes

from silnode.errors import TorrentError
from silnode.torrent import create
from silnode.torrent.events import (
    DhtItem,
    DhtPut,
    FilesDeleted,
    MetadataReceived,
    ResumeDataSaved,
    SeedLimitReached,
    StateChanged,
    StorageError,
    TorrentAdded,
    TorrentChecked,
    TorrentFinished,
    TorrentPaused,
    TorrentResumed,
)

pytestmark = pytest.mark.timeout(120)
WAIT = 60  # seconds; only a guard against hangs


def seed_files(model_dir: Path, paths: list[Path]) -> bytes:
    return create.make_torrent(model_dir, [file_record(p) for p in paths])


def drain(q: asyncio.Queue) -> list:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


async def finished(session, id_: str):
    return await asyncio.wait_for(session.expect(lambda e: isinstance(e, TorrentFinished) and e.id == id_), WAIT)


async def test_magnet_download_of_a_gguf(make_session, model_dir, tmp_path):
    gguf = make_gguf(model_dir / "tiny-f16.gguf", preset="tiny", dtype="f16")
    torrent = seed_files(model_dir, [gguf])
    seeder = await make_session()
    leecher = await make_session()
    sid = await seeder.add_seed(torrent, model_dir)
    await poll(lambda: seeder.status(sid).is_seeding)

    # the magnet names another model: the name is display only
    link = create.magnet(torrent, peers=[("127.0.0.1", seeder.listen_port())], name="org/other-name")
    events = leecher.subscribe()
    out = tmp_path / "leech" / "partial" / "x1"
    done = leecher.expect(lambda e: isinstance(e, TorrentFinished))
    lid = await leecher.add_download(link, out)
    assert lid == sid == create.infohashes(torrent)[0]
    assert (await asyncio.wait_for(done, WAIT)).id == lid
    seen = drain(events)
    assert any(isinstance(e, MetadataReceived) and e.id == lid and e.v2 == create.infohashes(torrent)[1] for e in seen)
    assert sum(isinstance(e, TorrentFinished) for e in seen) == 1  # not the "nothing wanted yet" finish
    assert same_bytes(gguf, out / gguf.name)
    st = leecher.status(lid)
    assert st.is_seeding and st.progress == 1.0 and st.total_done == gguf.stat().st_size == st.total_size
    assert st.error == "" and not st.paused
    await poll(lambda: leecher.status(lid).all_time_download >= st.total_size)  # counters update per tick
    # the metadata came from the peer, our key inside the info dict, protected by both infohashes
    received = leecher.torrent_bytes(lid)
    assert create.read_our_key(received) == [file_record(gguf)]
    assert create.infohashes(received) == create.infohashes(torrent)
    assert leecher.file_paths(lid) == [out / gguf.name]
    assert [s.id for s in leecher.all_status()] == [lid]


async def test_32_mib_of_random_bytes_by_magnet_and_peer_argument(make_session, model_dir, tmp_path):
    src = random_file(model_dir / "random.gguf", 33 << 20, seed=3)
    torrent = seed_files(model_dir, [src])
    seeder = await make_session()
    leecher = await make_session()
    await seeder.add_seed(torrent, model_dir)
    v1, _ = create.infohashes(torrent)
    done = leecher.expect(lambda e: isinstance(e, TorrentFinished) and e.id == v1)
    lid = await leecher.add_download(v1, tmp_path / "dl", peers=[f"127.0.0.1:{seeder.listen_port()}"])
    await asyncio.wait_for(done, WAIT)
    assert same_bytes(src, tmp_path / "dl" / src.name)
    assert create.read_our_key(leecher.torrent_bytes(lid)) == [file_record(src)]


async def test_split_gguf_lands_flat_on_both_sides(make_session, tmp_path):
    # the store keeps the parts flat in models/<org>/<model>/; the torrent says tiny-split/<part>
    store = tmp_path / "seed" / "models" / "org" / "split-model"
    parts = make_split_gguf(store, "tiny-split", 3)
    torrent = seed_files(store, parts)
    assert lt.torrent_info(torrent).name() == "tiny-split"
    seeder = await make_session()
    leecher = await make_session()
    sid = await seeder.add_seed(torrent, store)
    out = tmp_path / "partial" / "abc"
    v2 = create.infohashes(torrent)[1]
    # added by the v2 hash alone: the id is the v2 hex, and the v1 hex works too once the metadata is in
    lid = await leecher.add_download(f"magnet:?xt=urn:btmh:1220{v2}", out, peers=[("127.0.0.1", seeder.listen_port())])
    assert lid == v2
    await finished(leecher, lid)
    assert sorted(p.name for p in out.iterdir()) == [p.name for p in parts]  # no tiny-split/ directory
    for p in parts:
        assert same_bytes(p, out / p.name)
    assert leecher.status(sid).id == lid and leecher.status(sid).is_seeding
    assert create.read_our_key(leecher.torrent_bytes(sid)) == [file_record(p) for p in parts]
    assert leecher.file_paths(lid) == [out / p.name for p in parts]
    assert seeder.file_paths(sid) == [store / p.name for p in parts]


async def test_hold_fetches_the_metadata_only_until_release(make_session, model_dir, tmp_path):
    src = random_file(model_dir / "held.gguf", 3 << 20, seed=5)
    torrent = seed_files(model_dir, [src])
    seeder = await make_session()
    leecher = await make_session()
    await seeder.add_seed(torrent, model_dir)
    meta = leecher.expect(lambda e: isinstance(e, MetadataReceived))
    out = tmp_path / "held"
    lid = await leecher.add_download(
        create.magnet(torrent, peers=[("127.0.0.1", seeder.listen_port())]), out, hold=True
    )
    await asyncio.wait_for(meta, WAIT)
    # what a caller checks before allowing the bytes: our key and the size
    assert create.read_our_key(leecher.torrent_bytes(lid)) == [file_record(src)]
    st = await poll(lambda: (s := leecher.status(lid)).has_metadata and s)
    assert st.total_size == src.stat().st_size and st.total_done == 0 and not st.released
    await asyncio.sleep(0.3)  # a window in which a bug would start downloading
    assert leecher.status(lid).total_done == 0 and not (out / src.name).exists()
    done = leecher.expect(lambda e: isinstance(e, TorrentFinished) and e.id == lid)
    leecher.release(lid)
    await asyncio.wait_for(done, WAIT)
    assert same_bytes(src, out / src.name) and leecher.status(lid).released


async def test_resume_data_restores_the_pieces_without_a_recheck(make_session, model_dir, tmp_path):
    src = random_file(model_dir / "resume.gguf", 8 << 20, seed=9)  # 32 pieces of 256 KiB
    torrent = seed_files(model_dir, [src])
    seeder = await make_session(upload_rate_limit=2 << 20)  # slow enough to stop it midway
    await seeder.add_seed(torrent, model_dir)
    out = tmp_path / "partial" / "r1"
    leecher = await make_session()
    lid = await leecher.add_download(create.magnet(torrent), out, peers=[("127.0.0.1", seeder.listen_port())])
    await poll(lambda: leecher.status(lid).num_pieces >= 6)
    mid = await leecher.save_resume(lid)  # during the download
    assert sum(lt.read_resume_data(mid).have_pieces) >= 6
    saved = await leecher.stop()  # stop saves once more, for every torrent
    data = saved[lid]
    have = sum(lt.read_resume_data(data).have_pieces)
    assert 6 <= have < 32

    # a new node process would do exactly this: a fresh session, the resume data, no target, no peers
    again = await make_session()
    q = again.subscribe()
    checked = again.expect(lambda e: isinstance(e, TorrentChecked))
    rid = await again.add_download(None, out, resume_data=data)
    assert rid == lid
    await asyncio.wait_for(checked, WAIT)
    st = again.status(rid)
    assert st.num_pieces == have and st.has_metadata and st.state == "downloading"
    assert not any(isinstance(e, StateChanged) and e.state == "checking_files" for e in drain(q))
    # and it finishes from where it was, fetching only the rest
    seeder.set_limits(upload=0)
    done = again.expect(lambda e: isinstance(e, TorrentFinished) and e.id == rid)
    again.connect_peer(rid, "127.0.0.1", seeder.listen_port())
    await asyncio.wait_for(done, WAIT)
    assert same_bytes(src, out / src.name)
    # it did not fetch the whole file again (the counter lags a tick: wait until it counts something)
    fetched = await poll(lambda: again.status(rid).all_time_download)
    assert fetched < 32 * (256 << 10)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 1 MiB tmpfs: the disk that fills up."""
    with tmpfs(tmp_path / "tiny", "1m") as mnt:
        yield mnt


@pytest.mark.root
async def test_full_disk_pauses_the_torrent_with_a_clear_error(make_session, model_dir, tiny_tmpfs):
    src = random_file(model_dir / "big.gguf", 4 << 20, seed=7)
    torrent = seed_files(model_dir, [src])
    seeder = await make_session()
    leecher = await make_session()
    await seeder.add_seed(torrent, model_dir)
    q = leecher.subscribe()
    failed = leecher.expect(lambda e: isinstance(e, StorageError))
    lid = await leecher.add_download(
        create.magnet(torrent), tiny_tmpfs / "dl", peers=[("127.0.0.1", seeder.listen_port())]
    )
    err = await asyncio.wait_for(failed, WAIT)
    assert err.id == lid and err.paused and err.errno == errno.ENOSPC
    assert err.error == "No space left on device" and err.file.endswith("big.gguf")
    assert "no space left" in err.message and "paused" in err.message
    st = await poll(lambda: (s := leecher.status(lid)).paused and s)
    assert st.error == err.message and not st.is_finished
    await poll(lambda: any(isinstance(e, TorrentPaused) for e in list(q._queue)))
    assert sum(isinstance(e, StorageError) for e in drain(q)) == 1  # reported once, not once per retry


async def test_pause_resume_recheck_finds_corruption_and_remove_deletes(make_session, model_dir):
    src = random_file(model_dir / "c.gguf", 2 << 20, seed=11)  # 8 pieces
    torrent = seed_files(model_dir, [src])
    s = await make_session()
    q = s.subscribe()
    sid = await s.add_seed(torrent, model_dir)
    await poll(lambda: s.status(sid).is_seeding)
    paused = s.expect(lambda e: isinstance(e, TorrentPaused) and e.id == sid)
    saved = s.expect(lambda e: isinstance(e, ResumeDataSaved) and e.id == sid)  # pausing saves resume data
    s.pause(sid)
    await asyncio.wait_for(paused, WAIT)
    assert lt.read_resume_data((await asyncio.wait_for(saved, WAIT)).data).info_hashes.v1 == lt.sha1_hash(
        bytes.fromhex(sid)
    )
    assert s.status(sid).paused
    resumed = s.expect(lambda e: isinstance(e, TorrentResumed) and e.id == sid)
    s.resume(sid)
    await asyncio.wait_for(resumed, WAIT)
    assert not s.status(sid).paused
    assert any(isinstance(e, TorrentAdded) and e.id == sid and e.error is None for e in drain(q))
    data = bytearray(src.read_bytes())  # flip bytes inside piece 3
    data[3 * (256 << 10) + 100 : 3 * (256 << 10) + 103] = b"\xff\x00\xff"
    src.write_bytes(bytes(data))
    checked = s.expect(lambda e: isinstance(e, TorrentChecked) and e.id == sid)
    s.force_recheck(sid)
    await asyncio.wait_for(checked, WAIT)
    st = s.status(sid)
    assert st.num_pieces == 7 and not st.is_seeding
    await s.remove(sid, delete_files=True)
    assert not src.exists()
    assert any(isinstance(e, FilesDeleted) for e in drain(q))
    with pytest.raises(TorrentError):
        s.status(sid)


async def test_web_seed_alone_delivers_the_file(make_session, model_dir, tmp_path):
    from aiohttp import web

    src = random_file(model_dir / "web.gguf", 3 << 20, seed=13)
    torrent = seed_files(model_dir, [src])
    app = web.Application()
    app.router.add_static("/files", model_dir)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        leecher = await make_session()
        lid = await leecher.add_download(torrent, tmp_path / "w")  # .torrent bytes, no peers at all
        done = leecher.expect(lambda e: isinstance(e, TorrentFinished) and e.id == lid)
        url = f"http://127.0.0.1:{port}/files/web.gguf"
        leecher.add_web_seed(lid, url)
        assert leecher.web_seeds(lid) == [url]
        await asyncio.wait_for(done, WAIT)
        leecher.remove_web_seed(lid, url)
        assert leecher.web_seeds(lid) == []
        assert same_bytes(src, tmp_path / "w" / "web.gguf")
        assert leecher.torrent_bytes(lid) == torrent
    finally:
        await runner.cleanup()


async def test_private_dht_on_loopback_finds_nodes(make_session):
    a = await make_session(dht_enabled=True)
    b = await make_session(dht_enabled=True)
    assert a.settings["enable_dht"] and a.settings["dht_bootstrap_nodes"] == ""
    b.add_dht_node("127.0.0.1", a.listen_port())  # bootstrapped only to each other
    a.add_dht_node("127.0.0.1", b.listen_port())
    deadline = asyncio.get_running_loop().time() + WAIT
    while (await b.dht_nodes()) < 1 or (await a.dht_nodes()) < 1:
        assert asyncio.get_running_loop().time() < deadline, "the two DHT nodes never met"
        await asyncio.sleep(0.1)
    stats = await a.stats()
    assert "dht.dht_nodes" in stats and "net.recv_bytes" in stats


async def test_dht_immutable_put_and_get_hooks(make_session):
    a = await make_session(dht_enabled=True)
    b = await make_session(dht_enabled=True)
    b.add_dht_node("127.0.0.1", a.listen_port())
    a.add_dht_node("127.0.0.1", b.listen_port())
    deadline = asyncio.get_running_loop().time() + WAIT
    while (await a.dht_nodes()) < 1:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    put = a.expect(lambda e: isinstance(e, DhtPut))
    target = a.dht_put_immutable({b"catalog": [b"x", 1]})
    ev = await asyncio.wait_for(put, WAIT)
    assert ev.target == target and len(target) == 40 and ev.num_success >= 1
    got = b.expect(lambda e: isinstance(e, DhtItem) and e.key == target)
    b.dht_get_immutable(target)
    item = await asyncio.wait_for(got, WAIT)
    assert item.value == {b"catalog": [b"x", 1]} and not item.mutable


async def test_dht_nodes_is_zero_with_the_dht_off(make_session):
    s = await make_session()
    assert await s.dht_nodes() == 0


async def test_errors_are_translated(make_session, model_dir, tmp_path):
    src = random_file(model_dir / "e.gguf", 1 << 20, seed=17)
    torrent = seed_files(model_dir, [src])
    s = await make_session()
    with pytest.raises(TorrentError, match="cannot seed"):
        await s.add_seed(torrent, tmp_path / "empty")
    sid = await s.add_seed(torrent, model_dir)
    with pytest.raises(TorrentError, match="already"):
        await s.add_download(create.magnet(torrent), tmp_path / "again")
    with pytest.raises(TorrentError, match="no torrent"):
        s.status("ab" * 20)
    with pytest.raises(TorrentError):
        await s.add_download("not a magnet", tmp_path / "x")
    with pytest.raises(TorrentError):
        await s.add_download(None, tmp_path / "x", resume_data=b"garbage")
    with pytest.raises(TorrentError):
        s.add_web_seed(sid, "ftp://example.invalid/x")
    with pytest.raises(TorrentError):
        s.connect_peer(sid, "127.0.0.1", 0)
    assert sid in s.ids()
    assert set(await s.save_all_resume(only_if_modified=False)) == {sid}
    assert set(await s.save_all_resume()) <= {sid}
    saved = await s.stop()
    assert set(saved) == {sid}
    assert await s.stop() == {}  # idempotent
    with pytest.raises(TorrentError, match="not running"):
        s.status(sid)


async def test_listen_failure_is_a_clear_error(make_session):
    with pytest.raises(TorrentError, match="cannot listen on 192.0.2.1"):  # TEST-NET: not on this host
        await make_session(listen_address="192.0.2.1")


async def test_a_taken_port_moves_to_a_free_one_and_says_so(make_session):
    # libtorrent tries the next ports (max_retry_port_bind); listen_port() reports the real one
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        taken = sock.getsockname()[1]
        s = await make_session(listen_port=taken)
        assert s.listen_port() not in (0, taken)
    finally:
        sock.close()


async def test_seed_ratio_limit_pauses_the_seed(make_session, model_dir, tmp_path, monkeypatch):
    from silnode.torrent import session as session_mod

    monkeypatch.setattr(session_mod, "SEED_CHECK_INTERVAL", 0.1)
    src = random_file(model_dir / "ratio.gguf", 1 << 20, seed=19)
    torrent = seed_files(model_dir, [src])
    seeder = await make_session(seed_ratio_limit=1.0)
    leecher = await make_session()
    sid = await seeder.add_seed(torrent, model_dir)
    limited = seeder.expect(lambda e: isinstance(e, SeedLimitReached) and e.id == sid)
    await leecher.add_download(torrent, tmp_path / "r", peers=[("127.0.0.1", seeder.listen_port())])
    ev = await asyncio.wait_for(limited, WAIT)
    assert "ratio" in ev.reason and seeder.status(sid).paused
    assert same_bytes(src, tmp_path / "r" / src.name)
