"""DVM test helpers: a node that sells the generated tiny model on its embedded relay (a real nostr-sdk LocalRelay
on loopback), and customers on real nostr-sdk clients."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from silnode.config import load_config
from silnode.node import Node

TINY = "test/tiny"
PHRASE = "leader monkey parrot ring guide accident before fence cannon height naive bean"  # NIP-06 vector


async def until(pred, timeout: float = 60.0, what: str = "condition") -> None:
    """Wait for ``pred()`` (sync or async) with a deadline that names what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def node_config(home: Path, **nostr):
    overrides = {"daemon.port": 0, "nostr.relay_port": 0, "serve.n_threads": 2, "serve.n_ctx": 512}
    overrides.update({f"nostr.{k}": v for k, v in nostr.items()})
    return load_config(home, overrides=overrides)


async def import_tiny(node: Node, path: Path) -> None:
    task = node.models.import_file(str(path), TINY, license="mit")
    await node.tasks.wait(task)
    assert task.state == "done", task.error


GEMMA = "test/gemma"


async def import_model(node: Node, path: Path, name: str) -> None:
    task = node.models.import_file(str(path), name, license="mit")
    await node.tasks.wait(task)
    assert task.state == "done", task.error


async def start_relay(path: Path, port: int = 0):
    """A real relay of its own (nostr-sdk LocalRelay on LMDB) on loopback: (relay, url)."""
    from silnode.dvm.relays import EmbeddedRelay

    relay = EmbeddedRelay(path, port=port)
    return relay, await relay.start()


def write_config(home: Path, **nostr) -> None:
    """config.yaml for a daemon subprocess: the test's relays, a free embedded-relay port, 2 threads."""
    import yaml

    home.mkdir(parents=True, exist_ok=True)
    data = {"serve": {"n_threads": 2, "n_ctx": 512}, "nostr": {"relay_port": 0, **nostr}}
    (home / "config.yaml").write_text(yaml.safe_dump(data))
