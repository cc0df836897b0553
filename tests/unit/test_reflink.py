"""fsutil.reflink: a copy-on-write clone where the filesystem can, else False and nothing left behind.

No filesystem on the machines this runs on clones (ext4, tmpfs, overlayfs), so the clone itself is not
exercised here; the fallback is, on filesystems that refuse FICLONE by design: tmpfs, and two different
filesystems (EXDEV, which every kernel refuses)."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import pytest

from silnode import fsutil
from silnode.store import ImportSource, Store

SHM = Path("/dev/shm")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_tmpfs_cannot_clone_and_leaves_nothing():
    with tempfile.TemporaryDirectory(dir=SHM) as d:
        src = _write(Path(d) / "a.bin", b"x" * 10000)
        dst = Path(d) / "b.bin"
        assert fsutil.reflink(src, dst) is False
        assert not dst.exists()


def test_across_filesystems_cannot_clone(tmp_path):
    assert os.stat(SHM).st_dev != os.stat(tmp_path).st_dev
    with tempfile.TemporaryDirectory(dir=SHM) as d:
        src = _write(Path(d) / "a.bin", b"y" * 5000)
        dst = tmp_path / "b.bin"
        assert fsutil.reflink(src, dst) is False
        assert not dst.exists()


def test_existing_destination_is_an_error_not_a_fallback(tmp_path):
    src = _write(tmp_path / "a.bin", b"a")
    dst = _write(tmp_path / "b.bin", b"keep me")
    with pytest.raises(FileExistsError):
        fsutil.reflink(src, dst)
    assert dst.read_bytes() == b"keep me"


def test_other_ioctl_errors_are_raised_and_clean_up(tmp_path, monkeypatch):
    """ENOSPC is not "cannot clone": it surfaces, and the empty destination is removed."""

    def full(fd, op, arg):
        assert op == fsutil.FICLONE
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fsutil.fcntl, "ioctl", full)
    src = _write(tmp_path / "a.bin", b"a")
    with pytest.raises(OSError) as err:
        fsutil.reflink(src, tmp_path / "b.bin")
    assert err.value.errno == errno.ENOSPC
    assert not (tmp_path / "b.bin").exists()


def test_import_on_a_filesystem_without_clones_still_hardlinks_or_copies(tmp_path, tiny_gguf):
    """The store tries a clone first; where there is none it falls back to a hardlink (link=True) or a copy."""
    store = Store(tmp_path / "store")
    store.ensure_dirs()
    src = tmp_path / "m.gguf"
    src.write_bytes(tiny_gguf.read_bytes())

    linked = store.import_files([ImportSource(src, "m.gguf")], "a/linked", link=True)
    copied = store.import_files([ImportSource(src, "m.gguf")], "a/copied", link=False)
    assert linked.files[0].linked and not copied.files[0].linked
    assert os.stat(store.model_dir("a/linked") / "m.gguf").st_ino == os.stat(src).st_ino
    assert os.stat(store.model_dir("a/copied") / "m.gguf").st_ino != os.stat(src).st_ino
    assert (store.model_dir("a/copied") / "m.gguf").read_bytes() == src.read_bytes()
