"""Leak detector for tests: grep a directory tree and captured output for secrets, in the encodings they leak as.

Use it in a daemon-wide leak test::

    canary = make_canary()                      # plant it: ks.set_secret(pw, "canary", canary)
    ... run the daemon with DEBUG logs, the CLI (--json too), the REST API; capture every output ...
    selftest(tmp_path / "selftest")             # prove the detector finds a deliberately leaked copy
    assert_no_leaks([canary, *identity.leak_needles()], paths=[home], texts={"stdout": out, "log": log})

Each secret is searched as given and as hex / base64 (bytes) or JSON-escaped / URL-quoted (text); gzip files
(rotated logs) are searched decompressed. A report names where a secret was found (file and offset, or the
text's label), never the secret itself, so a failing test does not leak it into CI logs in turn.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import secrets as _secrets
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Leak:
    where: str  # a file path, or "text:<label>"
    offset: int
    needle: int  # index into the needle list (not the needle: a report must not leak it)

    def __str__(self) -> str:
        return f"{self.where} at byte {self.offset} (needle #{self.needle})"


def make_canary(prefix: str = "silnode-canary") -> str:
    """A unique, unmistakable secret value to plant before a leak test."""
    return f"{prefix}-{_secrets.token_hex(16)}"


def needles_for(secret: str | bytes, min_len: int = 8) -> list[bytes]:
    """The byte strings ``secret`` could appear as: raw, hex/HEX/base64 for bytes; JSON-escaped and
    URL-quoted forms for text (only those that differ from the raw form)."""
    out: list[bytes] = []
    if isinstance(secret, bytes):
        out += [
            secret,
            secret.hex().encode(),
            secret.hex().upper().encode(),
            base64.b64encode(secret),
            base64.urlsafe_b64encode(secret).rstrip(b"="),
        ]
    else:
        out += [
            secret.encode(),
            json.dumps(secret)[1:-1].encode(),
            json.dumps(secret, ensure_ascii=False)[1:-1].encode(),
            urllib.parse.quote_plus(secret).encode(),
            urllib.parse.quote(secret).encode(),
        ]
    unique: list[bytes] = []
    for n in out:
        if len(n) >= min_len and n not in unique:
            unique.append(n)
    return unique


def _expand(secrets: Any, min_len: int) -> list[bytes]:
    if isinstance(secrets, (str, bytes)):
        secrets = [secrets]
    needles: list[bytes] = []
    for s in secrets:
        if hasattr(s, "leak_needles"):  # an Identity
            new = s.leak_needles(min_len)
        else:
            new = needles_for(s, min_len)
        needles += [n for n in new if n not in needles]
    if not needles:
        raise ValueError(f"nothing to search for (every secret is shorter than {min_len} bytes)")
    return needles


def _scan_stream(read, needles: list[bytes], where: str) -> list[Leak]:
    found: list[Leak] = []
    seen: set[int] = set()
    keep = max(len(n) for n in needles) - 1
    tail, base = b"", 0  # base: stream offset of tail[0]
    while True:
        chunk = read(_CHUNK)
        if not chunk:
            break
        buf = tail + chunk
        for i, n in enumerate(needles):
            if i not in seen and (pos := buf.find(n)) >= 0:
                seen.add(i)
                found.append(Leak(where, base + pos, i))
        cut = max(len(buf) - keep, 0)
        base += cut
        tail = buf[cut:]
    return found


def _scan_file(path: Path, needles: list[bytes]) -> list[Leak]:
    try:
        with open(path, "rb") as fh:
            found = _scan_stream(fh.read, needles, str(path))
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as gz:
                found += _scan_stream(gz.read, needles, f"{path} (decompressed)")
    except (OSError, EOFError, gzip.BadGzipFile):
        pass  # unreadable or vanished (a daemon's tmp file): nothing to scan
    return found


def iter_files(paths: Iterable[str | os.PathLike[str]]) -> Iterable[Path]:
    """Every regular file under ``paths`` (files or directories), symlinks not followed."""
    for p in paths:
        p = Path(p)
        if p.is_symlink():
            continue
        if p.is_file():
            yield p
        elif p.is_dir():
            for root, dirs, files in os.walk(p, followlinks=False):
                dirs.sort()
                for name in sorted(files):
                    f = Path(root) / name
                    if not f.is_symlink() and f.is_file():
                        yield f


def find_leaks(
    secrets: Any,
    *,
    paths: Iterable[str | os.PathLike[str]] = (),
    texts: Mapping[str, str | bytes] | Iterable[str | bytes] = (),
    exclude: Iterable[str | os.PathLike[str]] = (),
    min_len: int = 8,
) -> list[Leak]:
    """Where any of ``secrets`` (str, bytes, Identity, or a list of them) occurs in files under ``paths``
    or in ``texts`` (captured stdout/stderr/logs/HTTP bodies: a mapping label -> text, or a list).

    ``exclude`` names files that may legitimately hold a secret in the clear (none should: the keystore is
    encrypted, and is searched like any other file).
    """
    needles = _expand(secrets, min_len)
    skip = {Path(e).resolve() for e in exclude}
    leaks: list[Leak] = []
    for f in iter_files(paths):
        if f.resolve() not in skip:
            leaks += _scan_file(f, needles)
    items = texts.items() if isinstance(texts, Mapping) else ((str(i), t) for i, t in enumerate(texts))
    for label, text in items:
        data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text)
        leaks += _scan_stream(io.BytesIO(data).read, needles, f"text:{label}")
    return leaks


def assert_no_leaks(secrets: Any, **kwargs: Any) -> None:
    leaks = find_leaks(secrets, **kwargs)
    if leaks:
        raise AssertionError("secret found in: " + "; ".join(str(x) for x in leaks))


def selftest(workdir: str | os.PathLike[str]) -> None:
    """Prove the detector works: leak a canary on purpose in several forms and require each to be found.

    Raises AssertionError when any planted copy is missed (then a clean leak test proves nothing).
    """
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    canary = make_canary()
    raw_key = _secrets.token_bytes(32)
    deep = work / "a" / "b"
    deep.mkdir(parents=True, exist_ok=True)
    (work / "clean.txt").write_text("nothing to see\n")
    (deep / "leaked.log").write_text(f"DEBUG payload={json.dumps({'v': canary})}\n")
    with gzip.open(work / "rotated.log.gz", "wt") as gz:
        gz.write("x" * 3_000_000 + canary)  # past the first read chunk: tests the chunk overlap
    (work / "key.json").write_text(json.dumps({"k": raw_key.hex()}))
    files = {str(p) for p in (deep / "leaked.log", work / "rotated.log.gz")}
    got = find_leaks(canary, paths=[work], texts={"stdout": f"ok\n{canary}\n", "clean": "ok"})
    where = {x.where.replace(" (decompressed)", "") for x in got}
    missing = (files | {"text:stdout"}) - where
    if missing:
        raise AssertionError(f"leak detector missed a planted canary in: {sorted(missing)}")
    if any(x.where in (str(work / "clean.txt"), "text:clean") for x in got):
        raise AssertionError("leak detector reported a clean file")
    if not any(x.where == str(work / "key.json") for x in find_leaks(raw_key, paths=[work])):
        raise AssertionError("leak detector missed a hex-encoded key")
