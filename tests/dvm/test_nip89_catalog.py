"""Discovery learns publishers from Nostr: node B, on node A's relay, reads A's NIP-89 announcement, takes the
catalog key out of its BEP 46 magnet and holds it as a discovery hint (checked later through A's own signed
pointer, never trusted for content). A's own announcement teaches A nothing."""

from __future__ import annotations

import pytest
from dvm_helpers import PHRASE, TINY, import_tiny, node_config, until

from silnode.dvm.announce import catalog_key
from silnode.identity import Identity
from silnode.node import Node

pytestmark = pytest.mark.timeout(180)
OTHER = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"


def test_catalog_key_is_read_only_from_a_wellformed_btpk_magnet():
    key = "ab" * 32
    assert catalog_key(f"magnet:?xs=urn:btpk:{key}&s=73616c74") == key
    assert catalog_key(f"magnet:?xs=urn:btpk:{key.upper()}") == key
    for bad in (None, 42, "", "magnet:?xt=urn:btih:" + "ab" * 20, f"magnet:?xs=urn:btpk:{key[:-2]}", "http://x"):
        assert catalog_key(bad) is None


async def test_a_node_learns_a_publisher_from_its_nip89_announcement(clean_env, tiny_gguf):
    a = Node(node_config(clean_env / "a"), identity=Identity.from_mnemonic(PHRASE))
    await a.start()
    b = None
    try:
        await import_tiny(a, tiny_gguf)
        await a.serving.load(TINY)  # serving: A announces, with its catalog magnet
        relay = a.dvm.pool.embedded.url
        b = Node(node_config(clean_env / "b", relays=[relay]), identity=Identity.from_mnemonic(OTHER))
        await b.start()
        a_key = bytes.fromhex(catalog_key(a.discovery.catalog_magnet))
        await until(lambda: a_key in b.discovery.learned, 60, "B to learn A's catalog key from NIP-89")
        assert b.discovery.learned[a_key] == "nip89"
        assert a_key not in a.discovery.learned  # its own announcement is not a hint
    finally:
        if b is not None:
            await b.stop()
        await a.stop()
