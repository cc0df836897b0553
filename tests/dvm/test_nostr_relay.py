"""The DVM against a second, independent relay implementation: the PyPI `nostr-relay` server (Python, SQLite),
alone and beside nostr-sdk's LocalRelay. The full flow (plain, NIP-44 and NIP-04 encrypted), one job delivered
by both relays running once, and the relay restarting mid-job."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from dvm_helpers import GEMMA, TINY, NostrRelay, import_model, node_config, start_relay, until
from nostr_sdk import EventId, Filter, Keys, Kind, PublicKey, ReqTarget

from silnode.dvm.customer import Customer
from silnode.node import Node

pytestmark = pytest.mark.timeout(300)


async def results_for(customer: Customer, job_id: str) -> set[str]:
    f = Filter().kind(Kind(6050)).event(EventId.parse(job_id))
    events = await customer.client.fetch_events(ReqTarget.auto([f]), timedelta(seconds=3))
    return {e.id().to_hex() for e in events}


async def test_full_flow_on_nostr_relay(tmp_path, clean_env, tiny_gguf, identity):
    relay = NostrRelay(tmp_path / "nostr-relay")
    url = await relay.start()
    node = Node(node_config(clean_env, relays=(url,)), identity=identity)
    customer = Customer(Keys.generate(), [url])
    try:
        await node.start()
        assert node.dvm.state == "selling" and not node.dvm.pool.using_embedded
        await import_model(node, tiny_gguf, TINY)
        await node.serving.load(TINY)
        await customer.start()
        provider = PublicKey.parse(identity.nostr.pubkey_hex)
        for encryption in (None, "nip44", "nip04"):
            seen: list[str] = []
            reply = await customer.ask(
                "hello world",
                provider=provider,
                params={"model": TINY, "max_tokens": "4", "temperature": "0"},
                encryption=encryption,
                on_status=lambda s, *_, seen=seen: seen.append(s),
            )
            assert seen[0] == "processing" and reply["text"]
            assert reply["encrypted"] == (encryption is not None)
            job = await node.dvm.job(reply["job"])
            assert job["status"] == "success" and job["encryption"] == encryption and job["completion_tokens"] == 4
            assert job["relay"].rstrip("/") == url
            assert await results_for(customer, reply["job"]) == {reply["result"]}
        assert node.dvm.inferences == 3

        async def announced() -> bool:  # the NIP-89 announcement is on nostr-relay too (sent within seconds)
            return [p["pubkey"] for p in await customer.providers()] == [identity.nostr.pubkey_hex]

        await until(announced, 60, "the node's announcement on nostr-relay")
    finally:
        await customer.stop()
        await node.stop()
        await relay.stop()


async def test_local_relay_and_nostr_relay_deliver_one_job_twice_it_runs_once(tmp_path, clean_env, tiny_gguf, identity):
    local, url_a = await start_relay(tmp_path / "local-relay")
    other = NostrRelay(tmp_path / "nostr-relay")
    url_b = await other.start()
    node = Node(node_config(clean_env, relays=(url_a, url_b)), identity=identity)
    customer = Customer(Keys.generate(), [url_a, url_b])
    try:
        await node.start()
        assert sorted(u.rstrip("/") for u in await node.dvm.pool.connected()) == sorted([url_a, url_b])
        await import_model(node, tiny_gguf, TINY)
        await node.serving.load(TINY)
        await customer.start()
        provider = PublicKey.parse(identity.nostr.pubkey_hex)
        for n in range(3):
            reply = await customer.ask("hello", provider=provider, params={"model": TINY, "max_tokens": "3"})
            assert node.dvm.inferences == n + 1  # one generation per job, not per delivery
            assert node.serving.get(TINY).counters.requests == n + 1
            assert await results_for(customer, reply["job"]) == {reply["result"]}  # one result, on both
    finally:
        await customer.stop()
        await node.stop()
        await other.stop()
        await local.stop()


@pytest.mark.timeout(420)  # a deadline, not a speed limit: on a busy 2-core machine 120 tokens take ~100 s
async def test_nostr_relay_restart_mid_job_the_result_still_arrives(tmp_path, clean_env, gemma_gguf, identity):
    relay = NostrRelay(tmp_path / "nostr-relay")
    url = await relay.start()
    node = Node(node_config(clean_env, relays=(url,)), identity=identity)
    customer = Customer(Keys.generate(), [url])
    try:
        await node.start()
        await import_model(node, gemma_gguf, GEMMA)
        await node.serving.load(GEMMA)
        await customer.start()
        processing = asyncio.Event()
        ask = asyncio.create_task(
            customer.ask(
                "The capital of France is",
                provider=PublicKey.parse(identity.nostr.pubkey_hex),
                params={"model": GEMMA, "max_tokens": "120", "temperature": "0"},
                timeout=300,
                on_status=lambda s, *_: processing.set() if s == "processing" else None,
            )
        )
        await asyncio.wait_for(processing.wait(), 60)
        await relay.restart()  # down while the model generates, back on the same port with the same SQLite
        reply = await asyncio.wait_for(ask, 300)
        assert reply["text"].strip()
        row = await node.dvm.job(reply["job"])
        assert row["status"] == "success" and node.dvm.inferences == 1
        assert await results_for(customer, reply["job"]) == {reply["result"]}
    finally:
        await customer.stop()
        await node.stop()
        await relay.stop()
