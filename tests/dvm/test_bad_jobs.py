"""Every malformed job gets a kind-7000 `error` naming what is wrong, is recorded as failed, runs no
inference, and the node keeps selling: a good job afterwards is answered."""

from __future__ import annotations

import dataclasses

import pytest
from dvm_helpers import TINY
from nostr_sdk import EventBuilder, Keys, Kind, PublicKey, Tag

from silnode.dvm.customer import Customer
from silnode.errors import JobRejected

pytestmark = pytest.mark.timeout(240)


def job(keys: Keys, provider: str, tags: list[list[str]], content: str = ""):
    all_tags = tags + [["p", provider]]
    return EventBuilder(Kind(5050), content).tags([Tag.parse(t) for t in all_tags]).finalize(keys)


BAD = [
    ([], "has no input"),
    ([["i", "   ", "text"]], "needs data and a type"),
    ([["i", "hello", "image"]], "unknown input type 'image'"),
    ([["i", "hello", "text"], ["param", "temperature", "hot"]], "temperature must be a number"),
    ([["i", "hello", "text"], ["param", "top_p", "5"]], "top_p"),
    ([["i", "hello", "text"], ["param", "colour", "red"]], "unknown param(s) colour"),
    ([["i", "hello", "text"], ["param", "model", "org/missing"]], "not served here; served: test/tiny"),
    ([["i", "hello", "text"], ["param", "max_tokens", "5000"]], "over this provider's limit of 1024"),
    ([["i", "x" * 20001, "text"]], "takes at most 20000"),
    ([["i", "http://127.0.0.1:9/", "url"]], "resolves only to private, loopback or link-local"),
    ([["i", "http://localhost:9/", "url"]], "resolves only to private, loopback or link-local"),
    ([["i", "http://[::ffff:10.0.0.1]:9/", "url"]], "resolves only to private, loopback or link-local"),
    ([["i", "00" * 32, "event"]], "is not on this provider's relays"),
    ([["i", "hello", "text"], ["bid", "lots"]], "'bid' must be a whole number"),
]


async def test_each_malformed_job_gets_an_error_feedback(seller, customer):
    provider = seller.identity.nostr.pubkey_hex
    for tags, reason in BAD:
        with pytest.raises(JobRejected) as info:
            await customer.ask("", request=job(customer.keys, provider, tags), timeout=30)
        assert reason in str(info.value), (tags[:2], str(info.value))
        row = await seller.dvm.job(customer.last_request.id().to_hex())
        assert row["status"] == "error" and reason in row["error"]

    garbage = job(customer.keys, provider, [["encrypted"]], content="not a ciphertext")
    with pytest.raises(JobRejected, match="cannot decrypt the request"):
        await customer.ask("", request=garbage, timeout=30)

    other_kind = EventBuilder(Kind(5100), "").tags([Tag.parse(t) for t in [["i", "a cat", "text"], ["p", provider]]])
    with pytest.raises(JobRejected, match="answers kind 5050 .text generation., not 5100"):
        await customer.ask("", request=other_kind.finalize(customer.keys), timeout=30)

    assert seller.dvm.inferences == 0
    reply = await customer.ask(
        "still selling", provider=PublicKey.parse(provider), params={"model": TINY, "max_tokens": "3"}
    )
    assert reply["text"] and seller.dvm.inferences == 1


async def test_rate_limit_per_customer(seller, customer):
    seller.dvm.ns = dataclasses.replace(seller.dvm.ns, rate_per_minute=2)
    provider = PublicKey.parse(seller.identity.nostr.pubkey_hex)
    params = {"model": TINY, "max_tokens": "2"}
    for _ in range(2):
        await customer.ask("hello", provider=provider, params=params)
    with pytest.raises(JobRejected, match="rate limit: at most 2 jobs per minute"):
        await customer.ask("hello", provider=provider, params=params)
    other = Customer(Keys.generate(), customer.relays)  # the limit is per customer pubkey
    await other.start()
    try:
        assert (await other.ask("hello", provider=provider, params=params))["text"]
    finally:
        await other.stop()
    assert seller.dvm.inferences == 3
