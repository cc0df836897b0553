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
    a = await make_node("a", **{"network.upload_rate_limit": 64 << 10})  # slow: the Hub has time to serve too
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

    path = f"/acme/Tiny-GGUF/resolve/{'c' * 40}/tiny-q8_0.gguf"
    before = online_hub.served.get(path, 0)
    b = await make_node("b")
    t = await get(b, shared["magnet"])  # the magnet's x.pe hint finds A
    assert t.state == "done" and t.web_seeds == [origin]
    assert b.store.read_manifest("acme/tiny").to_json()["files"][0]["sha256"] == sha256(tiny_q8)
    # this test's Hub listens on 127.0.0.1: a web seed that came in a magnet never reaches a loopback address
    # (the web-seed gate); the real Hub's public address passes
    assert online_hub.served.get(path, 0) == before

    # the Hub as a web seed the user names: it serves bytes, in byte ranges (BEP 19); the metadata comes from A
    c = await make_node("c")
    magnet = "&".join(p for p in shared["magnet"].split("&") if not p.startswith("ws="))
    t = await get(c, magnet, web_seeds=(origin,))
    assert t.state == "done", t.error
    assert c.store.read_manifest("acme/tiny").to_json()["files"][0]["sha256"] == sha256(tiny_q8)
    assert online_hub.served.get(path, 0) > before, "the Hub served nothing as a web seed"
    assert any(p == path and r and r.startswith("bytes=") for p, r in online_hub.ranges)


async def test_bad_hf_refs(make_node, online_hub):
    from silnode.errors import BadRequest

    a = await make_node("a")
    for ref in ("hf://acme", "hf://acme/repo/../x.gguf", "http://x/y.gguf", "hf://acme/repo/file.bin"):
        with pytest.raises(BadRequest):
            a.models.share_hf(ref)
    task = a.models.share_hf("hf://acme/Missing-GGUF/none.gguf")
    await a.tasks.wait(task)
    assert task.state == "failed" and task.error["status"] == 404, task.error  # the Hub has no such repo


async def test_an_interrupted_hub_download_resumes_where_it_stopped(make_node, online_hub, gemma_gguf):
    """The connection drops after 40 MB of Gemma's 253 MB: the download goes on from there (a Range request
    from the cut), not from byte 0, and the stored file has the right sha256."""
    data = gemma_gguf.read_bytes()
    online_hub.publish("acme/Gemma-GGUF", "d" * 40, {"g.gguf": data, "README.md": b"license: gemma\n"})
    path = f"/acme/Gemma-GGUF/resolve/{'d' * 40}/g.gguf"  # share_hf resolves the branch once, then asks by commit
    cut = 40 << 20
    online_hub.cut_after[path] = cut
    a = await make_node("a")
    task = a.models.share_hf("hf://acme/Gemma-GGUF/g.gguf")
    await a.tasks.wait(task)
    if task.state == "failed":  # the library gave up on the dropped connection: the user runs it again
        task = a.models.share_hf("hf://acme/Gemma-GGUF/g.gguf")
        await a.tasks.wait(task)
    assert task.state == "done", task.error
    stored = a.store.model_dir(task.result["name"]) / "g.gguf"
    assert sha256(stored) == sha256(gemma_gguf)
    gets = [r for p, r in online_hub.ranges if p == path]
    assert len(gets) >= 2 and gets[-1] == f"bytes={cut}-", gets  # resumed from the cut
    assert online_hub.served[path] == len(data)  # every byte sent once: nothing fetched twice
