"""Crash-safe file helpers: every state file is written tmp -> fsync -> rename, then the dir is fsynced."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # pragma: no cover - some filesystems refuse to open dirs
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never a torn one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # umask may have narrowed it
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any, mode: int = 0o644) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), mode)


def dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


# FICLONE = _IOW(0x94, 9, int): "make dst share src's extents" (btrfs, XFS with reflink=1, bcachefs, ZFS 2.2+)
FICLONE = 0x40049409
# what a filesystem (or the kernel) says when it cannot clone: not supported, across filesystems, not a
# regular file / unsupported on this inode, or an ioctl the filesystem does not know
_NO_CLONE = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.ENOSYS, errno.EPERM}


def reflink(src: Path, dst: Path) -> bool:
    """Make ``dst`` a copy-on-write clone of ``src`` (no bytes copied, no space used until one side changes).

    Returns False, leaving nothing at ``dst``, where the filesystem cannot clone (ext4, tmpfs, overlayfs,
    two filesystems): the caller then copies. Unlike a hardlink, a clone is a file of its own: an edit through
    ``src`` never reaches ``dst``. Other errors (ENOSPC, EACCES, ``dst`` exists) are raised."""
    fd_src = os.open(src, os.O_RDONLY)
    try:
        fd_dst = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.ioctl(fd_dst, FICLONE, fd_src)
        except OSError as exc:
            os.close(fd_dst)
            os.unlink(dst)
            if exc.errno in _NO_CLONE:
                return False
            raise
        os.close(fd_dst)
        return True
    finally:
        os.close(fd_src)
