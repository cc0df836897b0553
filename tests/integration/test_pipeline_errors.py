"""No transfer dies silently: an exception at any step of the download pipeline ends that transfer in
`error` with the step named, and the node goes on (the next download completes)."""

from __future__ import annotations

import pytest
from nodes import big_gguf, get, share

import silnode.distribution as distribution

pytestmark = pytest.mark.timeout(180)


def _boom(*_a, **_kw):
    raise RuntimeError("injected fault")


async def _aboom(*_a, **_kw):
    raise RuntimeError("injected fault")


STEPS = {
    # step named in the error -> how to break it: (object path, attribute, replacement)
    "reading the metadata": ("store", "free_bytes", _boom),
    "saving the resume data": ("session", "save_resume", _aboom),
    "writing the torrent": ("module", "torrent_from_resume", _boom),
    "releasing the files": ("session", "remove", _aboom),
    "verifying and moving into the store": ("store", "adopt", _boom),
}


@pytest.mark.parametrize("step", list(STEPS))
async def test_a_fault_at_each_step_ends_the_transfer_in_error(make_node, monkeypatch, tiny_gguf, tiny_q8, step):
    a = await make_node("a")
    b = await make_node("b")
    first = await share(a, tiny_gguf, "alice/one")
    second = await share(a, tiny_q8, "alice/two")
    where, attr, fake = STEPS[step]
    target = {"store": b.store, "session": b.distribution.session, "module": distribution}[where]
    monkeypatch.setattr(target, attr, fake)
    t = await get(b, first["magnet"], force=True, timeout=60)
    assert (t.state, t.error) == ("error", f"{step} failed: injected fault")
    assert b.distribution.get(t.id).state == "error"
    monkeypatch.undo()
    # the node still works
    t2 = await get(b, second["magnet"], force=True, timeout=60)
    assert (t2.state, t2.error) == ("done", None)
    assert b.store.exists("alice/two")


async def test_a_seeding_fault_keeps_the_model_and_says_so(make_node, monkeypatch, tiny_gguf):
    a = await make_node("a")
    b = await make_node("b")
    shared = await share(a, tiny_gguf, "alice/one")
    monkeypatch.setattr(b.distribution.session, "add_seed", _aboom)
    t = await get(b, shared["magnet"], force=True, timeout=60)
    assert (t.state, t.error) == ("done", "downloaded, but seeding failed: injected fault")
    assert b.store.exists("alice/one") and not b.distribution.is_seeding("alice/one")


async def test_download_and_web_seed_hash_nothing_again(make_node, monkeypatch, tmp_path):
    """libtorrent's piece checks plus the store's one SHA-256 pass: no torrent is rebuilt by hashing after a
    download (its piece layers come from the merkle trees libtorrent verified), and adding a web seed to a
    shared model only edits url-list."""
    import libtorrent as lt

    src = big_gguf(tmp_path / "one.gguf", 24 << 20, seed=5)  # many pieces: the torrent has piece layers
    a = await make_node("a")
    b = await make_node("b")
    shared = await share(a, src, "alice/one")
    original = (a.store.model_dir("alice/one") / ".silnode.torrent").read_bytes()
    assert lt.bdecode(original)[b"piece layers"]
    hashed = []
    real = lt.set_piece_hashes
    monkeypatch.setattr(lt, "set_piece_hashes", lambda *args: (hashed.append(args[1]), real(*args)))
    t = await get(b, shared["magnet"], force=True)
    assert t.state == "done"
    assert (b.store.model_dir("alice/one") / ".silnode.torrent").read_bytes() == original  # bit for bit
    again = await b.distribution.share("alice/one", web_seeds=("http://127.0.0.1:1/one.gguf",))
    assert hashed == []
    assert again["infohash"] == shared["infohash"]
    torrent = (b.store.model_dir("alice/one") / ".silnode.torrent").read_bytes()
    assert lt.bdecode(torrent)[b"url-list"] == [b"http://127.0.0.1:1/one.gguf"]
