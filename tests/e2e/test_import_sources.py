"""`silnode import --from hf|ollama` through the CLI against a live daemon, on caches made the real way."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from fakehub import download, serve_hub

from silnode.cli import cli

pytestmark = pytest.mark.e2e


def run(*args: str, code: int = 0):
    r = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert r.exit_code == code, (args, r.output)
    return r


@pytest.fixture
def hf_cache(tmp_path):
    # clean_env points HF_HOME at tmp_path/hf; the daemon (started after this) inherits it
    return tmp_path / "hf" / "hub"


def test_import_from_hf_cache_written_by_huggingface_hub(hf_cache, tiny_gguf, tiny_q8, clean_env):
    from daemons import start_daemon, stop_daemon

    with serve_hub() as hub:
        hub.publish(
            "acme/Tiny-GGUF",
            "a" * 40,
            {
                "tiny-f32.gguf": tiny_gguf.read_bytes(),
                "tiny-q8_0.gguf": tiny_q8.read_bytes(),
                "README.md": b"---\nlicense: mit\n---\n# tiny\n",
            },
        )
        for f in ("tiny-f32.gguf", "tiny-q8_0.gguf", "README.md"):
            download(hub, hf_cache, "acme/Tiny-GGUF", f)
    snapshot = hf_cache / "models--acme--Tiny-GGUF" / "snapshots" / ("a" * 40) / "tiny-q8_0.gguf"
    assert snapshot.is_symlink()  # the layout huggingface_hub made: snapshot links into blobs/
    daemon = start_daemon(clean_env)
    try:
        out = json.loads(run("import", "--from", "hf", "q8", "--json").stdout)
        [m] = out["imported"]
        assert m["name"] == "acme/tiny-q8_0" and m["quant"] == "Q8_0" and m["license"] == "mit"
        stored = clean_env / "models" / "acme" / "tiny-q8_0" / "tiny-q8_0.gguf"
        assert os.path.samefile(stored, snapshot.resolve())  # hardlinked to the blob, not to the link
        manifest = json.loads(run("show", "acme/tiny-q8_0", "--json").stdout)
        assert manifest["source"]["type"] == "hf" and manifest["source"]["revision"] == "a" * 40
        assert manifest["source"]["url"].endswith("/acme/Tiny-GGUF/resolve/" + "a" * 40 + "/tiny-q8_0.gguf")
        out = json.loads(run("import", "--from", "hf", "--json").stdout)
        assert [m["name"] for m in out["imported"]] == ["acme/tiny-f32"]
        assert out["skipped"][0]["reason"] == "already in the store"
        r = run("import", "--from", "hf", "nothing-matches", code=1)
        assert "no GGUF models found" in r.stderr
    finally:
        stop_daemon(daemon)


def test_import_from_ollama_store(tmp_path, tiny_gguf, clean_env):
    import hashlib

    from daemons import start_daemon, stop_daemon

    models = tmp_path / "ollama"  # OLLAMA_MODELS (clean_env)
    digest = hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    (models / "blobs").mkdir(parents=True)
    (models / "blobs" / f"sha256-{digest}").write_bytes(tiny_gguf.read_bytes())
    mdir = models / "manifests" / "registry.ollama.ai" / "library" / "tinyllama"
    mdir.mkdir(parents=True)
    (mdir / "1b").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "layers": [
                    {
                        "mediaType": "application/vnd.ollama.image.model",
                        "digest": f"sha256:{digest}",
                        "size": tiny_gguf.stat().st_size,
                    }
                ],
            }
        )
    )
    daemon = start_daemon(clean_env)
    try:
        out = json.loads(run("import", "--from", "ollama", "--json").stdout)
        assert [m["name"] for m in out["imported"]] == ["ollama/tinyllama-1b"]
        shown = json.loads(run("show", "ollama/tinyllama-1b", "--json").stdout)
        assert shown["files"][0]["sha256"] == digest and shown["files"][0]["path"] == "tinyllama-1b.gguf"
    finally:
        stop_daemon(daemon)
