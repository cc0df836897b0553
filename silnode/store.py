"""The model store: GGUF files under ``<base_dir>/models/<org>/<model>/`` with a ``.silnode.json`` manifest.

Layout::

    <base_dir>/models/<org>/<model>/<file>.gguf     complete, verified models
    <base_dir>/models/<org>/<model>/.silnode.json   the manifest (files with size + sha256, GGUF facts, ...)
    <base_dir>/partial/<id>/                        imports/downloads in progress (same filesystem)
    <base_dir>/quarantine/<stamp>-<org>--<model>/    files that failed `verify`

A model is assembled in ``partial/`` and appears in ``models/`` with one atomic directory rename, so a crash
or a full disk never leaves a half model at its final path. Blocking work (hashing, copying) happens in the
caller's thread: the daemon runs it off the event loop.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from silnode.errors import (
    BadRequest,
    ChecksumMismatch,
    InsufficientStorage,
    InvalidGGUF,
    ManifestError,
    ModelExists,
    ModelNotFound,
    NotFound,
    SilnodeError,
    UnsafePath,
)
from silnode.fsutil import atomic_write_bytes, atomic_write_json, dir_size, fsync_dir, reflink
from silnode.gguf import SPLIT_RE, merge_split_facts, read_facts
from silnode.manifest import Manifest, ModelFile, now
from silnode.names import safe_file_name, split_name, validate_file_name, validate_name

log = logging.getLogger(__name__)

MANIFEST = ".silnode.json"
CHUNK = 8 * 1024 * 1024
Progress = Callable[[int, int], None]


def sha256_file(path: Path, progress: Progress | None = None, done: int = 0, total: int = 0) -> str:
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
            done += n
            if progress:
                progress(done, total)
    return h.hexdigest()


@dataclass(frozen=True)
class ImportSource:
    """One file to import and the name it gets inside the store."""

    path: Path
    name: str


class Store:
    def __init__(self, base_dir: Path, *, min_free_bytes: int = 0) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.models_dir = self.base_dir / "models"
        self.partial_dir = self.base_dir / "partial"
        self.quarantine_dir = self.base_dir / "quarantine"
        self.min_free_bytes = min_free_bytes
        self._lock = threading.RLock()
        self._busy: set[str] = set()  # model names with an operation in flight
        self._active_partials: set[str] = set()  # partial/<id> dirs gc must leave alone

    # ------------------------------------------------------------------ paths
    def ensure_dirs(self) -> None:
        for d in (self.models_dir, self.partial_dir, self.quarantine_dir):
            self._check_no_symlinks(d)
            d.mkdir(parents=True, exist_ok=True)

    def _check_no_symlinks(self, path: Path) -> None:
        """Refuse a path inside the store whose components (below base_dir) are symlinks."""
        try:
            rel = path.relative_to(self.base_dir)
        except ValueError as exc:
            raise UnsafePath(f"{path} is outside the store {self.base_dir}") from exc
        cur = self.base_dir
        for part in rel.parts:
            if part in ("..", ".", "") or "\x00" in part:
                raise UnsafePath(f"refusing path component {part!r} in {path}")
            cur = cur / part
            if cur.is_symlink():
                raise UnsafePath(
                    f"refusing to use {cur}: it is a symlink (the store never follows links it did not make)"
                )

    def model_dir(self, name: str) -> Path:
        org, model = split_name(name)
        path = self.models_dir / org / model
        self._check_no_symlinks(path)
        return path

    # ------------------------------------------------------------------ read
    def read_manifest(self, name: str) -> Manifest:
        path = self.model_dir(name) / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelNotFound(f"model {name} is not in the store") from None
        except (OSError, ValueError) as exc:
            raise ManifestError(f"manifest {path} is unreadable: {exc}") from exc
        try:
            return Manifest.from_json(data)
        except ManifestError as exc:
            raise ManifestError(f"manifest {path}: {exc}") from None

    def _write_manifest(self, directory: Path, manifest: Manifest) -> None:
        atomic_write_json(directory / MANIFEST, manifest.to_json())

    def exists(self, name: str) -> bool:
        return (self.model_dir(name) / MANIFEST).is_file()

    def names(self) -> list[str]:
        out = []
        if not self.models_dir.is_dir():
            return out
        for org in sorted(self.models_dir.iterdir()):
            if not org.is_dir() or org.is_symlink():
                continue
            for model in sorted(org.iterdir()):
                if model.is_dir() and not model.is_symlink() and (model / MANIFEST).is_file():
                    out.append(f"{org.name}/{model.name}")
        return out

    def list(self) -> list[Manifest]:
        out = []
        for name in self.names():
            try:
                out.append(self.read_manifest(name))
            except SilnodeError as exc:
                out.append(Manifest.invalid(name, str(exc)))
        return out

    def total_size(self) -> int:
        return dir_size(self.models_dir) if self.models_dir.is_dir() else 0

    def free_bytes(self) -> int:
        target = self.base_dir if self.base_dir.exists() else self.base_dir.parent
        return shutil.disk_usage(target).free

    # ------------------------------------------------------------------ import
    def resolve_sources(self, path: Path, *, file_name: str | None = None) -> list[ImportSource]:
        """Expand ``path`` to the files of one model: a split GGUF's part 1 brings its siblings."""
        path = Path(path).expanduser()
        if not path.exists():
            raise NotFound(f"{path}: no such file")
        if not path.is_file():
            raise BadRequest(f"{path}: not a regular file")
        real = path.resolve()
        m = SPLIT_RE.match(path.name)
        if not m:
            return [ImportSource(real, validate_file_name(file_name) if file_name else safe_file_name(path.name))]
        stem, count = m.group("stem"), int(m.group("count"))
        width = len(m.group("count"))
        sources = []
        for i in range(1, count + 1):
            part_name = f"{stem}-{i:0{width}d}-of-{m.group('count')}.gguf"
            part = path.with_name(part_name)
            if not part.is_file():
                raise BadRequest(f"split GGUF {path.name} is incomplete: {part_name} is missing")
            sources.append(ImportSource(part.resolve(), validate_file_name(part_name)))
        return sources

    def import_files(
        self,
        sources: list[ImportSource],
        name: str,
        *,
        license: str | None = None,
        source: dict[str, Any] | None = None,
        expected_sha256: Iterable[str | None] | None = None,
        link: bool = True,
        progress: Progress | None = None,
    ) -> Manifest:
        """Import ``sources`` as model ``name``: validate, hardlink (or copy), hash, place atomically.

        Raises:
            InvalidGGUF: a file is not a GGUF the reader accepts.
            ModelExists: ``name`` is taken.
            InsufficientStorage: not enough space, checked first and on ENOSPC while copying.
        """
        validate_name(name)
        if not sources:
            raise BadRequest("nothing to import")
        if len({s.name for s in sources}) != len(sources):
            raise BadRequest("two files would get the same name inside the model")
        expected = list(expected_sha256) if expected_sha256 is not None else [None] * len(sources)
        if len(expected) != len(sources):
            raise BadRequest("expected_sha256 must list one value per file")
        facts = []
        for src in sources:
            validate_file_name(src.name)
            try:
                facts.append(read_facts(src.path))
            except InvalidGGUF as exc:
                raise InvalidGGUF(f"{src.path}: {exc}") from exc
            except OSError as exc:
                raise BadRequest(f"cannot read {src.path}: {exc.strerror or exc}") from exc
        merged = facts[0] if len(facts) == 1 else merge_split_facts(facts)
        if len(facts) > 1 and (facts[0].split_count or 0) != len(facts):
            raise InvalidGGUF(f"split GGUF says {facts[0].split_count} parts, found {len(facts)}")

        self.ensure_dirs()
        with self._lock:
            if name in self._busy:
                raise ModelExists(f"model {name} is being written right now")
            if self.exists(name):
                raise ModelExists(f"model {name} is already in the store")
            self._busy.add(name)
            work_id = f"import-{secrets.token_hex(6)}"
            self._active_partials.add(work_id)
        work = self.partial_dir / work_id
        try:
            total = sum(s.path.stat().st_size for s in sources)
            work.mkdir()
            records = self._fill(work, sources, expected, total, link=link, progress=progress)
            manifest = Manifest(
                name, records, merged.to_dict(), license=license, source=source or {"type": "local"}
            ).updated(file_stats=file_stats(work, records))
            self._write_manifest(work, manifest)
            self._place(work, name)
            log.info("imported %s (%d file(s), %d bytes)", name, len(records), total)
            return manifest
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
            with self._lock:
                self._busy.discard(name)
                self._active_partials.discard(work_id)

    def _fill(
        self,
        work: Path,
        sources: list[ImportSource],
        expected: list[str | None],
        total: int,
        *,
        link: bool,
        progress: Progress | None,
    ) -> list[ModelFile]:
        same_fs = all(os.stat(s.path).st_dev == os.stat(work).st_dev for s in sources)
        if not (link and same_fs):
            free = shutil.disk_usage(work).free
            if free < total + self.min_free_bytes:
                raise InsufficientStorage(
                    f"import needs {_gib(total)} plus {_gib(self.min_free_bytes)} headroom; "
                    f"{_gib(free)} free in {self.base_dir}"
                )
        records = []
        done = 0
        for src, want in zip(sources, expected):
            dst = work / src.name
            size = src.path.stat().st_size
            linked = cloned = False
            if same_fs:
                # a copy-on-write clone first (btrfs, XFS, ...): as cheap as a hardlink, but a file of its own,
                # so an edit through the user's path never reaches the store; False where the filesystem
                # cannot clone (ext4, tmpfs, overlayfs), and then a hardlink or a copy as before
                cloned = reflink(src.path, dst)
                if cloned:
                    log.debug("reflinked %s", src.path)
            if link and same_fs and not cloned:
                try:
                    os.link(src.path, dst)
                    linked = True
                except OSError as exc:  # EPERM (protected_hardlinks), EMLINK, ...: fall back to copying
                    log.debug("hardlink of %s failed (%s); copying", src.path, exc)
            if linked or cloned:
                digest = sha256_file(dst, progress, done, total)
            else:
                digest = self._copy_hashing(src.path, dst, progress, done, total)
            done += size
            if want and digest != want.lower():
                raise ChecksumMismatch(f"{src.path}: sha256 {digest} does not match the expected {want}")
            records.append(ModelFile(src.name, size, digest, linked))
        return records

    @staticmethod
    def _copy_hashing(src: Path, dst: Path, progress: Progress | None, done: int, total: int) -> str:
        """Copy and SHA-256 in one pass; the hash of chunk i runs on a helper thread while chunk i is written
        (hashlib and file writes both release the GIL), which takes the copy from ~2.0 s to ~1.3 s per GiB here."""
        h = hashlib.sha256()
        try:
            with (
                ThreadPoolExecutor(1, thread_name_prefix="sha256") as pool,
                open(src, "rb", buffering=0) as fin,
                open(dst, "xb", buffering=0) as fout,
            ):
                while chunk := fin.read(CHUNK):
                    hashing = pool.submit(h.update, chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[fout.write(view) :]
                    hashing.result()
                    done += len(chunk)
                    if progress:
                        progress(done, total)
                os.fsync(fout.fileno())
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage(f"disk full while copying {src.name} into the store") from exc
            raise
        return h.hexdigest()

    def _place(self, work: Path, name: str) -> None:
        target = self.model_dir(name)
        with self._lock:
            if target.exists():
                raise ModelExists(f"model {name} is already in the store")
            target.parent.mkdir(parents=True, exist_ok=True)
            self._check_no_symlinks(target.parent)
            os.rename(work, target)
            fsync_dir(target.parent)

    def adopt(
        self,
        work_id: str,
        name: str,
        files: list[dict[str, Any]],
        *,
        license: str | None = None,
        source: dict[str, Any] | None = None,
        progress: Progress | None = None,
        extras: list[dict[str, Any]] | None = None,
        beside: dict[str, bytes] | None = None,
        **extra: Any,
    ) -> Manifest:
        """Move a finished download from ``partial/<work_id>/`` into the store after checking it.

        ``extras``: a foreign torrent's non-GGUF files (``{path, size}``); they move beside the model and are
        listed with their sha256 under the manifest's ``extra_files``. ``beside``: small files written next to
        the manifest (the .torrent to seed from), so they appear in ``models/`` in the same rename as the model.

        ``files`` are the expected ``{path, size, sha256}`` (from the torrent's info dict). Every file is
        re-hashed here: libtorrent's piece hashes prove the pieces, this proves the file is the one named.
        A ``sha256`` of None (a foreign torrent) is recorded from the bytes.
        """
        validate_name(name)
        work = self.partial_dir / work_id
        self._check_no_symlinks(work)
        with self._lock:
            if self.exists(name) or name in self._busy:
                raise ModelExists(f"model {name} is already in the store")
            self._busy.add(name)
        try:
            if not files:
                raise BadRequest("the download holds no .gguf file")
            extras = extras or []
            total = sum(int(f["size"]) for f in [*files, *extras])
            done = 0
            records, facts = [], []
            for f in files:
                fname = validate_file_name(f["path"])
                path = work / fname
                if path.is_symlink() or not path.is_file() or path.stat().st_size != int(f["size"]):
                    raise BadRequest(f"downloaded file {fname} is missing or has the wrong size")
                digest = sha256_file(path, progress, done, total)
                done += int(f["size"])
                if f.get("sha256") and digest != f["sha256"]:
                    raise BadRequest(f"downloaded file {fname}: sha256 {digest} does not match {f['sha256']}")
                facts.append(read_facts(path))
                records.append(ModelFile(fname, int(f["size"]), digest))
            extra_records = []
            for f in extras:
                fname = _validate_extra_name(f["path"], {r.path for r in records})
                path = work / fname
                if path.is_symlink() or not path.is_file() or path.stat().st_size != int(f["size"]):
                    raise BadRequest(f"downloaded file {fname} is missing or has the wrong size")
                digest = sha256_file(path, progress, done, total)
                done += int(f["size"])
                extra_records.append(ModelFile(fname, int(f["size"]), digest))
            merged = facts[0] if len(facts) == 1 else merge_split_facts(facts)
            # only the model files move: libtorrent may have left other entries (e.g. padding files)
            final = self.partial_dir / f"{work_id}.adopt"
            final.mkdir()
            for r in [*records, *extra_records]:
                os.rename(work / r.path, final / r.path)
            if extra_records:
                extra = {**extra, "extra_files": [r.to_json() for r in extra_records]}
            extra = {**extra, "file_stats": file_stats(final, records)}
            manifest = Manifest(
                name, records, merged.to_dict(), license=license, source=source or {"type": "local"}
            ).updated(**extra)
            for fname, blob in (beside or {}).items():
                if fname in (MANIFEST, *(r.path for r in [*records, *extra_records])) or "/" in fname:
                    raise BadRequest(f"refusing to write {fname!r} beside the model")
                atomic_write_bytes(final / fname, blob)
            self._write_manifest(final, manifest)
            try:
                self._place(final, name)
            finally:
                if final.exists():  # put the files back so the transfer can be retried
                    for r in [*records, *extra_records]:
                        if (final / r.path).exists():
                            os.rename(final / r.path, work / r.path)
                    shutil.rmtree(final, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)
            log.info("added %s from download (%d file(s), %d bytes)", name, len(records), total)
            return manifest
        finally:
            with self._lock:
                self._busy.discard(name)

    def update_manifest(self, name: str, **fields: Any) -> Manifest:
        """Set top-level manifest fields (infohash, magnet, seeding, ...) atomically."""
        with self._lock:
            manifest = self.read_manifest(name).updated(**fields)
            self._write_manifest(self.model_dir(name), manifest)
            return manifest

    # ------------------------------------------------------------------ remove / verify / gc
    def remove(self, name: str) -> dict[str, Any]:
        target = self.model_dir(name)
        with self._lock:
            if name in self._busy:
                raise ModelExists(f"model {name} is busy (import or verify in progress)")
            if not (target / MANIFEST).is_file():
                raise ModelNotFound(f"model {name} is not in the store")
            size = dir_size(target)
            trash = self.partial_dir / f"trash-{secrets.token_hex(6)}"
            self.partial_dir.mkdir(parents=True, exist_ok=True)
            os.rename(target, trash)  # atomic: the model is gone from models/ at once
            fsync_dir(target.parent)
            try:
                target.parent.rmdir()  # drop the org dir when it is empty
            except OSError:
                pass
        shutil.rmtree(trash, ignore_errors=True)
        log.info("removed %s (%d bytes)", name, size)
        return {"name": name, "freed": size}

    def verify(self, name: str, progress: Progress | None = None) -> dict[str, Any]:
        """Re-hash a model's files against its manifest; move damaged files to quarantine."""
        manifest = self.read_manifest(name)
        mdir = self.model_dir(name)
        with self._lock:
            if name in self._busy:
                raise ModelExists(f"model {name} is busy")
            self._busy.add(name)
        try:
            total = manifest.total_size
            done = 0
            results = []
            problems = []
            for rec in manifest.files:
                fname = validate_file_name(rec.path)
                path = mdir / fname
                result = {"path": fname, "ok": True, "reason": None}
                if path.is_symlink() or not path.is_file():
                    result.update(ok=False, reason="missing")
                elif path.stat().st_size != rec.size:
                    result.update(ok=False, reason=f"size {path.stat().st_size} != {rec.size}")
                elif rec.sha256 and sha256_file(path, progress, done, total) != rec.sha256:
                    result.update(ok=False, reason="sha256 mismatch")
                done += rec.size
                if not result["ok"]:
                    problems.append(f"{fname}: {result['reason']}")
                    if path.is_file() and not path.is_symlink():
                        result["quarantined"] = str(self._quarantine(name, path))
                results.append(result)
            # read-modify-write under the lock: the hashing above ran without it, and a seeding toggle, a new
            # magnet or a damaged mark written meanwhile must survive (only verify's own fields change)
            with self._lock:
                manifest = self.read_manifest(name)
                stats = manifest.extra.get("file_stats") if problems else file_stats(mdir, manifest.files)
                manifest = manifest.updated(
                    state="damaged" if problems else "ok", problems=problems, verified_at=now(), file_stats=stats
                )
                self._write_manifest(mdir, manifest)
            return {"name": name, "ok": not problems, "files": results}
        finally:
            with self._lock:
                self._busy.discard(name)

    def _quarantine(self, name: str, path: Path) -> Path:
        org, model = split_name(name)
        qdir = self.quarantine_dir / f"{time.strftime('%Y%m%dT%H%M%S')}-{org}--{model}"
        qdir.mkdir(parents=True, exist_ok=True)
        dest = qdir / path.name
        os.rename(path, dest)
        log.warning("quarantined damaged file %s -> %s", path, dest)
        return dest

    def gc(self) -> dict[str, Any]:
        """Remove orphaned partials (not owned by a running operation) and quarantined files."""
        removed = []
        freed = 0
        with self._lock:
            active = set(self._active_partials)
        for area, keep in ((self.partial_dir, active), (self.quarantine_dir, set())):
            if not area.is_dir():
                continue
            for entry in sorted(area.iterdir()):
                if entry.name in keep:
                    continue
                size = dir_size(entry) if entry.is_dir() and not entry.is_symlink() else entry.lstat().st_size
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append({"path": str(entry), "bytes": size})
                freed += size
        # stray temp files of interrupted manifest writes
        if self.models_dir.is_dir():
            for tmp in self.models_dir.glob("*/*/.*.tmp"):
                freed += tmp.lstat().st_size
                removed.append({"path": str(tmp), "bytes": tmp.lstat().st_size})
                tmp.unlink(missing_ok=True)
        return {"freed": freed, "removed": removed}

    def register_partial(self, work_id: str) -> Path:
        """Reserve ``partial/<work_id>`` for a long operation (downloads); gc leaves it alone."""
        with self._lock:
            self._active_partials.add(work_id)
        path = self.partial_dir / work_id
        self._check_no_symlinks(path)
        return path

    def release_partial(self, work_id: str) -> None:
        with self._lock:
            self._active_partials.discard(work_id)


def file_stats(directory: Path, records: Iterable[Any]) -> dict[str, list[int]]:
    """``{file: [size, mtime_ns, inode]}``: what the model's files looked like when they were last verified.
    A hardlinked import shares its bytes with the user's original path, so an edit there changes the stored
    model; a differing entry on start makes the node recheck the model before it seeds it."""
    out = {}
    for r in records:
        st = os.stat(directory / r.path)
        out[r.path] = [st.st_size, st.st_mtime_ns, st.st_ino]
    return out


def files_changed(directory: Path, manifest: Manifest) -> bool:
    """True when a file's size, mtime or inode differs from the manifest's ``file_stats`` (or it is gone)."""
    known = manifest.extra.get("file_stats")
    if not isinstance(known, dict):
        return False  # recorded by an older version: nothing to compare with
    try:
        return file_stats(directory, manifest.files) != {k: list(v) for k, v in known.items()}
    except OSError:
        return True


_EXTRA_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def _validate_extra_name(name: object, model_files: set[str]) -> str:
    """A foreign torrent's extra file: one plain path component that cannot shadow the manifest or a model file."""
    if not isinstance(name, str) or not _EXTRA_RE.fullmatch(name) or ".." in name or name in model_files:
        raise BadRequest(f"refusing extra file name {str(name)[:80]!r}")
    return name


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"
