"""NIP-40 expiration: an expired job gets no result and is never run; a job that expires while it waits in the
model's queue is dropped from it (its customer hears why, and no result follows)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from dvm_helpers import GEMMA, TINY, NostrRelay, import_model, start_relay, until
from nostr_sdk import EventId, Filter, Keys, Kind, PublicKey, ReqTarget

from silnode.config import load_config
from silnode.dvm.customer import Customer, build_request
from silnode.dvm.store import JobStore
from silnode.errors import JobRejected
from silnode.node import Node
from silnode.serving.request import GenerationRequest

pytestmark = pytest.mark.timeout(300)


def config(home, relays, n_ctx: int = 512):
    overrides = {"daemon.port": 0, "nostr.relay_port": 0, "serve.n_threads": 2, "serve.n_ctx": n_ctx}
    return load_config(home, overrides={**overrides, "nostr.relays": relays})


async def answers(customer: Customer, job_id: str) -> dict[int, list]:
    f = Filter().kinds([Kind(6050), Kind(7000)]).event(EventId.parse(job_id))
    events = await customer.client.fetch_events(ReqTarget.auto([f]), timedelta(seconds=3))
    out: dict[int, list] = {6050: [], 7000: []}
    for e in events:
        out[e.kind().as_u16()].append([t.to_vec() for t in e.tags()])
    return out


def status_of(tags: list[list[str]]) -> list[str]:
    return next(t for t in tags if t[0] == "status")


async def test_an_expired_job_on_a_relay_that_keeps_it_is_never_run(tmp_path, clean_env, tiny_gguf, identity):
    """nostr-relay stores and serves expired events (until its garbage collector runs): the node sees the job
    among the past jobs it asks for at start and live, and neither runs nor answers it."""
    relay = NostrRelay(tmp_path / "nostr-relay")
    url = await relay.start()
    keys = Keys.generate()
    customer = Customer(keys, [url])
    await customer.start()
    provider = PublicKey.parse(identity.nostr.pubkey_hex)
    past = build_request(keys, "too late", provider=provider, params={"model": TINY}, expiration=int(time.time()) - 5)
    assert (await customer.client.send_event(past)).success  # nostr-relay takes it (LocalRelay would not)
    node = Node(config(clean_env, [url]), identity=identity)
    try:
        await node.start()
        await import_model(node, tiny_gguf, TINY)
        await node.serving.load(TINY)
        live = build_request(
            keys, "also too late", provider=provider, params={"model": TINY}, expiration=int(time.time()) - 1
        )
        assert (await customer.client.send_event(live)).success
        # a job sent after both: once it is answered, the node has seen everything before it
        reply = await customer.ask("in time", provider=provider, params={"model": TINY, "max_tokens": "2"})
        assert reply["text"]
        for job in (past, live):
            # nostr-sdk drops expired events before the node sees them (no row); were one to slip through, the
            # node's own check records it as expired. Either way it never runs.
            row = await node.dvm.store.get(job.id().to_hex())
            assert row is None or (row["status"] == "expired" and row["completion_tokens"] is None)
            assert (await answers(customer, job.id().to_hex()))[6050] == []
        assert node.dvm.inferences == 1 and node.serving.get(TINY).counters.requests == 1
    finally:
        await customer.stop()
        await node.stop()
        await relay.stop()


async def test_a_job_accepted_before_a_restart_and_expired_since_is_not_run(tmp_path, clean_env, tiny_gguf, identity):
    relay, url = await start_relay(tmp_path / "relay")
    cfg = config(clean_env, [url])
    keys = Keys.generate()
    provider = PublicKey.parse(identity.nostr.pubkey_hex)
    job = build_request(keys, "hello", provider=provider, params={"model": TINY}, expiration=int(time.time()) - 1)
    job_id = job.id().to_hex()
    # the store as a node left it when it stopped with this job accepted (it had not expired then)
    store = JobStore(cfg.home / "nostr" / "jobs.sqlite3")
    await store.open()
    assert await store.accept(
        id=job_id, customer=keys.public_key().to_hex(), kind=5050, request=job.as_json(), relay=url
    )
    await store.close()
    node = Node(cfg, identity=identity)
    customer = Customer(keys, [url])
    try:
        await node.start()
        await import_model(node, tiny_gguf, TINY)
        await node.serving.load(TINY)
        await customer.start()

        async def settled() -> bool:
            return (await node.dvm.job(job_id))["status"] != "received"

        await until(settled, 60, "the resumed job settled")
        row = await node.dvm.job(job_id)
        assert row["status"] == "expired" and row["completion_tokens"] is None and row["result_id"] is None
        assert [t["status"] for t in row["transitions"]] == ["received", "expired"]
        assert node.dvm.inferences == 0 and node.serving.get(TINY).counters.requests == 0
        got = await answers(customer, job_id)
        assert got[6050] == [] and [status_of(t)[1] for t in got[7000]] == ["error"]
        assert "expired" in status_of(got[7000][0])[2]
    finally:
        await customer.stop()
        await node.stop()
        await relay.stop()


def eos_token(path) -> int:
    import gguf

    field = gguf.GGUFReader(path).fields["tokenizer.ggml.eos_token_id"]
    return int(field.parts[field.data[0]][0])


async def test_a_job_expiring_in_the_queue_is_dropped_unrun(tmp_path, clean_env, gemma_gguf, identity):
    """The model is busy with a long generation (an HTTP client's, EOS banned, a 4k context); a job that
    expires while queued behind it is taken out of the queue and never generated."""
    relay, url = await start_relay(tmp_path / "relay")
    node = Node(config(clean_env, [url], n_ctx=4096), identity=identity)
    customer = Customer(Keys.generate(), [url])
    hog = None
    try:
        await node.start()
        await import_model(node, gemma_gguf, GEMMA)
        await node.serving.load(GEMMA)
        await customer.start()
        model = node.serving.get(GEMMA)
        long = GenerationRequest.completion(
            "Once upon a time", max_tokens=None, temperature=0.0, logit_bias={eos_token(gemma_gguf): -100}
        )
        hog = model.submit("http:hog", long)
        await until(lambda: model.running is hog, 60, "the long generation running")

        seen: list[tuple[str, str]] = []
        job = build_request(
            customer.keys,
            "hello",
            provider=PublicKey.parse(identity.nostr.pubkey_hex),
            params={"model": GEMMA, "max_tokens": "5"},
            expiration=int(time.time()) + 15,  # time enough to reach the queue on a busy machine
        )
        ask = asyncio.create_task(
            customer.ask("", request=job, timeout=120, on_status=lambda s, extra, _: seen.append((s, extra)))
        )
        with pytest.raises(JobRejected, match="expired"):
            await ask  # the error feedback ends the customer's wait
        assert model.running is hog  # still generating: the job expired in the queue, not after the hog ended
        row = await node.dvm.job(job.id().to_hex())
        assert row["status"] == "expired" and row["result_id"] is None and row["completion_tokens"] is None
        assert [t["status"] for t in row["transitions"]] == ["received", "processing", "expired"]
        assert "queued" in row["transitions"][-1]["detail"]
        assert [s for s, _ in seen] == ["processing", "error"]
        assert model.counters.requests == 1  # the hog only: the job never reached the worker
        assert (await answers(customer, job.id().to_hex()))[6050] == []
    finally:
        if hog is not None:
            hog.cancel()
        await customer.stop()
        await node.stop()
        await relay.stop()
