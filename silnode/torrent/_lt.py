"""Lazy import of libtorrent: it is an optional, heavy dependency (a 26 MB extension module).

Importing ``silnode.torrent`` (for the errors, or for magnet parsing) must work without it; only the
functions that really need libtorrent call :func:`libtorrent` and get a clear error with an install hint.
"""

from __future__ import annotations

from types import ModuleType

from silnode.errors import TorrentError

_lt: ModuleType | None = None


def libtorrent() -> ModuleType:
    global _lt
    if _lt is None:
        try:
            import libtorrent as lt
        except ImportError as exc:
            raise TorrentError(f"libtorrent is not importable ({exc})", hint="pip install libtorrent==2.1.1") from exc
        _lt = lt
    return _lt
