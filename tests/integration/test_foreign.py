"""Torrents made by other clients (no silnode key): single- and multi-file, odd names, extra files."""

from __future__ import annotations

import json
import shutil

import pytest
from foreign import ForeignSeeder, make_foreign_torrent
from nodes import get, sha256

pytestmark = pytest.mark.timeout(300)


def _foreign_dir(tmp_path, tiny_gguf, split_parts=None):
    root = tmp_path / "foreign" / "My Modél v1"
    root.mkdir(parents=True)
    shutil.copy(tiny_gguf, root / "wëights q4.gguf")
    (root / "README.md").write_text("# a model\n" * 200)
    (root / "LICENSE").write_text("MIT\n" * 100)
    (root / "config.json").write_text(json.dumps({"a": list(range(500))}))
    return root


async def test_multi_file_foreign_torrent_with_extras_and_odd_names(make_node, tmp_path, tiny_gguf):
    root = _foreign_dir(tmp_path, tiny_gguf)
    torrent = make_foreign_torrent(root)
    seeder = ForeignSeeder(torrent, root.parent)
    try:
        b = await make_node("b")
        t = await get(b, seeder.infohash, peers=(seeder.peer,), name="bob/foreign", force=True)
        assert (t.state, t.error) == ("done", None)
        m = b.store.read_manifest("bob/foreign").to_json()
        # the GGUF is the model (a store-safe name), the other files are kept beside it, listed with their hash
        assert [(f["path"], f["size"], f["sha256"]) for f in m["files"]] == [
            ("w-ights-q4.gguf", tiny_gguf.stat().st_size, sha256(tiny_gguf))
        ]
        extras = {f["path"]: (f["size"], f["sha256"]) for f in m["extra_files"]}
        assert extras == {
            name: ((root / name).stat().st_size, sha256(root / name))
            for name in ("README.md", "LICENSE", "config.json")
        }
        mdir = b.store.model_dir("bob/foreign")
        assert sorted(p.name for p in mdir.iterdir()) == sorted(
            [".silnode.json", ".silnode.torrent", "w-ights-q4.gguf", "README.md", "LICENSE", "config.json"]
        )
        assert (mdir / "README.md").read_bytes() == (root / "README.md").read_bytes()
        # nothing was written anywhere else in the node's home but its state and the model
        assert not any(b.store.partial_dir.iterdir())
        # it is seeded again under the same infohash (the foreign swarm)
        assert seeder.infohash in b.distribution.seeds
    finally:
        seeder.close()


async def test_single_file_foreign_torrent_size_from_metadata(make_node, tmp_path, tiny_q8):
    root = tmp_path / "foreign" / "plain model.gguf"
    root.parent.mkdir(parents=True)
    shutil.copy(tiny_q8, root)
    seeder = ForeignSeeder(make_foreign_torrent(root), root.parent)
    try:
        b = await make_node("b")
        t = await b.distribution.download(seeder.infohash, peers=(seeder.peer,), name="bob/plain", force=True)
        await get_done(b, t)
        assert t.files == [{"path": "plain-model.gguf", "size": tiny_q8.stat().st_size, "sha256": None}]
        assert b.store.read_manifest("bob/plain").to_json()["files"][0]["sha256"] == sha256(tiny_q8)
    finally:
        seeder.close()


async def test_foreign_torrent_sizes_come_from_metadata_for_the_disk_check(make_node, tmp_path, tiny_gguf):
    """Multi-file foreign torrents counted as 0 bytes in the disk check; now their real size is asked for."""
    root = _foreign_dir(tmp_path, tiny_gguf)
    seeder = ForeignSeeder(make_foreign_torrent(root), root.parent)
    try:
        need = sum(p.stat().st_size for p in root.iterdir())
        b = await make_node("b")
        # the disk is one byte short of the whole torrent (README and LICENSE included); before the fix a
        # multi-file foreign torrent counted as 0 bytes and passed any check
        b.store.free_bytes = lambda: need - 1
        t = await get(b, seeder.infohash, peers=(seeder.peer,), name="bob/foreign", force=True)
        assert t.state == "error" and "not enough disk space" in t.error
        assert t.files is not None and sum(f["size"] for f in t.files) == need
    finally:
        seeder.close()


async def test_foreign_torrent_without_gguf_is_refused(make_node, tmp_path):
    root = tmp_path / "foreign" / "docs"
    root.mkdir(parents=True)
    (root / "README.md").write_text("no model here\n" * 100)
    (root / "notes.txt").write_text("x" * 5000)
    seeder = ForeignSeeder(make_foreign_torrent(root), root.parent)
    try:
        b = await make_node("b")
        t = await get(b, seeder.infohash, peers=(seeder.peer,), name="bob/docs", force=True)
        assert t.state == "error" and "no .gguf file" in t.error
        assert not b.store.exists("bob/docs")
    finally:
        seeder.close()


async def get_done(node, t, timeout: float = 120):
    import asyncio

    await asyncio.wait_for(node.distribution.wait(t.id), timeout)
    assert (t.state, t.error) == ("done", None)
