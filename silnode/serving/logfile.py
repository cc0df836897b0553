"""A byte log that rotates: a model worker's stderr (llama.cpp's output) goes to
``logs/worker-<model>.log``, and without a bound a chatty or looping worker would fill the disk.

Past ``max_bytes`` the file is renamed ``.1`` (``.1`` to ``.2``, ..., up to ``backups`` old files; the oldest
is dropped), the same scheme as the daemon log's RotatingFileHandler, so one rule covers every log:
daemon.log_max_bytes and daemon.log_backups. No file passes the cap: a write is split after its last line
that fits (a single line longer than the cap is cut).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


class RotatingLog:
    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path, self.max_bytes, self.backups = Path(path), max_bytes, backups
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        self.size = self._file.tell()

    def write(self, data: bytes) -> None:
        while self.size + len(data) > self.max_bytes:
            room = self.max_bytes - self.size
            cut = data.rfind(b"\n", 0, room) + 1  # the whole lines that still fit
            if not cut and not self.size:
                cut = room  # one line longer than the cap: cut it
            self._put(data[:cut])
            data = data[cut:]
            self.rotate()
        self._put(data)

    def _put(self, data: bytes) -> None:
        if data:
            self._file.write(data)
            self._file.flush()
            self.size += len(data)

    def rotate(self) -> None:
        self._file.close()
        if self.backups:
            for i in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{i}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
            self._file = open(self.path, "ab")  # noqa: SIM115
        else:  # no backups kept: start the file again
            self._file = open(self.path, "wb")  # noqa: SIM115
        self.size = 0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
