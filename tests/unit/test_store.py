"""The model store on real files: hardlink/copy, split GGUFs, path safety, verify, gc, full disks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ggufgen import make_gguf
from mounts import tmpfs

from silnode.errors import BadRequest, InsufficientStorage, InvalidGGUF, ModelExists, ModelNotFound, UnsafePath
from silnode.store import MANIFEST, Store, sha256_file


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "base")
    s.ensure_dirs()
    return s


def imp(store: Store, path: Path, name: str, **kw):
    return store.import_files(store.resolve_sources(path), name, **kw).to_json()


def test_import_hardlinks_and_records_facts(store, tiny_gguf):
    m = imp(store, tiny_gguf, "org/tiny", license="mit")
    dest = store.models_dir / "org" / "tiny" / "tiny.gguf"
    assert dest.stat().st_ino == tiny_gguf.stat().st_ino  # hardlinked, not copied
    assert m["files"] == [
        {"path": "tiny.gguf", "size": tiny_gguf.stat().st_size, "sha256": sha256_file(tiny_gguf), "linked": True}
    ]
    assert m["gguf"]["arch"] == "llama" and m["gguf"]["params"] > 0 and m["gguf"]["quant"] == "F32"
    assert m["gguf"]["has_chat_template"] is True
    assert m["license"] == "mit" and m["state"] == "ok"
    on_disk = json.loads((dest.parent / MANIFEST).read_text())
    assert on_disk == m
    assert store.names() == ["org/tiny"]
    assert not any(store.partial_dir.iterdir())


def test_import_copy_when_asked(store, tiny_q8):
    progress = []
    m = imp(store, tiny_q8, "org/q8", link=False, progress=lambda d, t: progress.append((d, t)))
    dest = store.models_dir / "org" / "q8" / tiny_q8.name
    assert dest.stat().st_ino != tiny_q8.stat().st_ino
    assert m["files"][0]["linked"] is False and m["gguf"]["quant"] == "Q8_0"
    assert dest.read_bytes() == tiny_q8.read_bytes()
    assert progress[-1] == (tiny_q8.stat().st_size, tiny_q8.stat().st_size)


def test_split_gguf_is_one_model(store, split_parts):
    m = imp(store, split_parts[0], "org/split")
    assert [f["path"] for f in m["files"]] == [p.name for p in split_parts]
    assert m["gguf"]["split_count"] == 3
    parts_params = m["gguf"]["params"]
    assert parts_params > 0
    assert len(store.names()) == 1


def test_incomplete_split_refused(tmp_path, store, split_parts):
    d = tmp_path / "incomplete"
    d.mkdir()
    for p in split_parts[:2]:
        shutil.copy(p, d / p.name)
    with pytest.raises(BadRequest, match="missing"):
        imp(store, d / split_parts[0].name, "org/split")


def test_name_taken(store, tiny_gguf):
    imp(store, tiny_gguf, "org/tiny")
    with pytest.raises(ModelExists):
        imp(store, tiny_gguf, "org/tiny")


def test_not_a_gguf_leaves_nothing(tmp_path, store):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\xff" * 100)
    with pytest.raises(InvalidGGUF):
        imp(store, bad, "org/bad")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(InvalidGGUF):
        imp(store, text, "org/notes")
    assert store.names() == [] and not any(store.partial_dir.iterdir())


def test_expected_sha256_checked(store, tiny_gguf):
    with pytest.raises(BadRequest, match="does not match"):
        store.import_files(store.resolve_sources(tiny_gguf), "org/x", expected_sha256=["00" * 32])
    assert store.names() == []


@pytest.mark.parametrize("name", ["../escape", "org/../../x", "/etc/x", "org/x\x00y", "org/.."])
def test_path_escapes_refused(store, tiny_gguf, name):
    with pytest.raises(Exception) as e:
        imp(store, tiny_gguf, name)
    assert e.value.__class__.__name__ in ("InvalidName", "UnsafePath")
    assert store.names() == []


def test_hostile_symlinks_refused(tmp_path, store, tiny_gguf):
    outside = tmp_path / "outside"
    outside.mkdir()
    (store.models_dir / "evil").symlink_to(outside)
    with pytest.raises(UnsafePath, match="symlink"):
        imp(store, tiny_gguf, "evil/model")
    assert list(outside.iterdir()) == []
    # a symlinked model dir is neither listed nor readable through the store
    (store.models_dir / "org").mkdir()
    (store.models_dir / "org" / "link").symlink_to(outside)
    assert store.names() == []
    with pytest.raises(UnsafePath):
        store.read_manifest("org/link").to_json()


def test_symlinked_partial_area_refused(tmp_path, tiny_gguf):
    s = Store(tmp_path / "b2")
    (tmp_path / "b2").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "b2" / "partial").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafePath):
        s.ensure_dirs()


def test_verify_quarantines_damage(store, tiny_q8):
    imp(store, tiny_q8, "org/q8", link=False)
    assert store.verify("org/q8")["ok"]
    f = store.models_dir / "org" / "q8" / tiny_q8.name
    with open(f, "r+b") as fh:
        fh.seek(f.stat().st_size // 2)
        fh.write(b"\x00\x01\x02")
    report = store.verify("org/q8")
    assert not report["ok"] and report["files"][0]["reason"] == "sha256 mismatch"
    assert not f.exists()
    assert Path(report["files"][0]["quarantined"]).is_file()
    m = store.read_manifest("org/q8").to_json()
    assert m["state"] == "damaged" and m["problems"]
    assert store.verify("org/q8")["files"][0]["reason"] == "missing"
    freed = store.gc()
    assert freed["freed"] == tiny_q8.stat().st_size
    assert not any(store.quarantine_dir.iterdir())


def test_gc_spares_active_partials(store):
    (store.partial_dir / "orphan").mkdir()
    (store.partial_dir / "orphan" / "x.gguf").write_bytes(b"x" * 1000)
    active = store.register_partial("dl-live")
    active.mkdir()
    (active / "y").write_bytes(b"y" * 10)
    r = store.gc()
    assert r["freed"] == 1000 and [e["path"] for e in r["removed"]] == [str(store.partial_dir / "orphan")]
    assert active.exists()
    store.release_partial("dl-live")
    assert store.gc()["freed"] == 10


def test_remove(store, tiny_gguf):
    imp(store, tiny_gguf, "org/tiny")
    assert store.remove("org/tiny")["freed"] > 0
    assert store.names() == [] and not (store.models_dir / "org").exists()
    assert tiny_gguf.exists()  # the user's file survives (it was hardlinked)
    with pytest.raises(ModelNotFound):
        store.remove("org/tiny")


def test_list_survives_broken_manifest(store, tiny_gguf):
    imp(store, tiny_gguf, "org/tiny")
    (store.models_dir / "org" / "tiny" / MANIFEST).write_text("{not json")
    [entry] = [m.to_json() for m in store.list()]
    assert entry["state"] == "invalid_manifest"


# ---------------------------------------------------------------- real small filesystems (tmpfs, needs root)


@pytest.fixture(scope="module")
def three_mib_gguf(tmp_path_factory):
    return make_gguf(tmp_path_factory.mktemp("g3") / "three.gguf", vocab_size=12000, seed=3)


def test_disk_full_refused_up_front(tmp_path, three_mib_gguf):
    with tmpfs(tmp_path / "small", "2m") as mnt:
        s = Store(mnt / "base")
        with pytest.raises(InsufficientStorage, match="free"):
            imp(s, three_mib_gguf, "org/big")
        assert s.names() == [] and not any(s.partial_dir.iterdir())


def test_disk_fills_during_copy(tmp_path, three_mib_gguf, monkeypatch):
    """The free-space check passes (a racing writer took the space later): ENOSPC mid-copy, nothing placed."""
    with tmpfs(tmp_path / "small", "2m") as mnt:
        s = Store(mnt / "base")
        real = shutil.disk_usage
        monkeypatch.setattr("silnode.store.shutil.disk_usage", lambda p: real(p)._replace(free=10 * 2**30))
        with pytest.raises(InsufficientStorage, match="disk full"):
            imp(s, three_mib_gguf, "org/big")
        assert s.names() == []
        assert not (s.models_dir / "org" / "big").exists()
        assert not any(s.partial_dir.iterdir())
        assert real(mnt).used < 64 * 1024  # the partial copy was deleted


def test_copy_across_filesystems(tmp_path, tiny_gguf):
    with tmpfs(tmp_path / "src", "4m") as mnt:
        src = mnt / "m.gguf"
        shutil.copy(tiny_gguf, src)
        s = Store(tmp_path / "base")
        m = imp(s, src, "org/m")
        assert m["files"][0]["linked"] is False
        assert (s.models_dir / "org" / "m" / "m.gguf").read_bytes() == src.read_bytes()


def test_verify_keeps_changes_made_while_it_hashes(store, tiny_gguf):
    """verify hashes without the lock; what others wrote meanwhile (a seeding toggle, a new magnet) stays."""
    import threading

    imp(store, tiny_gguf, "org/tiny")
    store.update_manifest("org/tiny", seeding=True)
    changed = threading.Event()

    def progress(done: int, total: int) -> None:
        if not changed.is_set():  # another thread toggles seeding and records a magnet mid-verify
            t = threading.Thread(
                target=store.update_manifest,
                args=("org/tiny",),
                kwargs={"seeding": False, "magnet": "magnet:?xt=urn:btih:" + "a" * 40},
            )
            t.start()
            t.join()
            changed.set()

    result = store.verify("org/tiny", progress)
    assert result["ok"] and changed.is_set()
    m = store.read_manifest("org/tiny").to_json()
    assert m["seeding"] is False and m["magnet"] == "magnet:?xt=urn:btih:" + "a" * 40
    assert m["state"] == "ok" and m["verified_at"]
