"""A job survives what a node meets: two relays delivering it twice, a relay restarting mid-job, a node killed
(SIGKILL) mid-job and started again, a node killed between storing a result and publishing it. Each job is
generated once per node life that owes it and answered with exactly one result."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from datetime import timedelta

import pytest
from dvm_helpers import GEMMA, TINY, NostrRelay, import_model, node_config, start_relay, until, write_config
from nostr_sdk import Filter, Keys, Kind, PublicKey, ReqTarget

from silnode.client import Client
from silnode.dvm.customer import Customer, build_request
from silnode.identity import FAST_TEST_KDF, Keystore
from silnode.node import Node

pytestmark = pytest.mark.timeout(300)


async def results_for(customer: Customer, job_id: str) -> set[str]:
    from nostr_sdk import EventId

    f = Filter().kind(Kind(6050)).event(EventId.parse(job_id))
    events = await customer.client.fetch_events(ReqTarget.auto([f]), timedelta(seconds=3))
    return {e.id().to_hex() for e in events}


async def test_two_relays_deliver_one_job_twice_it_runs_once(tmp_path, clean_env, tiny_gguf, identity):
    relay_a, url_a = await start_relay(tmp_path / "relay-a")
    relay_b, url_b = await start_relay(tmp_path / "relay-b")
    node = Node(node_config(clean_env, relays=(url_a, url_b)), identity=identity)
    await node.start()
    customer = Customer(Keys.generate(), [url_a, url_b])
    try:
        await import_model(node, tiny_gguf, TINY)
        await node.serving.load(TINY)
        await customer.start()
        provider = PublicKey.parse(identity.nostr.pubkey_hex)
        for n in range(3):
            reply = await customer.ask("hello", provider=provider, params={"model": TINY, "max_tokens": "3"})
            row = await node.dvm.job(reply["job"])
            assert row["relay"] in (url_a + "/", url_b + "/", url_a, url_b)
            assert await results_for(customer, reply["job"]) == {reply["result"]}
            assert node.dvm.inferences == n + 1  # one generation per job, not per delivery
            assert node.serving.get(TINY).counters.requests == n + 1
    finally:
        await customer.stop()
        await node.stop()
        await relay_a.stop()
        await relay_b.stop()


@pytest.mark.timeout(420)  # a deadline, not a speed limit: on a busy 2-core machine 120 tokens take ~100 s
async def test_relay_restart_mid_job_the_result_still_arrives(tmp_path, clean_env, gemma_gguf, identity):
    relay, url = await start_relay(tmp_path / "relay")
    port = int(url.rsplit(":", 1)[1].strip("/"))
    node = Node(node_config(clean_env, relays=(url,)), identity=identity)
    await node.start()
    customer = Customer(Keys.generate(), [url])
    try:
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
        await relay.stop()  # the relay goes away while the model generates
        await asyncio.sleep(1.0)
        relay, _ = await start_relay(tmp_path / "relay", port=port)  # same port, same LMDB
        reply = await asyncio.wait_for(ask, 300)
        assert reply["text"].strip()
        row = await node.dvm.job(reply["job"])
        assert row["status"] == "success" and node.dvm.inferences == 1
    finally:
        await customer.stop()
        await node.stop()
        await relay.stop()


async def test_result_stored_but_not_published_is_delivered_after_restart_without_generating(
    tmp_path, clean_env, tiny_gguf, identity
):
    """The window between storing a result and a relay taking it: the restarted node publishes the stored
    result (same event id) and generates nothing."""
    relay, url = await start_relay(tmp_path / "relay")
    config = node_config(clean_env, relays=(url,))
    node = Node(config, identity=identity)
    await node.start()
    await import_model(node, tiny_gguf, TINY)
    await node.serving.load(TINY)
    customer = Customer(Keys.generate(), [url])
    await customer.start()
    try:
        reply = await customer.ask(
            "hello", provider=PublicKey.parse(identity.nostr.pubkey_hex), params={"model": TINY, "max_tokens": "3"}
        )
        await node.stop()
        # as if the node died before any relay took the result: delivered = 0, and the relay never saw it
        db = sqlite3.connect(config.home / "nostr" / "jobs.sqlite3")
        db.execute("UPDATE jobs SET delivered = 0 WHERE id = ?", (reply["job"],))
        db.commit()
        db.close()

        node = Node(config, identity=identity)
        await node.start()

        async def delivered() -> bool:
            return (await node.dvm.job(reply["job"]))["delivered"] == 1

        await until(delivered, 60, "the stored result delivered")
        assert (await node.dvm.job(reply["job"]))["status"] == "success"
        assert node.dvm.inferences == 0  # nothing generated again
        assert await results_for(customer, reply["job"]) == {reply["result"]}  # the same signed result
    finally:
        await customer.stop()
        await node.stop()
        await relay.stop()


@pytest.mark.e2e
@pytest.mark.timeout(900)
@pytest.mark.parametrize("relays", ["two LocalRelays", "nostr-relay"])
async def test_sigkill_mid_job_restart_completes_it_once(relays, tmp_path, clean_env, gemma_gguf, tiny_gguf, identity):
    """Both relay implementations: two nostr-sdk LocalRelays replaying the job to the restarted node, and the
    PyPI nostr-relay server alone (a second implementation's replay of stored events after the restart)."""
    from daemons import start_daemon, stop_daemon

    if relays == "nostr-relay":
        relay_a = NostrRelay(tmp_path / "nostr-relay")
        url_a = await relay_a.start()
        relay_b, urls = None, [url_a]
    else:
        relay_a, url_a = await start_relay(tmp_path / "relay-a")
        relay_b, url_b = await start_relay(tmp_path / "relay-b")
        urls = [url_a, url_b]
    home = clean_env
    write_config(home, relays=urls)
    Keystore.for_home(home, kdf=FAST_TEST_KDF).save(identity, "test password")
    # the store and the served set, prepared in-process (the daemon serves them again when it starts)
    prep = Node(node_config(home), identity=None)
    await prep.start()
    await import_model(prep, gemma_gguf, GEMMA)
    await prep.serving.load(GEMMA)
    await prep.stop()

    env = {"SILNODE_PASSWORD": "test password"}
    customer = Customer(Keys.generate(), urls)
    await customer.start()
    d = await asyncio.to_thread(start_daemon, home, env=env, timeout=60)
    try:
        client = Client(d.url, d.token)
        await until(lambda: any(m["state"] == "ready" for m in client.serving()), 120, "gemma loaded in the daemon")
        assert client.dvm()["state"] == "selling"
        processing = asyncio.Event()
        request = build_request(
            customer.keys,
            "Once upon a time",
            provider=PublicKey.parse(identity.nostr.pubkey_hex),
            params={"model": GEMMA, "max_tokens": "150", "temperature": "0"},
        )
        job_id = request.id().to_hex()
        ask = asyncio.create_task(
            customer.ask(
                "",
                request=request,
                timeout=600,  # a hang guard: 150 Gemma tokens on 2 busy vCPUs took over 240 s once
                on_status=lambda s, *_: processing.set() if s == "processing" else None,
            )
        )
        await asyncio.wait_for(processing.wait(), 60)
        os.kill(d.pid, signal.SIGKILL)  # mid-generation
        await asyncio.to_thread(d.proc.wait)
        db = sqlite3.connect(home / "nostr" / "jobs.sqlite3")
        assert db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone() == ("processing",)
        db.close()

        d = await asyncio.to_thread(start_daemon, home, env=env, timeout=60)
        client = Client(d.url, d.token)
        reply = await asyncio.wait_for(ask, 600)
        assert reply["text"].strip() and reply["job"] == job_id
        await until(lambda: client.job(job_id)["delivered"] == 1, 30, "the result marked delivered")
        job = client.job(job_id)
        assert job["status"] == "success" and job["completion_tokens"] > 0
        assert [t["status"] for t in job["transitions"]] == ["received", "processing", "processing", "success"]
        status = client.dvm()
        assert status["inferences"] == 1  # the restarted node ran it once, though the relays replayed it
        assert await results_for(customer, job_id) == {reply["result"]}  # one result, on every relay
        jobs = client.jobs()
        assert [j["id"] for j in jobs] == [job_id]
    finally:
        stop_daemon(d)
        await customer.stop()
        await relay_a.stop()
        if relay_b is not None:
            await relay_b.stop()
