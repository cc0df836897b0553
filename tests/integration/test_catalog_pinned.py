"""Seed-catalog downloads are pinned and verified: an entry without a sha256 is fetched at one commit (the
branch resolved once) and its bytes are checked against the Hub's own LFS sha256 (the file's ETag); the
manifest records both. A mismatch, or a file the Hub gives no LFS sha256 for, is refused and nothing is lost.
The Hub is tests/fakehub.py, driven by huggingface_hub's real client."""

from __future__ import annotations

import pytest
from fakehub import sha256 as sha256_bytes
from nodes import sha256

from silnode.fit.seed import load_seed_catalog

pytestmark = pytest.mark.timeout(180)

C1, C2 = "1" * 40, "2" * 40


def _unsourced_entry():
    """A catalog entry that names no sha256 (most do not: only values with a cited source are filled in)."""
    return next(m for m in load_seed_catalog() if m.sha256 is None)


async def _get_catalog(node, name):
    result = await node.models.get(name, force=True)  # force: these tiny nodes have no RAM for real models
    task = node.tasks.get(result["task"]["id"])
    await node.tasks.wait(task)
    return task


async def _import(node, path, name):
    task = node.models.import_file(str(path), name, license="mit")
    await node.tasks.wait(task)
    assert task.state == "done", task.error


async def test_a_catalog_entry_without_sha256_is_pinned_and_checked_against_the_hub(make_node, online_hub, tiny_gguf):
    entry = _unsourced_entry()
    data = tiny_gguf.read_bytes()
    online_hub.publish(entry.repo, C1, {entry.file: data, "README.md": b"---\nlicense: apache-2.0\n---\n"})
    node = await make_node("a")
    task = await _get_catalog(node, entry.name)
    assert task.state == "done", task.error
    m = node.store.read_manifest(entry.name).to_json()
    src = m["source"]
    assert src["revision"] == C1 and src["requested_revision"] == "main"
    assert src["hub_sha256"] == [sha256_bytes(data)] and src["verified_against"] == "hub lfs sha256"
    assert m["files"][0]["sha256"] == sha256_bytes(data)
    assert src["url"].endswith(f"/resolve/{C1}/{entry.file}")  # the web seed names the commit, not the branch
    # every request after the first names the commit
    gets = [p for meth, p in online_hub.requests if meth == "GET" and p.endswith(entry.file)]
    assert gets and all(f"/resolve/{C1}/" in p for p in gets), gets


async def test_a_hub_copy_that_is_not_the_hubs_lfs_sha256_is_refused_and_nothing_is_lost(
    make_node, online_hub, tiny_gguf, tiny_q8
):
    entry = _unsourced_entry()
    data = tiny_gguf.read_bytes()
    online_hub.publish(entry.repo, C1, {entry.file: data})
    bad = bytearray(data)
    bad[-8:] = b"\xde\xad\xbe\xef" * 2  # the tail (tensor bytes): still a GGUF, but not the Hub's file
    online_hub.tamper[entry.file] = bytes(bad)
    node = await make_node("a")
    await _import(node, tiny_q8, "mine/kept")  # already in the store: must be untouched
    task = await _get_catalog(node, entry.name)
    assert task.state == "failed"
    err = task.error
    assert err["code"] == "hub_checksum_mismatch" and err["status"] == 502, err
    assert sha256_bytes(data) in err["error"] and C1[:12] in err["error"] and "nothing was added" in err["error"]
    assert not node.store.exists(entry.name)
    assert node.store.read_manifest("mine/kept").to_json()["files"][0]["sha256"] == sha256(tiny_q8)
    assert not any(node.store.partial_dir.iterdir())


async def test_a_catalog_file_without_a_hub_sha256_is_refused(make_node, online_hub, tiny_gguf):
    entry = _unsourced_entry()
    online_hub.publish(entry.repo, C1, {entry.file: tiny_gguf.read_bytes()})
    online_hub.not_lfs.add(entry.file)  # kept in git: its ETag is a git blob SHA-1, no content sha256
    node = await make_node("a")
    task = await _get_catalog(node, entry.name)
    assert task.state == "failed" and task.error["code"] == "hub_checksum_missing", task.error
    assert not node.store.exists(entry.name)


async def test_a_branch_that_moves_mid_download_does_not_mix_revisions(make_node, online_hub, tiny_gguf, tiny_q8):
    """`main` moves to another commit right after the first request: every file still comes from the commit
    `main` named when the download began."""
    one, two = tiny_gguf.read_bytes(), tiny_q8.read_bytes()
    online_hub.publish("acme/Moving-GGUF", C1, {"m.gguf": one, "README.md": b"---\nlicense: mit\n---\n"})
    online_hub.publish("acme/Moving-GGUF", C2, {"m.gguf": two, "README.md": b"---\nlicense: other\n---\n"}, branch="")

    def move(method, path):
        online_hub.after_request = None
        online_hub.branches[("model:acme/Moving-GGUF", "main")] = C2

    online_hub.after_request = move
    node = await make_node("a")
    task = node.models.share_hf("hf://acme/Moving-GGUF/m.gguf", "acme/moving")
    await node.tasks.wait(task)
    assert task.state == "done", task.error
    m = node.store.read_manifest("acme/moving").to_json()
    assert m["source"]["revision"] == C1 and m["files"][0]["sha256"] == sha256_bytes(one)
    assert m["license"] == "mit"  # the README of the same commit
    assert online_hub.branches[("model:acme/Moving-GGUF", "main")] == C2  # it did move


async def test_offline_the_cached_copy_is_used_unpinned(online_hub, tiny_gguf, tmp_path, monkeypatch):
    """HF_HUB_OFFLINE: no metadata request can pin anything; the cached file is found as before."""
    import huggingface_hub.constants as hfc

    from silnode.sources import fetch_hf

    online_hub.publish("acme/Off-GGUF", C1, {"m.gguf": tiny_gguf.read_bytes()})
    cache = tmp_path / "cache"
    first = fetch_hf("hf://acme/Off-GGUF/m.gguf", cache_dir=cache)
    assert first.origin["revision"] == C1 and first.origin["hub_sha256"] == [sha256(tiny_gguf)]
    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", True)
    again = fetch_hf("hf://acme/Off-GGUF/m.gguf", cache_dir=cache)
    assert again.files == first.files and again.origin["revision"] == C1
    assert again.origin["expected_sha256"] == sha256(tiny_gguf)  # the blob's name: the Hub's etag then
