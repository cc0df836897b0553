"""Several real nodes (store + libtorrent session) in one process, talking over loopback."""

from __future__ import annotations

from typing import Any

import pytest
from fakehub import serve_hub

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


@pytest.fixture
def online_hub(monkeypatch):
    """A local fake Hugging Face Hub that huggingface_hub talks to (HF_ENDPOINT), offline mode lifted."""
    import huggingface_hub.constants as hfc

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", False)
    with serve_hub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        yield hub
