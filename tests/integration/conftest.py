"""Several real nodes (store + libtorrent session) in one process, talking over loopback."""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest

from silnode.config import load_config
from silnode.node import Node


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture
async def make_node(tmp_path):
    nodes: list[Node] = []

    async def make(label: str, **overrides: Any) -> Node:
        cfg = load_config(tmp_path / label, overrides={"daemon.port": 0, "storage.min_free_bytes": 0, **overrides})
        node = Node(cfg)
        await node.start()
        nodes.append(node)
        return node

    yield make
    for node in reversed(nodes):
        await node.stop()


async def share(node: Node, path: Path, name: str, **kw: Any) -> dict[str, Any]:
    task = node.share(name, path=str(path), license="mit", **kw)
    await node.tasks.wait(task)
    assert task.state == "done", task.error
    return task.result


def peer_of(node: Node) -> str:
    return f"127.0.0.1:{node.torrents.session.listen_port()}"


async def get(node: Node, target: str, *, peers: tuple[str, ...] = (), timeout: float = 120, **kw: Any):
    import asyncio

    t = await node.torrents.download(target, peers=peers, **kw)
    await asyncio.wait_for(node.torrents.wait(t.id), timeout)
    return t


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def big_gguf(path: Path, size: int, seed: int = 0) -> Path:
    """A valid GGUF of ``size`` bytes: one big F32 tensor of pseudo-random bytes (fast to write)."""
    import random

    from ggufgen import raw_gguf

    n = size // 4
    head = raw_gguf([("general.architecture", 8, "llama")], [("blob.weight", [n], 0)], data=False)
    rng = random.Random(seed)
    block = rng.randbytes(1 << 20)
    with open(path, "wb") as fh:
        fh.write(head + bytes(-len(head) % 32))
        left, i = n * 4, 0
        while left:
            chunk = block[: min(left, len(block))]
            # vary every MiB so pieces differ (identical pieces would hide ordering bugs)
            chunk = i.to_bytes(8, "little") + chunk[8:]
            fh.write(chunk)
            left -= len(chunk)
            i += 1
    return path
