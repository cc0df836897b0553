"""DVM fixtures: a node that sells the generated tiny model on its embedded relay (a real nostr-sdk LocalRelay
on loopback), and customers on real nostr-sdk clients."""

from __future__ import annotations

import pytest
from dvm_helpers import PHRASE, TINY, import_tiny, node_config

from silnode.identity import Identity
from silnode.node import Node


@pytest.fixture
def identity() -> Identity:
    return Identity.from_mnemonic(PHRASE)


@pytest.fixture
async def seller(clean_env, tiny_gguf, identity):
    """A node with an identity, selling the tiny model on its own embedded relay."""
    node = Node(node_config(clean_env), identity=identity)
    await node.start()
    await import_tiny(node, tiny_gguf)
    await node.serving.load(TINY)
    assert node.dvm.state == "selling", node.dvm.reason
    yield node
    await node.stop()


@pytest.fixture
async def customer(seller):
    from nostr_sdk import Keys

    from silnode.dvm.customer import Customer

    c = Customer(Keys.generate(), [seller.dvm.pool.embedded.url])
    await c.start()
    yield c
    await c.stop()
