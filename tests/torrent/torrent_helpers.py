"""Helpers for the BitTorrent engine tests (imported by the test modules of this directory)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from silnode.config import NetworkConfig

LOOPBACK = NetworkConfig(
    listen_address="127.0.0.1",
    listen_port=0,
    dht_enabled=False,
    dht_bootstrap=(),
    lsd_enabled=False,
    upnp_enabled=False,
    natpmp_enabled=False,
    utp_enabled=False,
)


def file_record(path: Path) -> dict[str, Any]:
    """The manifest record the store keeps for a file: {path, size, sha256}."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return {"path": path.name, "size": path.stat().st_size, "sha256": h.hexdigest()}


def random_file(path: Path, size: int, seed: int = 0) -> Path:
    """``size`` pseudo-random bytes (deterministic per seed, fast)."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def same_bytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


async def poll(cond, timeout: float = 60.0, interval: float = 0.05):
    """Wait until ``cond()`` is truthy (a generous timeout only guards against hangs)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = cond()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
