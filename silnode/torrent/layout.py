"""The flat layout on disk.

silnode keeps a model's files flat (``<save_path>/<file>``). A single-file torrent is already flat; a
multi-file torrent (``<dir>/<file>``, see :mod:`silnode.torrent.create`) has its files renamed locally to
``<file>``: through ``renamed_files`` when the metadata is known at add time (before any file is opened),
through ``rename_file`` when it arrives from a magnet. Renaming is local (the infohash does not change) and
libtorrent moves whatever was already written under the old name; the emptied ``<dir>`` is removed. A
:class:`TorrentFinished` that arrives before the renames are done is held back until they are, so a
finished torrent's files are always at ``file_paths(id)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from silnode.torrent._lt import libtorrent

PRIORITY_WANTED = 4  # libtorrent's default file priority


def flat_renames(layout: Any) -> dict[int, str]:
    """index -> file name for every real file not already at ``<file>`` (pad files are never written)."""
    lt = libtorrent()
    out = {}
    for i in range(layout.num_files()):
        if layout.file_flags(i) & lt.file_storage.flag_pad_file:
            continue
        path, name = layout.file_path(i), layout.file_name(i)
        if path != name:
            out[i] = name
    return out


def wanted_priorities(layout: Any) -> list[int]:
    lt = libtorrent()
    return [
        0 if layout.file_flags(i) & lt.file_storage.flag_pad_file else PRIORITY_WANTED
        for i in range(layout.num_files())
    ]


def remove_empty_torrent_dir(save_path: str, name: str) -> None:
    """Pieces written before the renames went to <save_path>/<torrent dir>/; libtorrent moved the files
    but leaves the directory. Remove it when it is empty (never anything else)."""
    if not name or "/" in name or name in (".", ".."):
        return
    try:
        (Path(save_path) / name).rmdir()
    except OSError:
        pass
