"""`share hf://org/repo/file.gguf`: huggingface_hub downloads it (from a local fake Hub), the store hardlinks
the cache blob, and the Hub's resolve URL becomes a web seed that travels in the magnet."""

from __future__ import annotations

import os

import pytest
from nodes import get, sha256

pytestmark = pytest.mark.timeout(120)


async def test_share_hf_ref_then_get_from_peer_and_origin(make_node, online_hub, tiny_q8, tmp_path):
    online_hub.publish(
        "acme/Tiny-GGUF",
        "c" * 40,
        {"tiny-q8_0.gguf": tiny_q8.read_bytes(), "README.md": b"---\nlicense: apache-2.0\n---\n# tiny\n"},
    )
    a = await make_node("a")
    task = a.models.share_hf("hf://acme/Tiny-GGUF/tiny-q8_0.gguf")
    await a.tasks.wait(task)
    assert task.state == "done", task.error
    shared = task.result
    assert shared["name"] == "acme/tiny"
    m = a.store.read_manifest("acme/tiny").to_json()
    assert m["license"] == "apache-2.0" and m["source"]["type"] == "hf" and m["source"]["revision"] == "c" * 40
    snapshot = next((tmp_path / "hf").rglob("snapshots/*/tiny-q8_0.gguf"))  # HF_HOME from clean_env
    blob = snapshot.resolve()
    assert blob.parent.name == "blobs"
    stored = a.store.model_dir("acme/tiny") / "tiny-q8_0.gguf"
    assert os.path.samefile(stored, blob)  # hardlinked from the HF cache, no second copy
    origin = f"{online_hub.url}/acme/Tiny-GGUF/resolve/{'c' * 40}/tiny-q8_0.gguf"
    assert "ws=" in shared["magnet"] and m["web_seeds"] == [origin]

    b = await make_node("b")
    t = await get(b, shared["magnet"])
    assert t.state == "done" and t.web_seeds in ([origin], [])  # dropped once enough seeds exist
    assert b.store.read_manifest("acme/tiny").to_json()["files"][0]["sha256"] == sha256(tiny_q8)


async def test_bad_hf_refs(make_node, online_hub):
    from silnode.errors import BadRequest

    a = await make_node("a")
    for ref in ("hf://acme", "hf://acme/repo/../x.gguf", "http://x/y.gguf", "hf://acme/repo/file.bin"):
        with pytest.raises(BadRequest):
            a.models.share_hf(ref)
    task = a.models.share_hf("hf://acme/Missing-GGUF/none.gguf")
    await a.tasks.wait(task)
    assert task.state == "failed" and task.error["status"] == 404, task.error  # the Hub has no such repo
