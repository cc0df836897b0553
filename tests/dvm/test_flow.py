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


async def test_a_job_asks_for_json_and_sampling_params_as_v1_does(seller, customer):
    """The /v1 sampling and structured-output parameters travel as NIP-90 params: a json_schema job's result
    parses and validates; a bad value is an error feedback naming the param."""
    import json

    from silnode.errors import JobRejected

    provider = PublicKey.parse(seller.identity.nostr.pubkey_hex)
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": ["hi", "yo"]}},  # short: it ends by itself
        "required": ["answer"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": True}}
    params = {
        "model": TINY,
        "max_tokens": "200",
        "seed": "7",
        "min_p": "0.05",
        "presence_penalty": "0.5",
        "repeat_penalty": "1.1",
        "stop": json.dumps(["\n\n\n"]),
        "response_format": json.dumps(fmt),
    }
    reply = await customer.ask("say hi as JSON", provider=provider, params=params)
    job = await seller.dvm.job(reply["job"])
    assert job["status"] == "success", job
    assert job["transitions"][-1]["detail"] == "stop", job  # the grammar closed the object
    assert json.loads(reply["text"]) in ({"answer": "hi"}, {"answer": "yo"})

    for bad, why in [
        ({"response_format": "[1]"}, "param response_format must be a JSON object"),
        ({"response_format": json.dumps({"type": "xml"})}, "response_format"),
        ({"seed": "soon"}, "param seed must be an integer"),
        ({"min_p": "3"}, "min_p"),
    ]:
        with pytest.raises(JobRejected, match=why):
            await customer.ask("hi", provider=provider, params={"model": TINY, "max_tokens": "3", **bad})
