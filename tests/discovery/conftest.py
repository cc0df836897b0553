"""Fixtures: a private DHT of real libtorrent sessions on loopback, and nodes that bootstrap only into it."""

from __future__ import annotations

from typing import Any

import pytest
from dht import start_dht

from silnode.config import load_config
from silnode.identity import Identity
from silnode.node import Node


@pytest.fixture
async def dht():
    sessions = await start_dht(3)
    yield sessions
    for s in sessions:
        await s.stop(save_resume=False)


@pytest.fixture
async def make_node(tmp_path, dht):
    """make(label, identity=...) -> a started Node on the private DHT, with short discovery intervals."""
    nodes: list[Node] = []
    boot = [f"127.0.0.1:{s.listen_port()}" for s in dht]

    async def make(label: str, *, identity: Identity | None = None, **overrides: Any) -> Node:
        cfg = load_config(
            tmp_path / label,
            overrides={
                "daemon.port": 0,
                "storage.min_free_bytes": 0,
                "network.dht_enabled": True,
                "network.dht_bootstrap": boot,
                "network.dht_private": True,
                "discovery.refresh_interval": 1,
                "discovery.fetch_timeout": 30,
                **overrides,
            },
        )
        node = Node(cfg, identity=identity)
        await node.start()
        nodes.append(node)
        return node

    make.nodes = nodes  # type: ignore[attr-defined]
    yield make
    for node in reversed(nodes):
        if node._started:
            await node.stop()
