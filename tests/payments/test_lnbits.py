"""The LNbits backend against a real LNbits (FakeWallet) in its own venv: the node holds a wallet's invoice key
(from the keystore), a second wallet credited by the superuser plays the customer."""

from __future__ import annotations

import logging
import time

import pytest

from silnode.config import load_config
from silnode.errors import InvoiceExpired, PaymentsUnavailable
from silnode.identity import Identity
from silnode.payments.gate import JobTerms
from silnode.payments.service import PaymentsService


@pytest.fixture(scope="module")
def wallets(lnbits):
    bearer = lnbits.first_install()
    node, customer = lnbits.new_wallet(bearer, "node"), lnbits.new_wallet(bearer, "customer")
    lnbits.credit(bearer, customer["id"], 10_000)
    return node, customer


def service(tmp_path, lnbits, identity, expiry: int = 60) -> PaymentsService:
    cfg = load_config(
        tmp_path / "home",
        environ={
            "SILNODE_PAYMENTS__REQUIRE_PAYMENT": "true",
            "SILNODE_PAYMENTS__BACKEND": "lnbits",
            "SILNODE_PAYMENTS__LNBITS_URL": lnbits.url,
            "SILNODE_PAYMENTS__PRICE_MSATS_PER_JOB": "5000",
            "SILNODE_PAYMENTS__INVOICE_EXPIRY": str(expiry),
            "SILNODE_PAYMENTS__POLL_INTERVAL": "0.2",
        },
    )
    return PaymentsService(cfg, identity)


async def test_lnbits_invoice_paid_runs_once_and_survives_a_restart(tmp_path, lnbits, wallets, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    node_wallet, customer = wallets
    ident = Identity.generate()
    ident.set_secret("lnbits_invoice_key", node_wallet["inkey"])
    svc = service(tmp_path, lnbits, ident)
    await svc.start()
    try:
        gate = svc.gate
        assert "inkey" not in repr(gate.backend) and node_wallet["inkey"] not in repr(gate.backend)
        charge = await gate.charge(JobTerms("f" * 64, 50, model="org/m"))
        assert charge.status == "invoice" and charge.amount_msats == 5000 and charge.bolt11.startswith("lnbc50n")
        started = time.monotonic()
        lnbits.pay(customer["adminkey"], charge.bolt11)
        await charge.wait()
        print(f"lnbits invoice paid -> gate released in {time.monotonic() - started:.3f} s")
        [p] = await gate.ledger.call(gate.ledger.by_job, "f" * 64)
        assert (p.state, p.backend, p.amount_msats) == ("paid", "lnbits", 5000)
        assert (await gate.charge(JobTerms("f" * 64, 50))).status == "paid"
        # a Lightning payment is no ecash the node could hand back: the refund is refused, and recorded as owed
        from silnode.errors import PaymentError

        with pytest.raises(PaymentError, match="refund it by hand"):
            await gate.refund("f" * 64)
        events = await gate.ledger.call(gate.ledger.events, p.id)
        assert events[-1] == ("paid", "refund owed: the job delivered nothing (Lightning)")

        # an invoice paid while the node is down
        second = await gate.charge(JobTerms("9" * 64, 50))
    finally:
        await svc.stop()
    lnbits.pay(customer["adminkey"], second.bolt11)
    svc = service(tmp_path, lnbits, ident)
    await svc.start()
    try:
        recovered = await svc.recovery  # started by the service itself
        assert [p.job_id for p in recovered] == ["9" * 64]
        earnings = await svc.earnings("1d")
        assert earnings["earned_msats"] == 10_000 and earnings["totals"]["paid"]["count"] == 2
    finally:
        await svc.stop()
    assert node_wallet["inkey"] not in caplog.text and node_wallet["adminkey"] not in caplog.text


async def test_lnbits_unpaid_invoice_expires(tmp_path, lnbits, wallets) -> None:
    ident = Identity.generate()
    ident.set_secret("lnbits_invoice_key", wallets[0]["inkey"])
    svc = service(tmp_path, lnbits, ident, expiry=2)
    await svc.start()
    try:
        charge = await svc.gate.charge(JobTerms("8" * 64, 50))
        with pytest.raises(InvoiceExpired):
            await charge.wait()
        [p] = await svc.gate.ledger.call(svc.gate.ledger.by_job, "8" * 64)
        assert p.state == "expired"
    finally:
        await svc.stop()


async def test_lnbits_backend_needs_its_key_in_the_keystore(tmp_path, lnbits) -> None:
    with pytest.raises(PaymentsUnavailable, match="lnbits_invoice_key"):
        await service(tmp_path, lnbits, Identity.generate()).start()
    with pytest.raises(PaymentsUnavailable, match="identity is locked"):
        await service(tmp_path, lnbits, None).start()


@pytest.mark.timeout(240)
async def test_a_nip90_job_paid_through_lnbits(clean_env, tiny_gguf, lnbits, wallets) -> None:
    """The whole flow with the LNbits backend: the payment-required feedback carries LNbits' bolt11, the
    customer's LNbits wallet pays it, the job runs once and its result carries the amount."""
    import asyncio
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "dvm"))
    from dvm_helpers import PHRASE, TINY, import_tiny
    from nostr_sdk import Keys, PublicKey

    from silnode.dvm.customer import Customer as NostrCustomer
    from silnode.node import Node

    node_wallet, customer = wallets
    identity = Identity.from_mnemonic(PHRASE)
    identity.set_secret("lnbits_invoice_key", node_wallet["inkey"])
    config = load_config(
        clean_env,
        overrides={
            "daemon.port": 0,
            "nostr.relay_port": 0,
            "serve.n_threads": 2,
            "serve.n_ctx": 512,
            "payments.require_payment": True,
            "payments.backend": "lnbits",
            "payments.lnbits_url": lnbits.url,
            "payments.price_msats_per_job": 3000,
            "payments.poll_interval": 0.3,
        },
    )
    node = Node(config, identity=identity)
    await node.start()
    buyer = NostrCustomer(Keys.generate(), [node.dvm.pool.embedded.url])
    await buyer.start()
    try:
        await import_tiny(node, tiny_gguf)
        await node.serving.load(TINY)
        invoices: list[str] = []

        async def pay(msats: int, bolt11: str) -> None:
            invoices.append(bolt11)
            await asyncio.to_thread(lnbits.pay, customer["adminkey"], bolt11)

        reply = await buyer.ask(
            "hello",
            provider=PublicKey.parse(identity.nostr.pubkey_hex),
            params={"model": TINY, "max_tokens": "4", "temperature": "0"},
            on_payment=pay,
        )
        assert len(invoices) == 1 and invoices[0].startswith("lnbc30n")
        assert reply["text"] and reply["amount_msats"] == 3000 and node.dvm.inferences == 1
        [p] = await node.payments.ledger.call(node.payments.ledger.by_job, reply["job"])
        assert (p.backend, p.state, p.tokens) == ("lnbits", "paid", 4)
    finally:
        await buyer.stop()
        await node.stop()
