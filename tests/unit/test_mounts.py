"""The full-disk tests run everywhere: where this process cannot mount, the test reruns in a user namespace."""

from __future__ import annotations

import errno
import os

import pytest
from mounts import IN_NAMESPACE, tmpfs


def test_a_test_that_cannot_mount_here_runs_in_a_user_namespace(tmp_path, monkeypatch):
    # forced down the unprivileged path: tmpfs() refuses to mount in this process, so the hook reruns this
    # test under `unshare -rm`; only there can it pass
    monkeypatch.setenv("TEST_TMPFS_VIA_USERNS", "1")
    with tmpfs(tmp_path / "small", "1m") as mnt:
        with pytest.raises(OSError) as exc:
            (mnt / "big").write_bytes(b"x" * (2 << 20))
        assert exc.value.errno == errno.ENOSPC  # a real 1 MiB filesystem
    assert os.environ.get(IN_NAMESPACE) == "1"
