"""serve.restart_limit counts crashes within serve.restart_window seconds: two crashes inside the window
leave a model down at restart_limit 1; the same two crashes with the first one outside the window (1 s, and
more than a second between them) are both restarted. Real workers, killed with SIGKILL while idle: the next
request finds the crash."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from test_serving_api import _import, until

from silnode.api import make_app
from silnode.config import load_config
from silnode.node import Node

pytestmark = pytest.mark.timeout(240)
TINY = "test/tiny"


async def crash(node: Node, client) -> int:
    """Kill the idle worker and send a request: 200 when it was restarted, 503 when it is left down."""
    model = node.serving.get(TINY)
    pid = model.describe()["pid"]
    os.kill(pid, signal.SIGKILL)
    await until(lambda: not model._worker.alive, "the worker's exit to be seen")
    r = await client.post("/v1/completions", json={"model": TINY, "prompt": "a", "max_tokens": 2})
    return r.status


@pytest.mark.parametrize(("window", "pause", "second"), [(300, 0.0, 503), (1, 1.5, 200)])
async def test_restart_window(clean_env, tiny_gguf, aiohttp_client, window, pause, second):
    config = load_config(
        clean_env, overrides={"daemon.port": 0, "serve.restart_limit": 1, "serve.restart_window": window}
    )
    node = Node(config)
    await node.start()
    try:
        client = await aiohttp_client(make_app(node))
        await _import(node, tiny_gguf, TINY)
        await node.serving.load(TINY)
        assert await crash(node, client) == 200  # the first crash is always restarted
        await asyncio.sleep(pause)  # outside a 1 s window: the first crash no longer counts
        assert await crash(node, client) == second
        desc = node.serving.get(TINY).describe()
        if second == 503:
            assert desc["state"] == "failed" and f"crashed 2 times in {window} s, left down" in desc["error"]
            assert desc["restarts"] == 1
        else:
            assert desc["state"] == "ready" and desc["restarts"] == 2 and desc["error"] is None
    finally:
        await node.stop()
