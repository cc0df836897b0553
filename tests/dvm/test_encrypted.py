"""Encrypted jobs (NIP-90 with NIP-44 v2 and NIP-04): the request's i/params travel encrypted in the content,
and the answer comes back in the same scheme, with no clear-text input anywhere on the relay."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from dvm_helpers import TINY
from nostr_sdk import Filter, Kind, PublicKey, ReqTarget

from silnode.dvm.jobs import tags_of

pytestmark = pytest.mark.timeout(240)

SECRET_PROMPT = "the secret word is hello"


@pytest.mark.parametrize("scheme", ["nip44", "nip04"])
async def test_encrypted_job_is_answered_in_the_same_scheme(seller, customer, scheme):
    provider = PublicKey.parse(seller.identity.nostr.pubkey_hex)
    partials = []
    seller.dvm.ns = dataclasses.replace(seller.dvm.ns, partial_interval=0.0001)  # a partial per token
    reply = await customer.ask(
        SECRET_PROMPT,
        provider=provider,
        params={"model": TINY, "max_tokens": "8"},
        encryption=scheme,
        on_status=lambda s, extra, content: partials.append(content) if s == "partial" else None,
    )
    assert reply["encrypted"] and reply["text"]
    assert "".join(partials) and reply["text"].startswith("".join(partials))  # partials decrypt, in order
    row = await seller.dvm.job(reply["job"])
    assert row["status"] == "success" and row["encryption"] == scheme and row["completion_tokens"] == 8

    # what the relay holds: no clear text of the prompt or the reply, and an ["encrypted"] tag on the answers
    events = await customer.client.fetch_events(
        ReqTarget.auto([Filter().kinds([Kind(6050), Kind(7000), Kind(5050)])]), timedelta(seconds=3)
    )
    assert len(events) >= 4
    for ev in events:
        assert SECRET_PROMPT not in ev.as_json()
        if ev.kind().as_u16() == 6050:
            tags = tags_of(ev)
            assert ["encrypted"] in tags and not any(t[0] == "i" for t in tags)
            assert ev.content() != reply["text"]
        if ev.kind().as_u16() == 7000 and ev.content():
            assert ev.content() not in partials
