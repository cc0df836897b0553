"""/v1 sold for ecash, as an OpenAI client meets it (Routstr's way, NUT-24): with payments.require_payment_http
a request without ecash is a 402 whose X-Cashu header is a NUT-18 payment request; the official `openai` client
pays by using a cashu token as its API key and gets its change back in the response's X-Cashu; a request that
fails after it was paid gets its money back; on a non-loopback bind the token is the credential. Real mint,
real llama.cpp worker."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "dvm"))

from dvm_helpers import TINY, import_tiny  # noqa: E402
from v1_node import priced_v1_config  # noqa: E402

from silnode.api import make_app  # noqa: E402
from silnode.identity import Identity  # noqa: E402
from silnode.node import Node  # noqa: E402

pytestmark = pytest.mark.timeout(240)
PHRASE = "leader monkey parrot ring guide accident before fence cannon height naive bean"


@pytest.mark.parametrize("bind", ["127.0.0.1", "0.0.0.0"])
async def test_v1_paid_with_ecash(clean_env, tiny_gguf, mint, customer, aiohttp_client, bind):
    config = priced_v1_config(clean_env, mint.url, bind)
    node = Node(config, identity=Identity.from_mnemonic(PHRASE))
    await node.start()
    try:
        await import_tiny(node, tiny_gguf)
        await node.serving.load(TINY)
        client = await aiohttp_client(make_app(node))
        body = {"model": TINY, "prompt": "the water", "max_tokens": 4, "temperature": 0}

        r = await client.post("/v1/completions", json=body)
        if bind == "0.0.0.0":
            assert r.status == 401  # no credential at all on a non-loopback bind
        else:
            assert r.status == 402 and r.headers["X-Cashu"].startswith("creqA")  # NUT-18: what to pay
            assert "2 sat" in (await r.json())["error"]["message"]

        # the official client, paying with a 5-sat token as its API key
        from openai import OpenAI

        token = await customer.token(5)
        api = OpenAI(base_url=f"http://127.0.0.1:{client.server.port}/v1", api_key=token, max_retries=0)

        def call():
            return api.completions.with_raw_response.create(model=TINY, prompt="the water", max_tokens=4)

        raw = await asyncio.to_thread(call)
        assert raw.parse().usage.completion_tokens == 4
        change = raw.headers["X-Cashu"]
        assert await customer.receive(change) == 3  # 5 paid, 2 charged, 3 back
        earned = await node.payments.earnings()
        assert earned["totals"]["paid"]["msats"] == 2000, earned

        # the same token again: spent, refused
        again = await client.post("/v1/completions", json=body, headers={"Authorization": f"Bearer {token}"})
        assert again.status in (400, 402, 409) and "X-Cashu" not in again.headers

        # paid, then failed (a prompt longer than the context): the money comes back in X-Cashu
        token = await customer.token(2)
        long = {**body, "prompt": "the water " * 2000}
        r = await client.post("/v1/completions", json=long, headers={"X-Cashu": token})
        assert r.status == 400 and await customer.receive(r.headers["X-Cashu"]) == 2
    finally:
        await node.stop()
