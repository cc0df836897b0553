"""The catalog as its own small torrent: a deterministic v1 torrent of one file, ``catalog.json``.

Built here rather than with ``lt.create_torrent`` so the bytes depend on the catalog alone (no creation
date, no creator, a fixed piece size): the same catalog gives the same infohash on every machine, and the
BEP 46 pointer (20 bytes) names it."""

from __future__ import annotations

import hashlib

from silnode.discovery.bencode import bencode

FILE_NAME = "catalog.json"
PIECE = 64 * 1024


def catalog_torrent(data: bytes) -> tuple[bytes, str]:
    """(.torrent bytes, v1 infohash hex) for a catalog document."""
    pieces = b"".join(hashlib.sha1(data[i : i + PIECE]).digest() for i in range(0, max(len(data), 1), PIECE))
    info = {b"length": len(data), b"name": FILE_NAME.encode(), b"piece length": PIECE, b"pieces": pieces}
    return bencode({b"info": info}), hashlib.sha1(bencode(info)).hexdigest()


def catalog_magnet(infohash: str, peers: list[str] | None = None) -> str:
    return f"magnet:?xt=urn:btih:{infohash}&dn={FILE_NAME}" + "".join(f"&x.pe={p}" for p in peers or [])
