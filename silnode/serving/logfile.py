"""A byte log that rotates: a model worker's stderr (llama.cpp's output) goes to
``logs/worker-<model>.log``, and without a bound a chatty or looping worker would fill the disk.

Past ``max_bytes`` the file is renamed ``.1`` (``.1`` to ``.2``, ..., up to ``backups`` old files; the oldest
is dropped), the same scheme as the daemon log's RotatingFileHandler, so one rule covers every log:
daemon.log_max_bytes and daemon.log_backups. A write is never split, so a file may pass the cap by the last
chunk (the reader hands at most 64 KiB at a time).
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
        if self.size and self.size + len(data) > self.max_bytes:
            self.rotate()
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
