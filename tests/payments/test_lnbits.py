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
