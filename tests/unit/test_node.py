"""Node-level behaviour: long tasks stop cleanly with the daemon."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))


async def test_stopping_cancels_running_import(config, tmp_path):
    from import_speed import make_big_gguf

    from silnode.node import Node

    big = tmp_path / "big.gguf"
    make_big_gguf(big, 64 << 20)
    node = Node(config)
    await node.start()
    task = node.import_path(str(big), "org/big", link=False)
    await node.stop()  # sets the stop flag before the worker thread copies its first chunk
    assert task.state == "failed" and task.error["code"] == "cancelled"
    assert not node.store.exists("org/big")
    assert list(node.store.partial_dir.iterdir()) == []
