"""silnode.sources: finding GGUF models in the HF cache and in Ollama's store.

The HF caches here are made by huggingface_hub itself: a tiny fake Hub (aiohttp on 127.0.0.1,
in a thread) answers ``HEAD``/``GET /{repo}/resolve/{rev}/{file}`` the way the Hub does, and the
real ``hf_hub_download(..., cache_dir=tmp, endpoint=fake)`` writes blobs/, snapshots/ links and refs/.
Hostile entries are then planted on top of that real layout by hand.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest
from fakehub import FakeHub, download, fake_gguf, git_sha1, serve_hub, sha256  # noqa: E402,F401

from silnode import sources  # noqa: E402
from silnode.errors import BadRequest  # noqa: E402
from silnode.sources import FoundModel, find, find_hf, find_ollama, hf_cache_dir, ollama_models_dir  # noqa: E402

C1 = "1" * 40
C2 = "2" * 40
C3 = "3" * 40


gguf = fake_gguf


@pytest.fixture(scope="module")
def hub():
    with serve_hub() as h:
        yield h


@pytest.fixture
def cache(tmp_path, monkeypatch):
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "OLLAMA_MODELS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    d = tmp_path / "hf-cache"
    d.mkdir()
    return d


def repo_dir(cache: Path, repo_id: str) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--"))


# ---------------------------------------------------------------------------------------------------
# HF


QWEN = "bartowski/Qwen2.5-0.5B-Instruct-GGUF"
README = b"---\nlanguage:\n- en\nlicense: apache-2.0\ntags:\n- gguf\n---\n# Qwen\n"


def test_single_gguf_is_its_blob(hub, cache):
    data = gguf("qwen-q4")
    hub.publish(QWEN, C1, {"Qwen2.5-0.5B-Instruct-Q4_K_M.gguf": data, "README.md": README})
    snap = download(hub, cache, QWEN, "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf")
    download(hub, cache, QWEN, "README.md")
    assert snap.is_symlink()  # the layout really is the hub's own
    assert (repo_dir(cache, QWEN) / "refs" / "main").read_text() == C1

    [m] = find_hf(cache_dir=cache)
    blob = repo_dir(cache, QWEN).resolve() / "blobs" / sha256(data)
    assert m.source == "hf"
    assert m.files == (blob,)
    assert m.files[0] == Path(os.path.realpath(snap))
    assert m.files[0].read_bytes() == data
    assert m.display_names == ("Qwen2.5-0.5B-Instruct-Q4_K_M.gguf",)
    assert m.suggested_name == "bartowski/qwen2.5-0.5b-instruct"
    assert m.license == "apache-2.0"
    assert m.origin == {
        "type": "hf",
        "repo_id": QWEN,
        "revision": C1,
        "filename": "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf",
        "url": f"https://huggingface.co/{QWEN}/resolve/{C1}/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf",
        "filenames": ["Qwen2.5-0.5B-Instruct-Q4_K_M.gguf"],
        "expected_sha256": sha256(data),
    }
    json.dumps(m.origin)  # goes into a manifest as is
    hash(m)  # frozen and hashable despite the dict


def test_several_ggufs_in_a_repo_get_a_quant_suffix(hub, cache):
    files = {
        "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf": gguf("q4"),
        "Qwen2.5-0.5B-Instruct-Q8_0.gguf": gguf("q8"),
        "Qwen2.5-0.5B-Instruct-IQ2_XXS.gguf": gguf("iq2"),
        "mmproj-Qwen2.5-0.5B-Instruct-f16.gguf": gguf("mmproj"),
        "config.json": b"{}",
    }
    hub.publish(QWEN, C1, files)
    for name in files:
        download(hub, cache, QWEN, name)

    found = find_hf(cache_dir=cache)
    by_name = {m.suggested_name: m for m in found}
    assert sorted(by_name) == [
        "bartowski/qwen2.5-0.5b-instruct-iq2_xxs",
        "bartowski/qwen2.5-0.5b-instruct-mmproj-f16",
        "bartowski/qwen2.5-0.5b-instruct-q4_k_m",
        "bartowski/qwen2.5-0.5b-instruct-q8_0",
    ]
    m = by_name["bartowski/qwen2.5-0.5b-instruct-q8_0"]
    assert m.display_names == ("Qwen2.5-0.5B-Instruct-Q8_0.gguf",)
    assert m.files[0].read_bytes() == files["Qwen2.5-0.5B-Instruct-Q8_0.gguf"]
    assert m.license is None  # no README in the cache
    assert all(f.parent.name == "blobs" for m in found for f in m.files)


def test_same_quant_twice_falls_back_to_the_path(hub, cache):
    repo = "someone/Mixed"
    files = {"a/model-Q4_0.gguf": gguf("a"), "b/model-Q4_0.gguf": gguf("b")}
    hub.publish(repo, C1, files)
    for name in files:
        download(hub, cache, repo, name)
    found = find_hf(cache_dir=cache)
    assert [m.suggested_name for m in found] == ["someone/mixed-a-model-q4_0", "someone/mixed-b-model-q4_0"]
    assert [m.origin["filename"] for m in found] == ["a/model-Q4_0.gguf", "b/model-Q4_0.gguf"]
    assert [m.display_names for m in found] == [("model-Q4_0.gguf",), ("model-Q4_0.gguf",)]


def test_pattern_filter(hub, cache):
    hub.publish(
        QWEN, C1, {"Qwen2.5-0.5B-Instruct-Q4_K_M.gguf": gguf("q4"), "Qwen2.5-0.5B-Instruct-Q8_0.gguf": gguf("q8")}
    )
    hub.publish("TheBloke/Llama-2-7B-GGUF", C2, {"llama-2-7b.Q2_K.gguf": gguf("llama")})
    download(hub, cache, QWEN, "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf")
    download(hub, cache, QWEN, "Qwen2.5-0.5B-Instruct-Q8_0.gguf")
    download(hub, cache, "TheBloke/Llama-2-7B-GGUF", "llama-2-7b.Q2_K.gguf")

    def names(pattern):
        return [m.suggested_name for m in find_hf(pattern, cache_dir=cache)]

    assert len(names(None)) == 3
    assert names("q8_0") == ["bartowski/qwen2.5-0.5b-instruct-q8_0"]  # substring, any case
    assert names("BARTOWSKI") == ["bartowski/qwen2.5-0.5b-instruct-q4_k_m", "bartowski/qwen2.5-0.5b-instruct-q8_0"]
    assert names("*Q4_K_M.gguf") == ["bartowski/qwen2.5-0.5b-instruct-q4_k_m"]  # fnmatch on repo_id/filename
    assert names("thebloke/*") == ["thebloke/llama-2-7b"]
    assert names("thebloke") == ["thebloke/llama-2-7b"]
    assert names("q4_k_m.gguf") == ["bartowski/qwen2.5-0.5b-instruct-q4_k_m"]
    assert names("Q4_K_M") == ["bartowski/qwen2.5-0.5b-instruct-q4_k_m"]
    assert names("*.bin") == []
    assert names("mistral") == []


def test_split_gguf_is_one_model_in_index_order(hub, cache):
    repo = "unsloth/Big-Model-GGUF"
    parts = {f"Q8_0/Big-Model-Q8_0-0000{i}-of-00003.gguf": gguf(f"part{i}") for i in (1, 2, 3)}
    single = {"Big-Model-Q2_K.gguf": gguf("q2")}
    hub.publish(repo, C1, {**parts, **single})
    for name in [*reversed(list(parts)), *single]:  # download out of order
        download(hub, cache, repo, name)

    found = {m.suggested_name: m for m in find_hf(cache_dir=cache)}
    assert sorted(found) == ["unsloth/big-model-q2_k", "unsloth/big-model-q8_0"]
    m = found["unsloth/big-model-q8_0"]
    blobs = repo_dir(cache, repo).resolve() / "blobs"
    assert m.files == tuple(blobs / sha256(parts[f"Q8_0/Big-Model-Q8_0-0000{i}-of-00003.gguf"]) for i in (1, 2, 3))
    assert m.display_names == tuple(f"Big-Model-Q8_0-0000{i}-of-00003.gguf" for i in (1, 2, 3))
    assert m.origin["filename"] == "Q8_0/Big-Model-Q8_0-00001-of-00003.gguf"
    assert m.origin["filenames"] == [f"Q8_0/Big-Model-Q8_0-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert m.origin["url"].endswith(f"/resolve/{C1}/Q8_0/Big-Model-Q8_0-00001-of-00003.gguf")
    assert m.origin["expected_sha256s"] == [f.name for f in m.files]
    assert "expected_sha256" not in m.origin


def test_incomplete_split_is_skipped_with_a_warning(hub, cache, caplog):
    repo = "unsloth/Half-GGUF"
    parts = {f"Half-Q4_K_M-0000{i}-of-00003.gguf": gguf(f"p{i}") for i in (1, 2, 3)}
    hub.publish(repo, C1, {**parts, "Half-Q8_0.gguf": gguf("q8")})
    download(hub, cache, repo, "Half-Q4_K_M-00001-of-00003.gguf")
    download(hub, cache, repo, "Half-Q4_K_M-00003-of-00003.gguf")
    download(hub, cache, repo, "Half-Q8_0.gguf")

    with caplog.at_level(logging.WARNING, logger="silnode.sources"):
        found = find_hf(cache_dir=cache)
    assert [m.display_names for m in found] == [("Half-Q8_0.gguf",)]
    assert any("missing" in r.getMessage() and "2" in r.getMessage() for r in caplog.records)


def test_two_revisions_take_the_newest(hub, cache):
    repo = "org/Evolving-GGUF"
    old, new = gguf("old"), gguf("new")
    hub.publish(repo, C1, {"evolving.Q4_K_M.gguf": old, "README.md": b"---\nlicense: mit\n---\n"})
    download(hub, cache, repo, "evolving.Q4_K_M.gguf")
    download(hub, cache, repo, "README.md")
    old_blob = repo_dir(cache, repo) / "blobs" / sha256(old)
    past = time.time() - 3600
    os.utime(old_blob, (past, past))

    hub.publish(repo, C2, {"evolving.Q4_K_M.gguf": new})  # main moves on; README not re-downloaded
    download(hub, cache, repo, "evolving.Q4_K_M.gguf")
    assert sorted(p.name for p in (repo_dir(cache, repo) / "snapshots").iterdir()) == [C1, C2]

    [m] = find_hf(cache_dir=cache)
    assert m.origin["revision"] == C2
    assert m.files == (repo_dir(cache, repo).resolve() / "blobs" / sha256(new),)
    assert m.files[0].read_bytes() == new
    assert m.license == "mit"  # README only cached in the older snapshot: still used

    # "newest" means last_modified, not whatever refs/main says
    future = time.time() + 3600
    os.utime(old_blob, (future, future))
    [m] = find_hf(cache_dir=cache)
    assert m.origin["revision"] == C1
    assert m.files[0].read_bytes() == old


def test_hostile_symlinks_are_skipped(hub, cache, tmp_path, caplog):
    repo = "evil/Trap-GGUF"
    good = gguf("good")
    hub.publish(repo, C1, {"trap-Q4_K_M.gguf": good})
    hub.publish("other/Neighbour", C2, {"neighbour.gguf": gguf("neighbour")})
    download(hub, cache, repo, "trap-Q4_K_M.gguf")
    download(hub, cache, "other/Neighbour", "neighbour.gguf")

    snap = repo_dir(cache, repo) / "snapshots" / C1
    outside = tmp_path / "outside.gguf"
    outside.write_bytes(gguf("outside"))
    outside_dir = tmp_path / "outside-dir"
    outside_dir.mkdir()
    (outside_dir / "inner-Q8_0.gguf").write_bytes(gguf("inner"))

    os.symlink("/etc/passwd", snap / "passwd-Q8_0.gguf")  # absolute, out of the cache
    os.symlink(os.path.relpath(outside, snap), snap / "escape-Q5_K_M.gguf")  # relative, out of the cache
    neighbour_blob = repo_dir(cache, "other/Neighbour") / "blobs" / sha256(gguf("neighbour"))
    os.symlink(os.path.relpath(neighbour_blob, snap), snap / "borrowed-Q6_K.gguf")  # another repo's blob
    os.symlink(outside_dir, snap / "linked-dir")  # a directory link out of the cache
    # a "blob" in blobs/ that is itself a link out of the cache
    fake_blob = repo_dir(cache, repo) / "blobs" / ("f" * 64)
    os.symlink(outside, fake_blob)
    os.symlink(os.path.join("..", "..", "blobs", "f" * 64), snap / "chained-IQ4_XS.gguf")
    # a link one folder down in the snapshot
    (snap / "sub").mkdir()
    os.symlink("/etc/hostname" if os.path.exists("/etc/hostname") else "/etc/passwd", snap / "sub" / "x-Q3_K_S.gguf")

    with caplog.at_level(logging.WARNING, logger="silnode.sources"):
        found = find_hf(cache_dir=cache)

    trap = [m for m in found if m.origin["repo_id"] == repo]
    assert [m.display_names for m in trap] == [("trap-Q4_K_M.gguf",)]
    assert trap[0].files == (repo_dir(cache, repo).resolve() / "blobs" / sha256(good),)
    for m in found:  # nothing handed back lies outside its own repo's blobs/
        for f in m.files:
            assert f.parent == repo_dir(cache, m.origin["repo_id"]).resolve() / "blobs"
    warned = " ".join(r.getMessage() for r in caplog.records)
    for name in ("passwd-Q8_0", "escape-Q5_K_M", "borrowed-Q6_K", "chained-IQ4_XS", "x-Q3_K_S"):
        assert name in warned


def test_plain_files_in_a_snapshot_are_accepted(hub, cache):
    """Where symlinks are unsupported huggingface_hub stores real files in snapshots/; those stay inside the repo."""
    repo = "org/NoLinks-GGUF"
    data = gguf("nolinks")
    hub.publish(repo, C1, {"nolinks-Q4_0.gguf": data})
    snap = download(hub, cache, repo, "nolinks-Q4_0.gguf")
    target = Path(os.path.realpath(snap))
    snap.unlink()
    os.replace(target, snap)  # turn the layout into the no-symlink one
    [m] = find_hf(cache_dir=cache)
    assert m.files == (snap.resolve(),)
    assert m.files[0].read_bytes() == data


def test_shared_xet_store_blobs_are_followed(hub, cache, tmp_path):
    """huggingface_hub's shared store: <repo>/blobs/<etag> -> <cache>/blobs/<xx>/<xet hash> (a marked store)."""
    repo = "org/Shared-GGUF"
    data = gguf("shared")
    hub.publish(repo, C1, {"shared-Q4_K_M.gguf": data})
    download(hub, cache, repo, "shared-Q4_K_M.gguf")
    repo_blob = repo_dir(cache, repo) / "blobs" / sha256(data)
    xet_hash = "ab" + "0" * 62
    store = cache / "blobs"
    (store / "ab").mkdir(parents=True)
    os.replace(repo_blob, store / "ab" / xet_hash)
    os.symlink(os.path.join("..", "..", "blobs", "ab", xet_hash), repo_blob)

    # without the store's marker it is just a link out of the repo: refused
    assert find_hf(cache_dir=cache) == []
    (store / ".huggingface-shared-blobs").write_text("1\n")
    [m] = find_hf(cache_dir=cache)
    assert m.files == ((store / "ab" / xet_hash).resolve(),)
    assert m.files[0].read_bytes() == data
    assert m.origin["expected_sha256"] == sha256(data)  # from the repo blob's name (the LFS etag)


def test_empty_and_missing_cache(tmp_path, cache, hub):
    assert find_hf(cache_dir=tmp_path / "nope") == []
    assert find_hf(cache_dir=cache) == []
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    assert find_hf(cache_dir=a_file) == []
    # a cache with only non-GGUF files
    hub.publish("org/Text", C1, {"config.json": b"{}"})
    download(hub, cache, "org/Text", "config.json")
    assert find_hf(cache_dir=cache) == []


def test_dataset_repos_are_ignored(hub, cache):
    hub.publish("org/Data", C1, {"data.gguf": gguf("data")}, repo_type="dataset")
    download(hub, cache, "org/Data", "data.gguf", repo_type="dataset")
    assert (cache / "datasets--org--Data" / "snapshots" / C1 / "data.gguf").exists()
    assert find_hf(cache_dir=cache) == []


def test_hf_cache_dir_follows_the_env(monkeypatch, tmp_path, hub):
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert hf_cache_dir() == tmp_path / "home" / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hf_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    assert hf_cache_dir() == tmp_path / "hfhome" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hubcache"))
    assert hf_cache_dir() == tmp_path / "hubcache"

    # find_hf() and find("hf") with no cache_dir read it at call time
    hub.publish("org/EnvRepo", C3, {"env-Q4_0.gguf": gguf("env")})
    download(hub, tmp_path / "hubcache", "org/EnvRepo", "env-Q4_0.gguf")
    assert [m.suggested_name for m in find_hf()] == ["org/envrepo"]
    assert [m.suggested_name for m in find("hf", "env")] == ["org/envrepo"]


# ---------------------------------------------------------------------------------------------------
# Ollama


def write_ollama(
    root: Path,
    model: str,
    tag: str,
    data: bytes | None = None,
    *,
    registry: str = "registry.ollama.ai",
    namespace: str = "library",
    manifest: object | None = None,
    write_blob: bool = True,
    size: int | None = None,
) -> str:
    """Lay out one pulled model the way Ollama does; returns the model layer's hex digest."""
    data = gguf(f"{model}:{tag}") if data is None else data
    hexd = sha256(data)
    if write_blob:
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        (root / "blobs" / f"sha256-{hexd}").write_bytes(data)
    license_text = b"MIT License\n"
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / f"sha256-{sha256(license_text)}").write_bytes(license_text)
    if manifest is None:
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": "sha256:" + "c" * 64,
                "size": 10,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.ollama.image.model",
                    "digest": f"sha256:{hexd}",
                    "size": len(data) if size is None else size,
                },
                {
                    "mediaType": "application/vnd.ollama.image.license",
                    "digest": f"sha256:{sha256(license_text)}",
                    "size": len(license_text),
                },
            ],
        }
    mdir = root / "manifests" / registry / namespace / model
    mdir.mkdir(parents=True, exist_ok=True)
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    (mdir / tag).write_text(text)
    return hexd


@pytest.fixture
def ollama(tmp_path, monkeypatch):
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    root = tmp_path / "ollama-models"
    root.mkdir()
    return root


def test_ollama_basic(ollama):
    data = gguf("llama3.2:1b", 128)
    hexd = write_ollama(ollama, "llama3.2", "1b", data)
    [m] = find_ollama(models_dir=ollama)
    assert m == FoundModel(
        source="ollama",
        suggested_name="ollama/llama3.2-1b",
        files=((ollama / "blobs" / f"sha256-{hexd}").resolve(),),
        display_names=("llama3.2-1b.gguf",),
        origin={
            "type": "ollama",
            "model": "llama3.2",
            "tag": "1b",
            "digest": f"sha256:{hexd}",
            "expected_sha256": hexd,
            "registry": "registry.ollama.ai",
            "namespace": "library",
        },
        license=None,
    )
    assert m.files[0].read_bytes() == data
    assert find("ollama", cache_dir=ollama) == [m]


def test_ollama_namespaces_and_registries(ollama):
    write_ollama(ollama, "mymodel", "latest", namespace="someuser")
    write_ollama(ollama, "Llama-3.2-1B-Instruct-GGUF", "Q4_K_M", registry="hf.co", namespace="bartowski")
    found = {m.suggested_name: m for m in find_ollama(models_dir=ollama)}
    assert sorted(found) == [
        "ollama/hf.co-bartowski-llama-3.2-1b-instruct-gguf-q4_k_m",
        "ollama/someuser-mymodel-latest",
    ]
    assert found["ollama/someuser-mymodel-latest"].origin["model"] == "someuser/mymodel"
    hfm = found["ollama/hf.co-bartowski-llama-3.2-1b-instruct-gguf-q4_k_m"]
    assert hfm.origin["model"] == "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF"
    assert hfm.origin["tag"] == "Q4_K_M"
    assert hfm.display_names == ("llama-3.2-1b-instruct-gguf-q4_k_m.gguf",)


def test_ollama_bad_entries_are_skipped(ollama, tmp_path, caplog):
    write_ollama(ollama, "good", "1b")
    write_ollama(ollama, "notjson", "1b", manifest="{not json")
    write_ollama(ollama, "alist", "1b", manifest=[1, 2, 3])
    write_ollama(ollama, "oldschema", "1b", manifest={"schemaVersion": 1, "layers": []})
    write_ollama(ollama, "nolayers", "1b", manifest={"schemaVersion": 2})
    write_ollama(
        ollama,
        "baddigest",
        "1b",
        manifest={
            "schemaVersion": 2,
            "layers": [
                {"mediaType": "application/vnd.ollama.image.model", "digest": "sha256:../../etc/passwd", "size": 1}
            ],
        },
    )
    write_ollama(
        ollama,
        "md5digest",
        "1b",
        manifest={
            "schemaVersion": 2,
            "layers": [{"mediaType": "application/vnd.ollama.image.model", "digest": "md5:" + "a" * 32}],
        },
    )
    write_ollama(ollama, "noblob", "1b", write_blob=False)
    write_ollama(ollama, "truncated", "1b", size=10_000)
    # a blob that is a link out of the store
    outside = tmp_path / "outside.bin"
    outside.write_bytes(gguf("outside"))
    hexd = sha256(gguf("linked"))
    os.symlink(outside, ollama / "blobs" / f"sha256-{hexd}")
    write_ollama(
        ollama,
        "linked",
        "1b",
        write_blob=False,
        manifest={
            "schemaVersion": 2,
            "layers": [{"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{hexd}"}],
        },
    )
    # no model layer at all (e.g. a safetensors import): skipped quietly
    write_ollama(
        ollama,
        "tensors",
        "1b",
        manifest={
            "schemaVersion": 2,
            "layers": [{"mediaType": "application/vnd.ollama.image.tensor", "digest": "sha256:" + "d" * 64}],
        },
    )
    # stray files at the wrong depth and hidden files are ignored
    (ollama / "manifests" / "registry.ollama.ai" / "stray").write_text("{}")
    (ollama / "manifests" / "registry.ollama.ai" / "library" / "good" / ".DS_Store").write_text("x")

    with caplog.at_level(logging.WARNING, logger="silnode.sources"):
        found = find_ollama(models_dir=ollama)
    assert [m.suggested_name for m in found] == ["ollama/good-1b"]
    warned = " ".join(r.getMessage() for r in caplog.records)
    for name in (
        "notjson",
        "alist",
        "oldschema",
        "nolayers",
        "baddigest",
        "md5digest",
        "noblob",
        "truncated",
        "linked",
    ):
        assert f"/{name}:1b" in warned


def test_ollama_names_are_sanitised(ollama):
    write_ollama(ollama, "My_Model+Fancy", "Q4_K_M")
    write_ollama(ollama, "x" * 150, "latest")
    write_ollama(ollama, "--Weird..Name__", "_Tag_")
    found = find_ollama(models_dir=ollama)
    names = [m.suggested_name for m in found]
    assert "ollama/my_model-fancy-q4_k_m" in names
    assert "ollama/weird.name__-_tag" in names
    for m in found:
        org, model = m.suggested_name.split("/")
        assert org == "ollama"
        assert 0 < len(model) <= 96
        assert all(c in "abcdefghijklmnopqrstuvwxyz0123456789._-" for c in model)
        assert model[0].isalnum() and model[-1].isalnum()
        assert len(m.display_names[0]) <= 96 and m.display_names[0].endswith(".gguf")
    long = [m for m in found if m.origin["model"] == "x" * 150]
    assert len(long) == 1 and long[0].suggested_name.startswith("ollama/xxxx")


def test_ollama_pattern_filter(ollama):
    write_ollama(ollama, "llama3.2", "1b")
    write_ollama(ollama, "llama3.2", "3b")
    write_ollama(ollama, "qwen2.5", "0.5b")

    def names(pattern):
        return [m.suggested_name for m in find_ollama(pattern, models_dir=ollama)]

    assert names(None) == ["ollama/llama3.2-1b", "ollama/llama3.2-3b", "ollama/qwen2.5-0.5b"]
    assert names("llama3.2:1b") == ["ollama/llama3.2-1b"]
    assert names("LLAMA") == ["ollama/llama3.2-1b", "ollama/llama3.2-3b"]
    assert names("*qwen*") == ["ollama/qwen2.5-0.5b"]
    assert names("llama3.2:?b") == ["ollama/llama3.2-1b", "ollama/llama3.2-3b"]
    assert names("ollama/llama3.2-3b") == ["ollama/llama3.2-3b"]  # the store name, whole
    assert names("library/llama3.2:1b") == ["ollama/llama3.2-1b"]
    assert names("registry.ollama.ai/library/qwen2.5:0.5b") == ["ollama/qwen2.5-0.5b"]
    assert names("ollama") == []  # not a substring of every registry.ollama.ai / ollama/ name
    assert names("gemma") == []


def test_ollama_missing_dir_and_env(tmp_path, monkeypatch, ollama):
    assert find_ollama(models_dir=tmp_path / "nope") == []
    assert find_ollama(models_dir=ollama) == []
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert ollama_models_dir() == tmp_path / "home" / ".ollama" / "models"
    monkeypatch.setenv("OLLAMA_MODELS", str(ollama))
    assert ollama_models_dir() == ollama
    write_ollama(ollama, "llama3.2", "1b")
    assert [m.suggested_name for m in find("ollama")] == ["ollama/llama3.2-1b"]


def test_find_rejects_unknown_sources():
    with pytest.raises(BadRequest) as err:
        find("lmstudio")
    assert "hf" in str(err.value) and "ollama" in str(err.value)
    assert err.value.status == 400
    assert sources.SOURCES == ("hf", "ollama")
