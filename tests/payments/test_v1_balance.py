"""A token funds a balance for later /v1 requests (Routstr's way): POST /v1/balance with ecash in X-Cashu returns
an API key (only its hash is kept) whose balance each request is charged from; the official `openai` client uses
the key; an empty balance is a 402; a failed request is credited back; the key tops up and withdraws (a real
token the customer redeems at the mint). Non-loopback bind: the key is the request's credential. Real mint,
real llama.cpp worker."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "dvm"))

from dvm_helpers import PHRASE, TINY, import_tiny  # noqa: E402
from v1_node import priced_v1_config  # noqa: E402

from silnode.api import make_app  # noqa: E402
from silnode.home import token_digest  # noqa: E402
from silnode.identity import Identity  # noqa: E402
from silnode.node import Node  # noqa: E402

pytestmark = pytest.mark.timeout(240)


async def test_a_balance_key_pays_for_requests_until_it_runs_out(clean_env, tiny_gguf, mint, customer, aiohttp_client):
    config = priced_v1_config(clean_env, mint.url, "0.0.0.0")
    node = Node(config, identity=Identity.from_mnemonic(PHRASE))
    await node.start()
    try:
        await import_tiny(node, tiny_gguf)
        await node.serving.load(TINY)
        client = await aiohttp_client(make_app(node))

        # 7 sats fund a new key
        token = await customer.token(7)
        r = await client.post("/v1/balance", headers={"X-Cashu": token})
        body = await r.json()
        assert r.status == 200 and body["balance_msats"] == 7000, body
        key = body["api_key"]
        assert key.startswith("sbal_")
        again = await client.post("/v1/balance", headers={"X-Cashu": token})  # the same token: spent
        assert again.status == 409 and "already spent" in (await again.json())["error"]["message"]
        # only the key's hash is stored
        db = sqlite3.connect(config.state_dir / "payments.db")
        assert db.execute("SELECT key_sha256 FROM balances").fetchall() == [(token_digest(key),)]
        assert key.encode() not in (config.state_dir / "payments.db").read_bytes()
        db.close()

        from openai import APIStatusError, OpenAI

        api = OpenAI(base_url=f"http://127.0.0.1:{client.server.port}/v1", api_key=key, max_retries=0)

        def call(prompt: str = "the water"):
            return api.completions.with_raw_response.create(model=TINY, prompt=prompt, max_tokens=4)

        left = []
        for _ in range(3):
            raw = await asyncio.to_thread(call)
            assert raw.parse().usage.completion_tokens == 4
            left.append(int(raw.headers["X-Balance-Msats"]))
        assert left == [5000, 3000, 1000]

        with pytest.raises(APIStatusError) as exc:  # 1 sat left, the request costs 2: 402, nothing runs
            await asyncio.to_thread(call)
        assert exc.value.status_code == 402 and exc.value.response.headers["X-Cashu"].startswith("creqA")
        assert "insufficient_balance" in str(exc.value.body)

        # top up the same key with 3 sats
        r = await client.post(
            "/v1/balance", headers={"X-Cashu": await customer.token(3), "Authorization": f"Bearer {key}"}
        )
        assert (await r.json())["balance_msats"] == 4000 and "api_key" not in await r.json()

        # charged, then failed (a prompt longer than the context): credited back
        with pytest.raises(APIStatusError) as exc:
            await asyncio.to_thread(call, "the water " * 2000)
        assert exc.value.status_code == 400
        r = await client.get("/v1/balance", headers={"Authorization": f"Bearer {key}"})
        assert (await r.json())["balance_msats"] == 4000

        # /v1/models lists what a request costs
        r = await client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
        (entry,) = (await r.json())["data"]
        assert entry["pricing"] == {"unit": "msats", "per_job": 2000, "per_1k_tokens": 0, "mints": [mint.url],
                                    "required": True}  # fmt: skip

        # the balance survives a restart of the node (the ledger is SQLite, synchronous=FULL)
        await node.stop()
        node = Node(config, identity=Identity.from_mnemonic(PHRASE))
        await node.start()
        client = await aiohttp_client(make_app(node))
        r = await client.get("/v1/balance", headers={"Authorization": f"Bearer {key}"})
        assert (await r.json())["balance_msats"] == 4000

        # withdraw it all: one token the customer redeems at the mint
        r = await client.delete("/v1/balance", headers={"Authorization": f"Bearer {key}"})
        assert r.status == 200 and (await r.json())["withdrawn_msats"] == 4000
        assert await customer.receive(r.headers["X-Cashu"]) == 4
        r = await client.get("/v1/balance", headers={"Authorization": f"Bearer {key}"})
        assert (await r.json())["balance_msats"] == 0

        # an unknown key is no credential on this bind
        r = await client.get("/v1/balance", headers={"Authorization": "Bearer sbal_nope"})
        assert r.status == 401
        r = await client.post(
            "/v1/completions", json={"model": TINY, "prompt": "x"}, headers={"Authorization": "Bearer sbal_nope"}
        )
        assert r.status == 401

        api.close()
        earned = await node.payments.earnings()
        assert earned["totals"]["paid"] == {"count": 3, "msats": 6000}, earned
        assert earned["totals"]["refunded"] == {"count": 1, "msats": 2000}
    finally:
        await node.stop()
