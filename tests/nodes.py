"""Helpers for tests with several real nodes (store + libtorrent session) in one process, on loopback."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ggufgen import make_sized_gguf as big_gguf  # noqa: F401  (re-exported for the tests)
from mounts import tmpfs  # noqa: F401  (re-exported for the tests)

from silnode.node import Node


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


async def share(node: Node, path: Path, name: str, **kw: Any) -> dict[str, Any]:
    task = node.models.share(name, path=str(path), license="mit", **kw)
    await node.tasks.wait(task)
    assert task.state == "done", task.error
    return task.result


def peer_of(node: Node) -> str:
    return f"127.0.0.1:{node.distribution.session.listen_port()}"


async def get(node: Node, target: str, *, peers: tuple[str, ...] = (), timeout: float = 120, **kw: Any):
    import asyncio

    t = await node.distribution.download(target, peers=peers, **kw)
    await asyncio.wait_for(node.distribution.wait(t.id), timeout)
    return t


async def openai_node(clean_env: Path, aiohttp_client: Any, models: dict[str, Path], **overrides: Any) -> Any:
    """An in-process node serving ``models`` (name -> GGUF), as an aiohttp test client with ``.node`` and
    ``.oai`` (the official ``openai`` async client pointed at its /v1)."""
    import openai

    from silnode.api import make_app
    from silnode.config import load_config

    config = load_config(clean_env, overrides={"daemon.port": 0, "serve.n_threads": 2, **overrides})
    node = Node(config)
    await node.start()
    for name, path in models.items():
        task = node.models.import_file(str(path), name, license="mit")
        await node.tasks.wait(task)
        assert task.state == "done", task.error
        await node.serving.load(name)
    client = await aiohttp_client(make_app(node))
    client.node = node
    client.oai = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="unused", max_retries=0)
    return client
