"""NIP-90's `relays` tag: feedback and the result also go to the relays a job names, within bounds and the
address rules (ws/wss only; loopback and private addresses only when nostr.reply_relays_local allows them)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from dvm_helpers import TINY, import_tiny, node_config, start_relay, until
from nostr_sdk import EventId, Filter, Keys, Kind, PublicKey, ReqTarget

from silnode.dvm.customer import Customer, build_request
from silnode.dvm.reply_relays import RelayPolicy, ReplyRelays, check_relay
from silnode.errors import AddressRefused
from silnode.node import Node

pytestmark = pytest.mark.timeout(240)


async def test_targets_are_checked_and_bounded():
    replies = ReplyRelays(RelayPolicy(), per_job=2)
    urls = [
        "ws://127.0.0.1:7447",
        "http://1.1.1.1",
        "ws://10.0.0.1",
        "wss://8.8.8.8/",
        "wss://mine.example",
        "wss://1.1.1.1",
        "wss://9.9.9.9",
    ]
    assert await replies.targets(urls, own=["wss://mine.example/"]) == ["wss://8.8.8.8", "wss://1.1.1.1"]
    local = ReplyRelays(RelayPolicy(local=True), per_job=3)
    assert await local.targets(urls, own=[]) == ["ws://127.0.0.1:7447", "ws://10.0.0.1", "wss://8.8.8.8"]
    lan = ReplyRelays(RelayPolicy(lan_only=True), per_job=3)
    link_local = ["ws://127.0.0.1:7447", "ws://10.0.0.1", "wss://169.254.1.1", "wss://8.8.8.8"]
    assert await lan.targets(link_local, own=[]) == ["ws://10.0.0.1", "wss://169.254.1.1", "wss://8.8.8.8"]
    assert await ReplyRelays(RelayPolicy(local=True), per_job=0).targets(urls, own=[]) == []


def test_a_relay_name_is_judged_on_its_resolved_address():
    with pytest.raises(AddressRefused, match="loopback"):
        check_relay(RelayPolicy(), "ws://localhost:7447")
    with pytest.raises(AddressRefused, match="ws:// and wss://"):
        check_relay(RelayPolicy(local=True), "https://relay.example")
    check_relay(RelayPolicy(local=True), "ws://localhost:7447")  # allowed when the node's config says so


async def test_a_dead_reply_relay_costs_a_few_tries_then_is_skipped(tmp_path):
    relay, url = await start_relay(tmp_path / "relay")
    replies = ReplyRelays(RelayPolicy(local=True), per_job=3)
    dead = "ws://127.0.0.1:1"  # nothing listens there
    try:
        ev = build_request(Keys.generate(), "hello")
        assert await replies.publish(ev, [url.rstrip("/"), dead]) == [url.rstrip("/")]  # never raises
        assert dead not in replies._open  # disconnected, so nostr-sdk stops reconnecting to it
        tried: list[str] = []
        connect = replies._ensure

        async def spy(u: str) -> None:
            tried.append(u)
            await connect(u)

        replies._ensure = spy
        ev2 = build_request(Keys.generate(), "again")
        assert await replies.publish(ev2, [dead, url.rstrip("/")]) == [url.rstrip("/")]
        assert tried == [url.rstrip("/")]  # the dead one is skipped for a minute: not even connected to
    finally:
        await replies.stop()
        await relay.stop()


async def answers_on(client, job_id: str) -> list[str]:
    """What a relay holds for the job: "result" and each feedback's status, sorted."""
    f = Filter().kinds([Kind(6050), Kind(7000)]).event(EventId.parse(job_id))
    events = await client.fetch_events(ReqTarget.auto([f]), timedelta(seconds=3))
    out = []
    for e in events:
        status = [t.to_vec()[1] for t in e.tags() if t.to_vec()[0] == "status"]
        out.append(status[0] if status else "result")
    return sorted(out)


async def complete(client, job_id: str) -> bool:
    return {"processing", "result", "success"} <= set(await answers_on(client, job_id))


@pytest.mark.parametrize("local", [True, False], ids=["allowed", "refused"])
async def test_the_answer_reaches_a_relay_only_the_job_names(tmp_path, clean_env, tiny_gguf, identity, local):
    """The node sells on relay A only. The customer posts its job to A and listens on B, which the job names
    in its `relays` tag: with reply_relays_local the answers reach B; without it (loopback is refused) they
    stay on A, and B holds nothing of the job."""
    relay_a, url_a = await start_relay(tmp_path / "relay-a")
    relay_b, url_b = await start_relay(tmp_path / "relay-b")
    node = Node(node_config(clean_env, relays=(url_a,), reply_relays_local=local), identity=identity)
    await node.start()
    keys = Keys.generate()
    poster, listener = Customer(keys, [url_a]), Customer(keys, [url_b])
    try:
        await import_tiny(node, tiny_gguf)
        await node.serving.load(TINY)
        await poster.start()
        await listener.start()
        provider = PublicKey.parse(identity.nostr.pubkey_hex)
        job = build_request(keys, "hello", provider=provider, params={"model": TINY, "max_tokens": "3"}, relays=[url_b])
        job_id = job.id().to_hex()
        if local:
            # the listener subscribes on B (and posts there, where no node listens); the node hears it on A
            ask = asyncio.create_task(listener.ask("", request=job, provider=provider, timeout=120))
            assert (await poster.client.send_event(job)).success
            reply = await ask
            assert reply["job"] == job_id and reply["text"]
            assert reply["statuses"][0] == "processing"
            # every answer went to both: processing, result and success on B as on A
            for client in (listener.client, poster.client):
                await until(lambda c=client: complete(c, job_id), 30, "processing, result and success")
            # every answer went to both relays (partials too, when the machine is slow enough for one)
            assert await answers_on(listener.client, job_id) == await answers_on(poster.client, job_id)
        else:
            reply = await poster.ask("", request=job, provider=provider, timeout=120)
            assert reply["job"] == job_id and reply["text"]
            assert await answers_on(listener.client, job_id) == []  # the loopback relay B was refused
        row = await node.dvm.job(job_id)
        assert row["status"] == "success" and row["delivered"] == 1
    finally:
        await poster.stop()
        await listener.stop()
        await node.stop()
        await relay_a.stop()
        await relay_b.stop()
