"""Real small filesystems for full-disk tests.

Mounting a tmpfs needs CAP_SYS_ADMIN. As root it is mounted here. Otherwise the test cannot mount in this
process (a user namespace cannot be entered by a process that already runs threads, and libtorrent's do),
so tmpfs() raises NeedsNamespace and the conftest hook runs that one test again in a child pytest under
`unshare -rm` (a new user and mount namespace: no privilege needed, and the mount vanishes with the child).
Only when neither works is the test skipped, with the reason (a failure under CI=true).

TEST_TMPFS_VIA_USERNS=1 takes the namespace path even as root, so that path is tested here too.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_NAMESPACE = "TEST_TMPFS_IN_USERNS"  # set in the child pytest run under `unshare -rm`


class NeedsNamespace(Exception):
    """Raised by tmpfs() when this process cannot mount: rerun the test under `unshare -rm`."""


def _mount(path: Path, size: str) -> subprocess.CompletedProcess | OSError | subprocess.TimeoutExpired:
    try:
        return subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return exc


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (e.g. "4m") at ``path`` for the duration of the block."""
    path.mkdir(parents=True, exist_ok=True)
    forced = os.environ.get("TEST_TMPFS_VIA_USERNS") == "1" and not os.environ.get(IN_NAMESPACE)
    r = None if forced else _mount(path, size)
    if not isinstance(r, subprocess.CompletedProcess) or r.returncode != 0:
        if not os.environ.get(IN_NAMESPACE):
            raise NeedsNamespace(str(r.stderr.strip() if isinstance(r, subprocess.CompletedProcess) else r))
        why = r.stderr.strip() if isinstance(r, subprocess.CompletedProcess) else r
        pytest.skip(f"cannot mount a tmpfs here, not even in a user namespace: {why}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10, check=False)


def rerun_in_namespace(nodeid: str, rootdir: Path) -> tuple[bool, str]:
    """Run one test in a child pytest under `unshare -rm`. (ran, output): ran False when no namespace
    could be made (then the caller skips with the output as the reason)."""
    env = dict(os.environ, **{IN_NAMESPACE: "1"})
    env.pop("TEST_TMPFS_VIA_USERNS", None)
    try:
        r = subprocess.run(
            ["unshare", "-rm", sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", nodeid],
            cwd=rootdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"unshare -rm failed: {exc}"
    out = (r.stdout + r.stderr)[-4000:]
    if r.returncode != 0 and "unshare:" in r.stderr and "pytest" not in r.stdout:
        return False, out.strip()
    if r.returncode != 0:
        raise AssertionError(f"in a user namespace (unshare -rm), {nodeid} failed:\n{out}")
    return True, out
