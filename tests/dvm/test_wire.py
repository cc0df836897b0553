"""Wire compatibility: a customer written with raw WebSocket JSON (NIP-01 ids and BIP-340 signatures by hand,
no nostr-sdk) gets a valid answer; a request with a bad signature is refused by the relay and the node keeps
selling; a customer's kind-5 deletion cancels its running job (no result)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time

import aiohttp
import pytest
from dvm_helpers import GEMMA, import_model, node_config, start_relay
from nostr_sdk import Keys, PublicKey

from silnode.dvm.customer import Customer, build_request
from silnode.identity.keys import NostrKey
from silnode.node import Node

pytestmark = pytest.mark.timeout(240)


def event_id(ev: dict) -> str:
    data = [0, ev["pubkey"], ev["created_at"], ev["kind"], ev["tags"], ev["content"]]
    return hashlib.sha256(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


def signed(key: NostrKey, kind: int, tags: list, content: str = "") -> dict:
    ev = {"pubkey": key.pubkey_hex, "created_at": int(time.time()), "kind": kind, "tags": tags, "content": content}
    ev["id"] = event_id(ev)
    ev["sig"] = key.sign_schnorr(bytes.fromhex(ev["id"])).hex()
    return ev


async def test_raw_websocket_customer(seller):
    url = seller.dvm.pool.embedded.url
    key = NostrKey(os.urandom(31) + b"\x01")
    provider = seller.identity.nostr.pubkey_hex
    tags = [["i", "hello world", "prompt"], ["param", "max_tokens", "4"], ["param", "top-k", "20"], ["p", provider]]
    job = signed(key, 5050, tags)
    bad = signed(key, 5050, [["i", "tampered", "text"], ["p", provider]])
    bad["sig"] = ("0" if bad["sig"][0] != "0" else "1") + bad["sig"][1:]
    async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
        await ws.send_json(["EVENT", bad])
        ok = await ws.receive_json(timeout=10)
        assert ok[0] == "OK" and ok[1] == bad["id"] and ok[2] is False  # the relay refuses it

        await ws.send_json(["REQ", "answers", {"kinds": [6050, 7000], "#e": [job["id"]]}])
        await ws.send_json(["EVENT", job])
        got: dict[int, list[dict]] = {6050: [], 7000: []}
        deadline = time.monotonic() + 60
        while not got[6050] and time.monotonic() < deadline:
            msg = await ws.receive_json(timeout=60)
            if msg[0] == "OK":
                assert msg[1:3] == [job["id"], True], msg
            elif msg[0] == "EVENT" and msg[1] == "answers":
                got[msg[2]["kind"]].append(msg[2])
    result = got[6050][0]
    for ev in [result, *got[7000]]:  # ids and signatures check out by NIP-01 / BIP-340, by hand
        assert ev["id"] == event_id(ev) and ev["pubkey"] == provider
        assert NostrKey.verify_schnorr(bytes.fromhex(provider), bytes.fromhex(ev["id"]), bytes.fromhex(ev["sig"]))
    assert result["content"]
    rtags = result["tags"]
    assert any(t[:2] == ["e", job["id"]] for t in rtags)
    assert ["p", key.pubkey_hex] in rtags and ["i", "hello world", "prompt"] in rtags
    assert json.loads(next(t[1] for t in rtags if t[0] == "request"))["id"] == job["id"]
    assert [t[1] for t in got[7000][0]["tags"] if t[0] == "status"] == ["processing"]
    assert seller.dvm.inferences == 1


async def test_deletion_cancels_a_running_job(tmp_path, clean_env, gemma_gguf, identity):
    relay, url = await start_relay(tmp_path / "relay")
    node = Node(node_config(clean_env, relays=(url,)), identity=identity)
    await node.start()
    customer = Customer(Keys.generate(), [url])
    try:
        await import_model(node, gemma_gguf, GEMMA)
        await node.serving.load(GEMMA)
        await customer.start()
        request = build_request(
            customer.keys,
            "Once upon a time",
            provider=PublicKey.parse(identity.nostr.pubkey_hex),
            params={"model": GEMMA, "max_tokens": "400"},
        )
        processing = asyncio.Event()
        ask = asyncio.create_task(
            customer.ask(
                "", request=request, timeout=30, on_status=lambda s, *_: processing.set() if s == "processing" else None
            )
        )
        await asyncio.wait_for(processing.wait(), 60)
        await customer.cancel(request)
        job_id = request.id().to_hex()
        deadline = time.monotonic() + 60
        while (await node.dvm.job(job_id))["status"] != "cancelled" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        row = await node.dvm.job(job_id)
        assert row["status"] == "cancelled" and row["result_id"] is None
        assert node.serving.get(GEMMA).counters.cancelled == 1
        ask.cancel()
        await asyncio.gather(ask, return_exceptions=True)
    finally:
        await customer.stop()
        await node.stop()
        await relay.stop()
