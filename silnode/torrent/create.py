"""Deterministic torrents for a model's files, our ``silnode`` key, magnets and download targets.

The same bytes must give the same infohash whoever shares them (design.md, Distribution). So everything that
goes into the info dict is a function of the files' *content and file names* only:

* **Piece length** — :func:`piece_length`, a fixed function of the total size.
* **Torrent name / layout** — never the model's store name (``org/model``): two nodes that import the same
  GGUF under different model names must land in the same swarm.

  - one file: a single-file torrent whose ``name`` is the file name (``model-q4_k_m.gguf``);
  - several files (a split GGUF): a multi-file torrent whose directory ``name`` is derived from the file
    names (:func:`torrent_dir_name`: the first file's name without ``.gguf`` and without llama.cpp's
    ``-00001-of-00003`` split suffix), files directly under it, no sub-directories.

  File names ARE part of the content a downloader needs (split parts find each other by name), so they are
  in the torrent: renaming a file changes the infohash; renaming the *model* does not.
  On disk silnode always keeps a model's files flat in one directory (``models/<org>/<model>/<file>``,
  ``partial/<id>/<file>``); :mod:`silnode.torrent.session` maps the torrent's ``<dir>/<file>`` onto that
  flat layout locally (libtorrent's file renaming does not touch the infohash).
* **Hybrid v1+v2** (``lt.create_torrent(files, piece_len, 0)``): v1 for any client, v2 for per-file SHA-256
  merkle roots. The v1 infohash (hex) is the model's id; v2 hashes are accepted as targets too.
* **Our key** — ``info["silnode"] = {"v": 1, "files": [{"path", "size", "sha256"}]}`` and nothing else:
  the facts a downloader verifies the finished files against. Inside ``info`` it is covered by both
  infohashes and travels with the metadata a magnet fetches from peers (ut_metadata sends the raw info
  dict). ``sha256`` is the 64-character lowercase **hex string** (as bytes), not 32 raw bytes: it reads the
  same in the manifest, the catalog and any bencode dump, and 32 extra bytes per file do not matter.
  Files are listed sorted by path, the order libtorrent uses for v2 file trees.
  Optional ``gguf``: the model's shape as :func:`silnode.fit.estimate.portable_shape` gives it (layers,
  heads, KV heads, head sizes, FFN, vocabulary, tensor bytes, ...: a function of the GGUF header, so the
  infohash stays a function of the content). It lets a downloader compute the full memory estimate from the
  metadata alone, before any data, and refuse a model that won't fit its machine.
* No ``creation date``, ``created by`` or ``comment``: outside ``info`` they do not change the infohash, but
  without them the whole .torrent file is byte-for-byte reproducible. Web seeds (``url-list``, BEP 19) are
  outside ``info`` on purpose: adding an HTTP origin does not fork the swarm.

Blocking: :func:`make_torrent` hashes every byte (SHA-1 and SHA-256, ~0.85 GB/s warm, disk-bound cold); the
daemon runs it off the event loop. The rest is cheap.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from silnode.errors import BadTorrent, SilnodeError, TorrentError
from silnode.fit.estimate import portable_shape
from silnode.gguf import read_header
from silnode.torrent._lt import libtorrent

OUR_KEY = b"silnode"
OUR_KEY_VERSION = 1
MIN_PIECE = 256 * 1024
MAX_PIECE = 16 * 1024 * 1024
TARGET_PIECES = 1024

# a file inside a torrent (and inside a model directory): one plain path component
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_SPLIT_SUFFIX_RE = re.compile(r"-\d{5}-of-\d{5}$")
_HEX40 = re.compile(r"^[0-9a-fA-F]{40}$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_B32 = re.compile(r"^[A-Za-z2-7]{32}$")

Progress = Callable[[int, int], None]

# libtorrent's torrent_flags::disable_v1_hashes (2.1, not named in the Python binding): check a hybrid's pieces
# against its SHA-256 merkle tree only. OFF, and why (README "A hostile peer", bench/hostile_peer.py):
# with both checks on, a hostile peer can end a hybrid download: while the piece layer is not yet known (a
# download from a magnet or bare hash), the SHA-256 leaf hashes of a piece that failed its SHA-1 check stay
# in the merkle tree; a good piece that later completes the same subtree then "fails" SHA-256 while it passed
# SHA-1, and libtorrent stops the torrent for good with "v1 and v2 hashes do not describe the same data"
# (torrent::handle_inconsistent_hashes drops every piece and pauses; a recheck replays the bad bytes on disk).
# SHA-256-only checks end that (0 of 30 runs failed, against 14 of 30), but here libtorrent verifies no piece
# before the whole file's tree is in (the piece layer never arrived from the peers): resume data mid-download
# holds no piece, a bad block fails every piece of the file and honest peers are banned beside the hostile
# one. Kept as a switch for the bench: the error is handled instead by adding the torrent again
# (DistributionService._recover: a fresh merkle tree, the pieces on disk that pass kept).
DISABLE_V1_HASHES = 1 << 25
HYBRID_V2_ONLY = False


# --------------------------------------------------------------------------------------------- piece length
def piece_length(total_size: int) -> int:
    """The piece length for ``total_size`` bytes: the largest power of two ``p`` with ``p * 1024 <= total``,
    clamped to 256 KiB .. 16 MiB.

    That gives 1024-2048 pieces inside the clamp (e.g. 4 MiB for 4-8 GiB, 2 MiB for 2-4 GiB): few enough for a
    small .torrent and cheap piece bookkeeping, many enough that a swarm spreads work. Small models get
    256 KiB pieces (fewer than 1024 of them; 16 KiB-block v2 trees stay small); models above 16 GiB get
    16 MiB pieces (more than 2048 of them). Changing this function changes every infohash: don't.
    """
    if isinstance(total_size, bool) or not isinstance(total_size, int) or total_size < 0:
        raise BadTorrent(f"total size must be a non-negative integer, got {total_size!r}")
    p = MIN_PIECE
    while p < MAX_PIECE and p * 2 * TARGET_PIECES <= total_size:
        p *= 2
    return p


# --------------------------------------------------------------------------------------------- file records
def _check_name(path: Any, where: str) -> str:
    if not isinstance(path, str) or not FILE_NAME_RE.fullmatch(path) or ".." in path:
        raise BadTorrent(
            f"{where}: file name {str(path)[:80]!r} is not a plain file name "
            "(letters, digits, '.', '_', '-'; no directories)"
        )
    return path


def _check_record(rec: Any, where: str) -> dict[str, Any]:
    if not isinstance(rec, Mapping):
        raise BadTorrent(f"{where}: a file entry must be a mapping, got {type(rec).__name__}")
    path = _check_name(rec.get("path"), where)
    size = rec.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise BadTorrent(f"{where}: {path}: size must be a non-negative integer, got {size!r}")
    digest = rec.get("sha256")
    if not isinstance(digest, str) or not SHA256_RE.fullmatch(digest):
        raise BadTorrent(f"{where}: {path}: sha256 must be 64 lowercase hex characters, got {str(digest)[:80]!r}")
    return {"path": path, "size": size, "sha256": digest}


def _check_records(files: Iterable[Any], where: str) -> list[dict[str, Any]]:
    recs = [_check_record(f, where) for f in files]
    if not recs:
        raise BadTorrent(f"{where}: no files")
    names = [r["path"] for r in recs]
    if len(set(names)) != len(names):
        raise BadTorrent(f"{where}: duplicate file names {sorted({n for n in names if names.count(n) > 1})}")
    return sorted(recs, key=lambda r: r["path"])


def torrent_dir_name(paths: Sequence[str]) -> str:
    """The directory name of a multi-file torrent: derived from the (sorted) file names only.

    ``["m-00001-of-00002.gguf", "m-00002-of-00002.gguf"]`` -> ``"m"``; ``["a.gguf", "b.gguf"]`` -> ``"a"``.
    """
    first = min(paths)
    stem = first.removesuffix(".gguf")
    stem = _SPLIT_SUFFIX_RE.sub("", stem)
    return stem if FILE_NAME_RE.fullmatch(stem) else "model"


def _our_key_entry(recs: list[dict[str, Any]], shape: dict[str, Any] | None) -> dict[bytes, Any]:
    entry = {
        b"v": OUR_KEY_VERSION,
        b"files": [{b"path": r["path"].encode(), b"size": r["size"], b"sha256": r["sha256"].encode()} for r in recs],
    }
    if shape is not None:
        entry[b"gguf"] = _to_bencode(shape)
    return entry


def _to_bencode(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k).encode(): _to_bencode(v) for k, v in obj.items()}
    if isinstance(obj, str):
        return obj.encode()
    if isinstance(obj, (list, tuple)):
        return [_to_bencode(v) for v in obj]
    return int(obj)


def _from_bencode(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k.decode("ascii", "replace"): _from_bencode(v) for k, v in obj.items()}
    if isinstance(obj, bytes):
        return obj.decode("ascii", "replace")
    if isinstance(obj, list):
        return [_from_bencode(v) for v in obj]
    return obj


def _gguf_shape(base_dir: Path, recs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first file's shape (part 1 of a split GGUF holds the header), None when it is not a GGUF."""

    first = recs[0]["path"]
    if not first.endswith(".gguf"):
        return None
    try:
        return portable_shape(read_header(base_dir / first))
    except (SilnodeError, ValueError, OSError):
        return None


# --------------------------------------------------------------------------------------------- make_torrent
def make_torrent(
    base_dir: Path,
    files: Sequence[Mapping[str, Any]],
    *,
    web_seeds: Iterable[str] = (),
    progress: Progress | None = None,
    v1_only: bool = False,
) -> bytes:
    """Build the .torrent (bencoded bytes) for ``files`` that lie flat in ``base_dir``.

    ``v1_only`` makes a BitTorrent v1 torrent instead of a hybrid one, for clients without BEP 52: Debian 12's
    transmission 3.00 cannot parse a hybrid torrent and aria2 1.36 computes a wrong infohash for one (both
    measured). It is another swarm (another infohash) over the same files.

    ``files`` are manifest records ``{"path": <file name>, "size": int, "sha256": <64 hex>}``; the sha256 is
    trusted (the store computed it when it verified the files), sizes are checked against the disk.
    ``progress(pieces_done, pieces_total)`` is called from this thread while hashing. Blocking.

    Raises:
        BadTorrent: malformed records (paths, sizes, hashes) or no files.
        TorrentError: a file is missing or its size differs, or libtorrent failed.
    """
    lt = libtorrent()
    base_dir = Path(base_dir)
    recs = _check_records(files, "make_torrent")
    for r in recs:
        p = base_dir / r["path"]
        try:
            st = p.stat()
        except OSError as exc:
            raise TorrentError(f"cannot share {p}: {exc.strerror or exc}") from exc
        if not p.is_file():
            raise TorrentError(f"cannot share {p}: not a regular file")
        if st.st_size != r["size"]:
            raise TorrentError(f"cannot share {p}: its size is {st.st_size}, the manifest says {r['size']}")
    total = sum(r["size"] for r in recs)
    if total <= 0:
        raise BadTorrent("make_torrent: the files are empty")

    tmp: str | None = None
    try:
        if len(recs) == 1:
            entries = [lt.create_file_entry(recs[0]["path"], recs[0]["size"])]
            hash_root = str(base_dir)
        else:
            # the torrent's layout is <dir>/<file> but the store keeps files flat in the model directory:
            # hash through a throw-away directory of symlinks <tmp>/<dir>/<file> -> <base_dir>/<file>
            dirname = torrent_dir_name([r["path"] for r in recs])
            tmp = tempfile.mkdtemp(prefix="silnode-mktorrent-")
            os.mkdir(os.path.join(tmp, dirname))
            for r in recs:
                os.symlink((base_dir / r["path"]).absolute(), os.path.join(tmp, dirname, r["path"]))
            entries = [lt.create_file_entry(f"{dirname}/{r['path']}", r["size"]) for r in recs]
            hash_root = tmp
        try:
            flags = lt.create_torrent.v1_only if v1_only else 0  # 0 = hybrid v1+v2
            ct = lt.create_torrent(entries, piece_length(total), flags)
            for url in web_seeds:
                ct.add_url_seed(str(url))
            n = ct.num_pieces()
            if progress is not None:
                lt.set_piece_hashes(ct, hash_root, lambda piece: progress(piece + 1, n))
            else:
                lt.set_piece_hashes(ct, hash_root)
            entry = ct.generate()
        except (RuntimeError, ValueError, OSError) as exc:
            raise TorrentError(f"libtorrent could not build the torrent: {exc}") from exc
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    for key in (b"creation date", b"created by", b"comment"):
        entry.pop(key, None)
    entry[b"info"][OUR_KEY] = _our_key_entry(recs, _gguf_shape(base_dir, recs))
    data = bytes(lt.bencode(entry))
    # libtorrent must still accept it, and our key must read back exactly (it is what peers will check)
    ti = load_torrent_info(data)
    if read_our_key(ti) != recs:  # pragma: no cover - would be a bug in this module
        raise TorrentError("internal error: the silnode key did not read back from the new torrent")
    return data


def with_web_seeds(torrent: bytes, web_seeds: Iterable[str]) -> bytes:
    """The same .torrent with ``url-list`` (BEP 19) set to ``web_seeds`` (dropped when empty). ``url-list``
    lies outside the info dict: no hashing, the infohash is unchanged (checked)."""
    lt = libtorrent()
    entry = _bdecode(torrent)
    urls = [str(u).encode() for u in web_seeds]
    if urls:
        entry[b"url-list"] = urls
    else:
        entry.pop(b"url-list", None)
    data = bytes(lt.bencode(entry))
    if infohashes(load_torrent_info(data)) != infohashes(load_torrent_info(torrent)):  # pragma: no cover
        raise TorrentError("internal error: setting the web seeds changed the infohash")
    return data


MERKLE_BLOCK = 16 << 10  # BEP 52 leaf size


def _piece_layer(hashes: bytes, mask: bytes | None, size: int, piece_len: int) -> tuple[bytes, bytes] | None:
    """(piece layer, root) of one file from libtorrent's resume ``trees`` entry: the nodes it stored (``mask``
    is a breadth-first bitfield of the full tree, MSB first; without one, the leaves) completed upwards to the
    piece level (SHA-256 of 64-byte pairs: ~30 ms for 256 MiB). A download resumed after a restart stores
    only some levels: any stored node is used. None when a piece's hash cannot be made from what is stored."""
    n_blocks = max(1, -(-size // MERKLE_BLOCK))
    n_leaves = 1 << (n_blocks - 1).bit_length()
    first_leaf = n_leaves - 1
    hs = [hashes[k : k + 32] for k in range(0, len(hashes), 32)]
    if mask is None:
        present: Iterable[int] = range(first_leaf, first_leaf + len(hs))
    else:
        present = [k for k in range(2 * n_leaves - 1) if k >> 3 < len(mask) and mask[k >> 3] & (0x80 >> (k & 7))]
    tree = dict(zip(present, hs))
    pad: dict[int, bytes] = {}  # a subtree of padding only, by its height

    def pad_hash(height: int) -> bytes:
        if height not in pad:
            pad[height] = bytes(32) if height == 0 else hashlib.sha256(pad_hash(height - 1) * 2).digest()
        return pad[height]

    def node(k: int, height: int) -> bytes | None:
        if k in tree:
            return tree[k]
        leftmost = ((k + 1) << height) - 1 - first_leaf  # the first block under this node
        if leftmost >= n_blocks:
            return pad_hash(height)
        if height == 0:
            return None
        left, right = node(2 * k + 1, height - 1), node(2 * k + 2, height - 1)
        if left is None or right is None:
            return None
        tree[k] = hashlib.sha256(left + right).digest()
        return tree[k]

    up = (piece_len // MERKLE_BLOCK).bit_length() - 1  # the piece level's height above the leaves
    count = n_leaves >> up
    layer = [node(count - 1 + k, up) for k in range(count)]
    if any(h is None for h in layer):
        return None
    top: list[bytes] = layer  # type: ignore[assignment]
    while len(top) > 1:
        top = [hashlib.sha256(top[2 * k] + top[2 * k + 1]).digest() for k in range(len(top) // 2)]
    return b"".join(layer[: -(-size // piece_len)]), top[0]  # type: ignore[arg-type]


def torrent_from_resume(resume: bytes, *, web_seeds: Iterable[str] = ()) -> bytes:
    """The complete .torrent of a finished download, from its resume data (saved with the info dict): the
    exact info dict received plus, for v2/hybrid torrents, the piece layers, taken from the merkle trees
    libtorrent verified while downloading (each checked against its file's ``pieces root``). Nothing of
    the data is hashed again (a rebuild hashes every byte twice, SHA-1 and SHA-256).

    Raises:
        BadTorrent: the resume data has no metadata, or (v2) its merkle trees do not give the piece layers.
    """
    lt = libtorrent()
    try:
        atp = lt.read_resume_data(bytes(resume))
    except (RuntimeError, ValueError) as exc:
        raise BadTorrent(f"unreadable resume data: {exc}") from exc
    if atp.ti is None:
        raise BadTorrent("the resume data carries no metadata")
    ti = atp.ti
    parts = [b"d4:info", bytes(ti.info_section())]
    if infohashes(ti)[1]:  # v2 or hybrid: piece layers for every file longer than one piece
        trees = _bdecode(resume).get(b"trees") or []
        layout, plen = ti.layout(), ti.piece_length()
        layers: dict[bytes, bytes] = {}
        for k in range(layout.num_files()):
            size = layout.file_size(k)
            if layout.file_flags(k) & lt.file_storage.flag_pad_file or size <= plen:
                continue
            root = bytes(layout.root(k).to_bytes())
            tree = trees[k] if k < len(trees) and isinstance(trees[k], dict) else {}
            got = _piece_layer(tree.get(b"hashes", b""), tree.get(b"mask"), size, plen) if tree else None
            if got is None or got[1] != root:
                # (libtorrent's own write_torrent_file writes an invalid piece layer from such a tree: measured)
                raise BadTorrent(f"the resume data keeps too little of the merkle tree of file {k}")
            layers[root] = got[0]
        if layers:
            parts += [b"12:piece layers", bytes(lt.bencode(layers))]
    parts.append(b"e")
    return with_web_seeds(b"".join(parts), web_seeds)


def read_our_shape(source: Any) -> dict[str, Any] | None:
    """The model shape a torrent's ``silnode`` key carries (``gguf``), as plain Python values; None when it
    carries none. Untrusted: check it with :func:`silnode.fit.estimate.shape_from_portable` before use."""
    key = info_dict(source).get(OUR_KEY)
    shape = key.get(b"gguf") if isinstance(key, dict) else None
    return _from_bencode(shape) if isinstance(shape, dict) else None


# --------------------------------------------------------------------------------------------- reading
def load_torrent_info(data: bytes) -> Any:
    """``lt.torrent_info`` from .torrent bytes, with libtorrent's error translated."""
    lt = libtorrent()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BadTorrent(f"expected .torrent bytes, got {type(data).__name__}")
    try:
        return lt.torrent_info(bytes(data))
    except (RuntimeError, ValueError) as exc:
        raise BadTorrent(f"not a valid .torrent: {exc}") from exc


def _bdecode(data: bytes) -> Any:
    lt = libtorrent()
    try:
        out = lt.bdecode(bytes(data))
    except (RuntimeError, ValueError) as exc:
        raise BadTorrent(f"not bencoded data: {exc}") from exc
    if out is None:
        raise BadTorrent("not bencoded data")
    return out


def info_dict(source: Any) -> dict[bytes, Any]:
    """The decoded info dict of an ``lt.torrent_info``, .torrent bytes, info-dict bytes or a decoded dict."""
    lt = libtorrent()
    if isinstance(source, lt.torrent_info):
        try:
            raw = source.info_section()
        except (RuntimeError, ValueError) as exc:  # pragma: no cover
            raise BadTorrent(f"torrent has no metadata: {exc}") from exc
        d = _bdecode(raw)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        d = _bdecode(bytes(source))
    elif isinstance(source, dict):
        d = source
    else:
        raise BadTorrent(f"cannot read a torrent from {type(source).__name__}")
    if not isinstance(d, dict):
        raise BadTorrent("torrent metadata is not a dictionary")
    if b"info" in d:
        d = d[b"info"]
    if not isinstance(d, dict) or b"piece length" not in d:
        raise BadTorrent("torrent metadata has no info dictionary")
    return d


def _torrent_files(info: dict[bytes, Any]) -> list[tuple[str, int]]:
    """(file name, size) of the real (non-pad) files, from the info dict itself (v1 lists, else v2 tree)."""

    def name(b: Any) -> str:
        if not isinstance(b, bytes):
            raise BadTorrent("torrent file name is not a string")
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadTorrent("torrent file name is not UTF-8") from exc

    out: list[tuple[str, int]] = []
    if b"files" in info:
        for f in info[b"files"]:
            if not isinstance(f, dict):
                raise BadTorrent("torrent file entry is not a dictionary")
            if b"p" in f.get(b"attr", b""):
                continue  # pad file (hybrid torrents align every file to a piece)
            path = f.get(b"path")
            if not isinstance(path, list) or len(path) != 1:
                raise BadTorrent("torrent has files in sub-directories; a silnode torrent is flat")
            out.append((name(path[0]), f.get(b"length")))
    elif b"length" in info:
        out.append((name(info.get(b"name")), info[b"length"]))
    elif isinstance(info.get(b"file tree"), dict):  # v2-only torrent
        for fname, node in info[b"file tree"].items():
            leaf = node.get(b"") if isinstance(node, dict) else None
            if not isinstance(leaf, dict):
                raise BadTorrent("torrent has files in sub-directories; a silnode torrent is flat")
            out.append((name(fname), leaf.get(b"length")))
    else:
        raise BadTorrent("torrent info dictionary lists no files")
    return out


def read_our_key(source: Any) -> list[dict[str, Any]] | None:
    """The ``[{path, size, sha256}]`` a torrent's ``silnode`` key promises, or None for a foreign torrent.

    ``source``: an ``lt.torrent_info`` (e.g. metadata received from peers via a magnet), .torrent bytes,
    bencoded info-dict bytes or a decoded dict. Validation is strict: the keys ``v`` (= 1) and
    ``files`` (and the optional ``gguf`` shape, read by :func:`read_our_shape`); each file exactly ``path`` (a plain file name), ``size`` (an int), ``sha256`` (64 lowercase
    hex); no duplicates; and the list must match the torrent's own files (names and sizes), so the key
    cannot describe something else than what the pieces deliver.

    Raises:
        BadTorrent: malformed or inconsistent key.
    """
    info = info_dict(source)
    key = info.get(OUR_KEY)
    if key is None:
        return None
    where = "silnode key"
    if not isinstance(key, dict) or not {b"v", b"files"} <= set(key) <= {b"v", b"files", b"gguf"}:
        raise BadTorrent(f"{where}: expected the keys v and files (and optionally gguf)")
    if key[b"v"] != OUR_KEY_VERSION or isinstance(key[b"v"], bool):
        raise BadTorrent(f"{where}: unsupported version {key[b'v']!r}")
    files = key[b"files"]
    if not isinstance(files, list) or not files:
        raise BadTorrent(f"{where}: files must be a non-empty list")
    recs = []
    for f in files:
        if not isinstance(f, dict) or set(f) != {b"path", b"size", b"sha256"}:
            raise BadTorrent(f"{where}: each file needs exactly path, size and sha256")
        try:
            path = f[b"path"].decode("ascii") if isinstance(f[b"path"], bytes) else None
            digest = f[b"sha256"].decode("ascii") if isinstance(f[b"sha256"], bytes) else None
        except UnicodeDecodeError:
            raise BadTorrent(f"{where}: path and sha256 must be ASCII") from None
        recs.append(_check_record({"path": path, "size": f[b"size"], "sha256": digest}, where))
    names = [r["path"] for r in recs]
    if len(set(names)) != len(names):
        raise BadTorrent(f"{where}: duplicate file names")
    if sorted((r["path"], r["size"]) for r in recs) != sorted(_torrent_files(info)):
        raise BadTorrent(f"{where}: the listed files do not match the torrent's files")
    return recs


def infohashes(source: Any) -> tuple[str | None, str | None]:
    """(v1 hex, v2 hex) of .torrent bytes or an ``lt.torrent_info``; None for a hash the torrent lacks."""
    lt = libtorrent()
    ti = source if isinstance(source, lt.torrent_info) else load_torrent_info(source)
    ih = ti.info_hashes()
    return (str(ih.v1) if ih.has_v1() else None, str(ih.v2) if ih.has_v2() else None)


# --------------------------------------------------------------------------------------------- magnets
def format_peer(peer: Any) -> str:
    """``(host, port)`` or ``"host:port"`` -> ``"host:port"`` (IPv6 bracketed), validated."""
    host, port = parse_peer(peer)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_peer(peer: Any) -> tuple[str, int]:
    if isinstance(peer, (tuple, list)) and len(peer) == 2:
        host, port = str(peer[0]), peer[1]
    elif isinstance(peer, str):
        host, sep, port_s = peer.strip().rpartition(":")
        if not sep or not port_s.isdigit():
            raise BadTorrent(f"peer {peer[:80]!r} must look like host:port")
        port = int(port_s)
    else:
        raise BadTorrent(f"peer {peer!r} must be host:port or (host, port)")
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise BadTorrent(f"peer port must be 1-65535, got {port!r}")
    if not host or any(c in host for c in "/?#@ \t\r\n[]") or not host.isprintable():
        raise BadTorrent(f"peer host {host[:80]!r} is not a host name or IP address")
    return host, port


def magnet(torrent: Any, *, peers: Iterable[Any] = (), name: str | None = None) -> str:
    """A magnet for .torrent bytes (or an ``lt.torrent_info``): ``xt=urn:btih:<v1>``,
    ``xt=urn:btmh:1220<v2>`` (multihash sha2-256), ``dn`` (``name`` or the torrent's name; display only,
    not part of the identity) and one ``x.pe=host:port`` hint per peer."""
    lt = libtorrent()
    ti = torrent if isinstance(torrent, lt.torrent_info) else load_torrent_info(torrent)
    v1, v2 = infohashes(ti)
    parts = []
    if v1:
        parts.append(f"xt=urn:btih:{v1}")
    if v2:
        parts.append(f"xt=urn:btmh:1220{v2}")
    parts.append("dn=" + quote(name if name is not None else ti.name(), safe=""))
    parts += ["x.pe=" + quote(format_peer(p), safe=":[]") for p in peers]
    # BEP 19 web seeds travel in the magnet as ws= (the info dict a magnet fetches does not carry url-list)
    parts += ["ws=" + quote(ws["url"] if isinstance(ws, dict) else ws.url, safe="") for ws in ti.web_seeds()]
    return "magnet:?" + "&".join(parts)


def parse_target(text: str) -> dict[str, Any]:
    """What to download: a magnet, a 40-hex v1 infohash or a 64-hex v2 hash.

    Returns ``{"v1": hex | None, "v2": hex | None, "peers": [(host, port)], "name": str | None}`` (hex is
    lowercase; a base32 btih is converted). Trackers (``tr``) are ignored: silnode finds peers through hints,
    the DHT and LSD. Raises BadTorrent for anything else.
    """
    if not isinstance(text, str):
        raise BadTorrent(f"a download target must be a string, got {type(text).__name__}")
    t = text.strip()
    if _HEX40.fullmatch(t):
        return {"v1": t.lower(), "v2": None, "peers": [], "name": None, "web_seeds": []}
    if _HEX64.fullmatch(t):
        return {"v1": None, "v2": t.lower(), "peers": [], "name": None, "web_seeds": []}
    if not t.lower().startswith("magnet:?"):
        raise BadTorrent(
            f"not a magnet link or infohash: {t[:80]!r}",
            hint="give a magnet:?xt=urn:btih:... link, a 40-hex v1 infohash or a 64-hex v2 hash",
        )
    v1 = v2 = name = None
    peers: list[tuple[str, int]] = []
    web_seeds: list[str] = []
    try:
        params = parse_qsl(t[len("magnet:?") :], keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise BadTorrent(f"malformed magnet link: {exc}") from exc
    for key, value in params:
        k = key.lower()
        if k == "xt" or re.fullmatch(r"xt\.\d+", k):
            low = value.lower()
            if low.startswith("urn:btih:"):
                h = value[len("urn:btih:") :]
                if _HEX40.fullmatch(h):
                    h = h.lower()
                elif _B32.fullmatch(h):
                    h = base64.b32decode(h.upper()).hex()
                else:
                    raise BadTorrent(f"magnet btih {h[:80]!r} is not 40 hex or 32 base32 characters")
                if v1 is not None and v1 != h:
                    raise BadTorrent("magnet names two different v1 infohashes")
                v1 = h
            elif low.startswith("urn:btmh:"):
                h = low[len("urn:btmh:") :]
                if not (h.startswith("1220") and _HEX64.fullmatch(h[4:])):
                    raise BadTorrent(f"magnet btmh {h[:80]!r} is not a sha2-256 multihash (1220 + 64 hex)")
                if v2 is not None and v2 != h[4:]:
                    raise BadTorrent("magnet names two different v2 hashes")
                v2 = h[4:]
            # other xt namespaces (other networks) are not ours: ignored
        elif k == "dn":
            name = value
        elif k == "x.pe":
            peers.append(parse_peer(value))
        elif k == "ws" and value.lower().startswith(("http://", "https://")) and len(value) <= 2048:
            web_seeds.append(value)
    if v1 is None and v2 is None:
        raise BadTorrent("magnet link has no BitTorrent infohash (xt=urn:btih:... or xt=urn:btmh:1220...)")
    return {"v1": v1, "v2": v2, "peers": peers, "name": name, "web_seeds": web_seeds}


def target_magnet(target: Mapping[str, Any]) -> str:
    """A normalized magnet (hashes only) for a :func:`parse_target` result; what the session hands libtorrent."""
    parts = []
    if target.get("v1"):
        parts.append(f"xt=urn:btih:{target['v1']}")
    if target.get("v2"):
        parts.append(f"xt=urn:btmh:1220{target['v2']}")
    if target.get("name"):
        parts.append("dn=" + quote(target["name"], safe=""))
    return "magnet:?" + "&".join(parts)


def ih_hexes(ih: Any) -> tuple[str | None, str | None]:
    """(v1 hex, v2 hex) of libtorrent's info_hash_t; None for a hash the torrent does not have."""
    return (str(ih.v1) if ih.has_v1() else None, str(ih.v2) if ih.has_v2() else None)


def download_params(
    target: bytes | str | None, resume_data: bytes | None, peers: Iterable[Any], flags: Any
) -> tuple[Any, str | None, str | None, Any, list[tuple[str, int]]]:
    """libtorrent's add_torrent_params for a download: from .torrent bytes, a magnet / v1 / v2 hash, or resume
    data (checked to belong to ``target`` when both are given). Returns (params, v1, v2, torrent_info or None,
    the peers to dial: ``peers`` plus the magnet's ``x.pe`` hints)."""
    lt = libtorrent()
    peer_list = [parse_peer(p) for p in peers]
    if HYBRID_V2_ONLY:
        flags |= DISABLE_V1_HASHES  # no effect on v1-only or v2-only torrents
    ti = None
    want: tuple[str | None, str | None] = (None, None)
    if isinstance(target, (bytes, bytearray, memoryview)):
        ti = load_torrent_info(bytes(target))
        want = infohashes(ti)
    elif isinstance(target, str):
        parsed = parse_target(target)
        want = (parsed["v1"], parsed["v2"])
        peer_list += parsed["peers"]
    elif target is not None:
        raise BadTorrent(
            f"a download target must be .torrent bytes or a magnet/hash string, got {type(target).__name__}"
        )

    if resume_data is not None:
        try:
            atp = lt.read_resume_data(bytes(resume_data))
        except (RuntimeError, ValueError, TypeError) as exc:
            raise BadTorrent(f"unreadable resume data: {exc}") from exc
        have = ih_hexes(atp.info_hashes)
        if (want[0] and have[0] and want[0] != have[0]) or (want[1] and have[1] and want[1] != have[1]):
            raise BadTorrent("the resume data belongs to another torrent")
        if atp.ti is None and ti is not None:
            atp.ti = ti
        # web seeds are added by the distribution on every start (through the web-seed gate, whose port
        # changes between runs): the ones the resume data remembers are stale, so none come from there
        atp.url_seeds = []
        # the saved flags may carry auto_managed (ours never do, a foreign file might); keep "paused"
        atp.flags = (atp.flags & ~lt.torrent_flags.auto_managed) | flags
        v1, v2 = have[0] or want[0], have[1] or want[1]
        if atp.ti is not None:
            v1, v2 = infohashes(atp.ti)
    elif ti is not None:
        atp = lt.add_torrent_params()
        atp.ti = ti
        atp.flags = flags
        v1, v2 = want
    elif target is not None:
        atp = lt.parse_magnet_uri(target_magnet(parsed))
        atp.flags = flags
        v1, v2 = want
    else:
        raise BadTorrent("add_download needs a target or resume data")
    return atp, v1, v2, ti, peer_list
