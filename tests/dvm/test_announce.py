"""NIP-89: the node announces what it serves (kind 31990, standard tags, found by #k=5050), announces again
when the served set changes, and withdraws the announcement (kind 5) on a clean stop."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from dvm_helpers import TINY, import_model, node_config, start_relay, until
from nostr_sdk import Filter, Keys, Kind, ReqTarget

from silnode.dvm.customer import Customer
from silnode.dvm.jobs import tags_of
from silnode.node import Node

pytestmark = pytest.mark.timeout(240)
Q8 = "test/tiny-q8"


async def test_announce_reannounce_and_delete(tmp_path, clean_env, tiny_gguf, tiny_q8, identity):
    relay, url = await start_relay(tmp_path / "relay")
    node = Node(node_config(clean_env, relays=(url,), name="test seller"), identity=identity)
    await node.start()
    customer = Customer(Keys.generate(), [url])
    await customer.start()
    try:
        await import_model(node, tiny_gguf, TINY)
        await import_model(node, tiny_q8, Q8)
        await node.serving.load(TINY)

        async def topics() -> list[str]:
            found = await customer.providers(timeout=1)
            return found[0]["topics"] if found else []

        await until(lambda: topics(), 30, "an announcement")
        (p,) = await customer.providers()
        assert p["pubkey"] == identity.nostr.pubkey_hex and p["name"] == "test seller"
        assert p["topics"] == [TINY] and p["encryption"] == ["nip44", "nip04"]
        # the announcement carries the node's catalog magnet: a buyer can follow what it shares
        assert p["catalog"] == node.discovery.catalog_magnet and p["catalog"].startswith("magnet:?xs=urn:btpk:")
        assert p["models"] == [{"name": TINY, "context": 512, "price_msats": None, "requests_per_minute": 0.0}]
        assert p["pricing"] == {"msats_per_job": 0, "msats_per_1k_tokens": 0, "required": False}
        assert p["online_since"] is not None and p["online_since"] <= p["created_at"]
        raw = (await customer.client.fetch_events(ReqTarget.auto([Filter().kind(Kind(31990))]), timedelta(seconds=2)))[
            0
        ]
        tags = tags_of(raw)
        assert ["d", "silnode-5050"] in tags and ["k", "5050"] in tags
        expiry = int(next(t[1] for t in tags if t[0] == "expiration"))
        assert 9000 - 60 < expiry - time.time() <= 9000
        assert json.loads(raw.content())["encryptionSupported"] is True

        await node.serving.load(Q8)  # the served set changed: announced again
        await until(lambda: _eq(topics(), sorted([TINY, Q8])), 30, "a re-announcement with both models")
        await node.serving.unload(TINY)
        await until(lambda: _eq(topics(), [Q8]), 30, "a re-announcement without the unloaded model")
    finally:
        await node.stop()  # clean stop: kind-5 deletion of the announcement
    try:
        assert await customer.providers(timeout=2) == []
        deletions = await customer.client.fetch_events(ReqTarget.auto([Filter().kind(Kind(5))]), timedelta(seconds=2))
        assert any(["a", f"31990:{identity.nostr.pubkey_hex}:silnode-5050"] in tags_of(d) for d in deletions)
    finally:
        await customer.stop()
        await relay.stop()


async def _eq(coro, want) -> bool:
    return sorted(await coro) == want
