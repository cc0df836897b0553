"""Fairness keyed by token on a loopback bind, with a real llama.cpp worker (Gemma-3-270M holds it busy):
one token sending four requests under four invented `user` names still gets one turn per round."""

from __future__ import annotations

import asyncio

import pytest

from silnode.api import make_app
from silnode.config import load_config
from silnode.home import TokenStore
from silnode.node import Node

pytestmark = pytest.mark.timeout(240)
GEMMA = "test/gemma"


async def until(check, what: str, timeout: float = 120.0) -> None:
    """A hang guard, not a speed limit."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def served(clean_env, gemma_gguf, aiohttp_client):
    config = load_config(clean_env, overrides={"daemon.port": 0, "serve.queue_size": 8, "serve.n_threads": 2})
    node = Node(config)
    await node.start()
    task = node.models.import_file(str(gemma_gguf), GEMMA, license="gemma")
    await node.tasks.wait(task)
    assert task.state == "done", task.error
    await node.serving.load(GEMMA)
    client = await aiohttp_client(make_app(node))
    client.node = node
    yield client
    await node.stop()


async def test_two_tokens_share_the_worker_turn_by_turn(served):
    store = TokenStore.for_config(served.node.config)
    tok_a = {"Authorization": f"Bearer {store.create('inference', 'a')[1]}"}
    tok_b = {"Authorization": f"Bearer {store.create('inference', 'b')[1]}"}
    model = served.node.serving.get(GEMMA)

    busy = await served.post(  # an anonymous long stream holds the worker while the others queue
        "/v1/completions",
        json={"model": GEMMA, "prompt": "Once upon a time", "max_tokens": 400, "stream": True, "seed": 11},
    )
    assert busy.status == 200
    async for raw in busy.content:
        if raw.startswith(b"data: "):
            break

    finished: list[str] = []

    async def ask(headers: dict, label: str, user: str) -> None:
        body = {"model": GEMMA, "prompt": "x", "max_tokens": 2, "user": user}
        r = await served.post("/v1/completions", json=body, headers=headers)
        assert r.status == 200, await r.text()
        finished.append(label)

    # token A rotates `user` (which would give it four lines if `user` were the key); token B asks once
    a = [asyncio.create_task(ask(tok_a, f"a{i}", f"user-{i}")) for i in range(1, 5)]
    await until(lambda: len(model.queue) >= 4, "token A's four requests queued")
    b = asyncio.create_task(ask(tok_b, "b1", "user-1"))
    await until(lambda: len(model.queue) >= 5, "token B's request queued")
    busy.close()
    await asyncio.gather(*a, b)
    assert [label[0] for label in finished] == ["a", "b", "a", "a", "a"], finished  # A's own order may vary
