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

import re
from pathlib import Path
from typing import Any

from silnode.names import safe_file_name
from silnode.torrent._lt import libtorrent

PRIORITY_WANTED = 4  # libtorrent's default file priority


_ODD = re.compile(r"[^A-Za-z0-9._-]+")


def flat_file_name(name: str) -> str:
    """The local name of a torrent's file: GGUF files get a valid store file name (``safe_file_name``), other
    files (README, LICENSE, .json) the same characters without the ``.gguf``. Our own torrents' names are
    already such names; a foreign torrent's ``wëights q4.gguf`` becomes ``w-ights-q4.gguf``. Never starts
    with '.', so it cannot shadow the manifest or our .torrent."""
    if name.lower().endswith(".gguf"):
        return safe_file_name(name)
    base = re.sub(r"\.{2,}", ".", _ODD.sub("-", name)).strip("-.") or "file"
    if not base[0].isalnum():
        base = "f" + base
    return base[-200:]


def is_gguf_name(name: str) -> bool:
    return name.endswith(".gguf")


def flat_names(layout: Any) -> dict[int, str]:
    """index -> local flat name of every real file (pad files are never written). Deterministic in the
    layout, so a seed from the store finds the files a download wrote; two files that would share a name
    (``a/README.md``, ``b/README.md``) get ``-2``, ``-3`` ... before the extension."""
    lt = libtorrent()
    out: dict[int, str] = {}
    taken: set[str] = set()
    for i in range(layout.num_files()):
        if layout.file_flags(i) & lt.file_storage.flag_pad_file:
            continue
        name = flat_file_name(layout.file_name(i))
        stem, dot, ext = name.rpartition(".")
        if not dot:
            stem, ext = name, ""
        n = 2
        while name.lower() in taken:
            name = f"{stem}-{n}.{ext}" if dot else f"{stem}-{n}"
            n += 1
        taken.add(name.lower())
        out[i] = name
    return out


def flat_renames(layout: Any) -> dict[int, str]:
    """index -> flat name for every real file not already at ``<flat name>``."""
    return {i: name for i, name in flat_names(layout).items() if layout.file_path(i) != name}


def file_entries(layout: Any) -> list[tuple[str, int]]:
    """(flat name, size) of every real file, in torrent order: the sizes a disk check needs."""
    return [(name, int(layout.file_size(i))) for i, name in flat_names(layout).items()]


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
