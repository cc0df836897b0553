"""The whole kind-5050 flow on a real relay with a real llama.cpp worker: request -> 7000 processing ->
6050 with the NIP-90 tags -> 7000 success, recorded in the job store."""

from __future__ import annotations

import pytest
from dvm_helpers import TINY
from nostr_sdk import PublicKey

pytestmark = pytest.mark.timeout(240)


async def test_targeted_job_gets_feedback_and_result(seller, customer):
    provider = PublicKey.parse(seller.identity.nostr.pubkey_hex)
    seen = []
    reply = await customer.ask(
        "hello world",
        provider=provider,
        params={"model": TINY, "max_tokens": "5", "temperature": "0"},
        bid=5000,
        on_status=lambda s, extra, content: seen.append(s),
    )
    assert seen[0] == "processing" and seen[-1] != "error"
    assert reply["text"] and reply["provider"] == seller.identity.npub and not reply["encrypted"]
    job = await seller.dvm.job(reply["job"])
    assert job["status"] == "success" and job["delivered"] == 1
    assert job["completion_tokens"] == 5 and job["model"] == TINY and job["bid"] == 5000
    assert [t["status"] for t in job["transitions"]] == ["received", "processing", "success"]
    assert job["result_id"] == reply["result"]
    assert seller.dvm.inferences == 1
