"""Several real nodes (store + libtorrent session) in one process, talking over loopback."""

from __future__ import annotations

from typing import Any

import pytest

from silnode.config import load_config
from silnode.node import Node


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
