"""Money back on the NIP-90 side, end to end (a real relay, a real llama.cpp worker, a real nutshell mint with
FakeWallet brr=false): a ``["cashu", token]`` prepayment worth more than the price gets its change; a paid job
that fails, that its customer cancels after paying, or that expires (NIP-40) before it is paid for, gets a
refund; each goes to the customer as a cashu token in an ENCRYPTED kind-7000 feedback, which the customer
decrypts and redeems at the mint. The same token twice is refused; an invoice nobody pays expires and its job never runs. And a node stopped between the
payment-required feedback and the payment finds the payment when it starts again and runs the job once."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "dvm"))

from dvm_helpers import PHRASE, TINY, import_tiny, start_relay, until  # noqa: E402
from nostr_sdk import EventId, Filter, Keys, Kind, PublicKey, ReqTarget  # noqa: E402

from silnode.config import load_config  # noqa: E402
from silnode.dvm.customer import Customer as NostrCustomer  # noqa: E402
from silnode.dvm.customer import build_request  # noqa: E402
from silnode.dvm.jobs import tags_of  # noqa: E402
from silnode.errors import JobRejected  # noqa: E402
from silnode.identity import Identity  # noqa: E402
from silnode.node import Node  # noqa: E402

pytestmark = pytest.mark.timeout(300)
PRICE = 2000  # msats per job: 2 sats


def config(home, mint_url: str, *, expiry: int, relays: tuple[str, ...] = ()):
    return load_config(
        home,
        overrides={
            "daemon.port": 0,
            "nostr.relay_port": 0,
            "nostr.relays": relays,
            "serve.n_threads": 2,
            "serve.n_ctx": 512,
            "payments.require_payment": True,
            "payments.backend": "cashu",
            "payments.mints": [mint_url],
            "payments.price_msats_per_job": PRICE,
            "payments.invoice_expiry": expiry,
            "payments.poll_interval": 0.2,
        },
    )


async def ledger_states(node: Node, job_id: str) -> list[str]:
    ledger = node.payments.ledger
    return [p.state for p in await ledger.call(ledger.by_job, job_id)]


async def feedback_events(buyer: NostrCustomer, job_id: str) -> list:
    f = Filter().kind(Kind(7000)).event(EventId.parse(job_id))
    return list(await buyer.client.fetch_events(ReqTarget.auto([f]), timedelta(seconds=3)))


async def test_change_refunds_reuse_and_expiry_over_nostr(clean_env, tiny_gguf, mint, customer):
    identity = Identity.from_mnemonic(PHRASE)
    node = Node(config(clean_env, mint.url, expiry=20), identity=identity)
    await node.start()
    buyer = NostrCustomer(Keys.generate(), [node.dvm.pool.embedded.url])
    await buyer.start()
    provider = PublicKey.parse(identity.nostr.pubkey_hex)
    params = {"model": TINY, "max_tokens": "4", "temperature": "0"}
    try:
        await import_tiny(node, tiny_gguf)
        await node.serving.load(TINY)

        # NIP-89 announces the price rule and the mints a prepayment may come from
        async def announced() -> bool:
            return bool(await buyer.providers(timeout=1))

        await until(announced, 60, "the announcement")
        (ann,) = await buyer.providers(timeout=1)
        assert ann["models"][0]["price"] == {"unit": "msats", "per_job": PRICE, "per_1k_tokens": 0, "mints": [mint.url]}

        # 1. a 5-sat prepayment for a 2-sat job: it runs, and 3 sats come back encrypted with `processing`
        got: list[tuple[str, str]] = []

        async def on_ecash(token: str, status: str) -> None:
            got.append((status, token))

        token = await customer.token(5)
        before = customer.balance
        reply = await buyer.ask(
            "", request=build_request(buyer.keys, "hello", provider=provider, params=params, encryption="nip44",
                                      cashu=token),
            encryption="nip44", on_ecash=on_ecash,
        )  # fmt: skip
        assert reply["text"] and reply["amount_msats"] == PRICE and node.dvm.inferences == 1
        assert [s for s, _ in got] == ["processing"]
        assert await customer.receive(got[0][1]) == 3 and customer.balance == before + 3
        # the change's feedback: encrypted content, no token in clear anywhere on the relay
        for ev in await feedback_events(buyer, reply["job"]):
            clear = [ev.content()] + [x for t in tags_of(ev) for x in t]
            assert not any(m in x for x in clear for m in ("cashuA", "cashuB"))
        assert await ledger_states(node, reply["job"]) == ["paid"]

        # 2. the same token again: the mint says spent, the job is refused and never runs
        with pytest.raises(JobRejected, match="already spent"):
            await buyer.ask(
                "", request=build_request(buyer.keys, "hi", provider=provider, params=params, encryption="nip44",
                                          cashu=token),
                encryption="nip44",
            )  # fmt: skip
        assert node.dvm.inferences == 1

        # 3. paid (prepaid, exact), then failed (a prompt longer than the context): refunded in the error
        got.clear()
        token = await customer.token(2)
        long = build_request(buyer.keys, "the water " * 400, provider=provider, params=params, encryption="nip44",
                             cashu=token)  # fmt: skip
        with pytest.raises(JobRejected) as exc:
            await buyer.ask("", request=long, encryption="nip44", on_ecash=on_ecash)
        assert exc.value.details["refunded"] and [s for s, _ in got] == ["error"]
        assert "refund: 2 sats" in str(exc.value)
        assert await customer.receive(got[0][1]) == 2  # redeemed at the mint: real money back
        assert await ledger_states(node, long.id().to_hex()) == ["refunded"]

        # 4. an invoice paid, but the customer deleted the job first: refunded (not encrypted job: the
        #    refund still is)
        got.clear()
        job_ids: list[str] = []

        async def cancel_then_pay(msats: int, bolt11: str) -> None:
            await buyer.cancel(buyer.last_request)
            await until(lambda: buyer.last_request.id().to_hex() in node.dvm._cancelled, 30, "the cancellation")
            job_ids.append(buyer.last_request.id().to_hex())
            await customer.pay(bolt11)

        inferences = node.dvm.inferences
        with pytest.raises(JobRejected, match="cancelled; paid, so refunded"):
            await buyer.ask("hello", provider=provider, params=params, on_payment=cancel_then_pay, on_ecash=on_ecash)
        assert [s for s, _ in got] == ["error"] and await customer.receive(got[0][1]) == 2
        assert node.dvm.inferences == inferences  # never ran
        assert await ledger_states(node, job_ids[0]) == ["refunded"]
        assert (await node.dvm.job(job_ids[0]))["status"] == "cancelled"

        # 4b. an invoice paid after the job's own NIP-40 expiration: no work, the payment comes back
        got.clear()
        expires = int(time.time()) + 8
        late = build_request(buyer.keys, "hello", provider=provider, params=params, expiration=expires)

        async def pay_late(msats: int, bolt11: str) -> None:
            while time.time() < expires + 1.5:  # NIP-40 counts whole seconds
                await asyncio.sleep(0.2)
            await customer.pay(bolt11)

        with pytest.raises(JobRejected, match=r"expired \(NIP-40\) while its payment was awaited; refund: 2 sats"):
            await buyer.ask("", request=late, on_payment=pay_late, on_ecash=on_ecash)
        assert [s for s, _ in got] == ["error"] and await customer.receive(got[0][1]) == 2
        assert node.dvm.inferences == inferences
        assert await ledger_states(node, late.id().to_hex()) == ["refunded"]

        # 5. an invoice nobody pays: it expires, the job never runs
        with pytest.raises(JobRejected, match="expired"):
            await buyer.ask("hello", provider=provider, params=params)
        assert node.dvm.inferences == inferences
        assert await ledger_states(node, buyer.last_request.id().to_hex()) == ["expired"]

        earned = await node.payments.earnings()
        assert earned["totals"]["paid"]["msats"] == PRICE  # job 1 only
        assert earned["totals"]["refunded"] == {"count": 3, "msats": 3 * PRICE}
    finally:
        await buyer.stop()
        await node.stop()


async def test_node_stopped_between_payment_required_and_payment_runs_the_job_after_restart(
    tmp_path, clean_env, tiny_gguf, mint, customer
):
    relay, url = await start_relay(tmp_path / "relay")
    identity = Identity.from_mnemonic(PHRASE)
    cfg = config(clean_env, mint.url, expiry=300, relays=(url,))
    node = Node(cfg, identity=identity)
    await node.start()
    buyer = NostrCustomer(Keys.generate(), [url])
    await buyer.start()
    try:
        await import_tiny(node, tiny_gguf)
        await node.serving.load(TINY)
        invoices: list[str] = []
        asked = asyncio.Event()

        async def remember(msats: int, bolt11: str) -> None:  # pays nothing itself
            invoices.append(bolt11)
            asked.set()

        ask = asyncio.create_task(
            buyer.ask(
                "hello",
                provider=PublicKey.parse(identity.nostr.pubkey_hex),
                params={"model": TINY, "max_tokens": "4", "temperature": "0"},
                on_payment=remember,
                timeout=240,
            )
        )
        await asyncio.wait_for(asked.wait(), 60)
        await node.stop()  # the node goes down with the job waiting for its payment
        await customer.pay(invoices[0])  # paid while it is down

        node = Node(cfg, identity=identity)
        await node.start()  # finds the payment (recovery + the job store's resume) and runs the job once
        reply = await asyncio.wait_for(ask, 240)
        assert reply["text"] and reply["amount_msats"] == PRICE
        assert set(invoices) == {invoices[0]}  # the same invoice again, never a second bill
        assert node.dvm.inferences == 1
        assert (await node.dvm.job(reply["job"]))["status"] == "success"
        assert await ledger_states(node, reply["job"]) == ["paid"]
        assert (await node.payments.earnings())["totals"]["paid"]["msats"] == PRICE
    finally:
        ask.cancel()
        await asyncio.gather(ask, return_exceptions=True)
        await buyer.stop()
        await node.stop()
        await relay.stop()
