"""Node-level behaviour: long tasks stop cleanly with the daemon."""

from __future__ import annotations


async def test_stopping_cancels_running_import(config, tmp_path):
    from ggufgen import make_sized_gguf

    from silnode.node import Node

    big = tmp_path / "big.gguf"
    make_sized_gguf(big, 64 << 20)
    node = Node(config)
    await node.start()
    task = node.models.import_file(str(big), "org/big", link=False)
    await node.stop()  # sets the stop flag before the worker thread copies its first chunk
    assert task.state == "cancelled" and task.error["code"] == "cancelled"  # a cancel is its own state
    assert not node.store.exists("org/big")
    assert list(node.store.partial_dir.iterdir()) == []
