"""Ecash for HTTP requests (NUT-24 style: X-Cashu or a cashu API key) against a real nutshell mint: the logic
the /v1 routes call (silnode/payments/http.py)."""

from __future__ import annotations

import base64
import os

import cbor2
import pytest

from silnode.errors import PaymentRequired, TokenSpent
from silnode.payments.backends import CashuMintBackend
from silnode.payments.ecash import Ecash
from silnode.payments.gate import PaymentGate
from silnode.payments.http import HttpPayments, token_from_headers
from silnode.payments.ledger import Ledger, ProofBox, proof_key
from silnode.payments.pricing import Pricing


@pytest.fixture
async def http(tmp_path, mint):
    gate = PaymentGate(
        Ledger(tmp_path / "p.db", ProofBox(proof_key(os.urandom(32)))).open(),
        Pricing(2000, 10_000),
        CashuMintBackend(mint.url),
        Ecash((mint.url,)),
        require_payment=False,  # NIP-90 jobs free; HTTP has its own switch
    )
    yield HttpPayments(gate, required=True)
    await gate.close()
    gate.ledger.close()


def test_token_from_headers() -> None:
    assert token_from_headers({"X-Cashu": " cashuBxyz "}) == "cashuBxyz"
    assert token_from_headers({"Authorization": "Bearer cashuAabc"}) == "cashuAabc"
    assert token_from_headers({"Authorization": "Bearer sk-not-ecash"}) is None
    assert token_from_headers({}) is None


async def test_unpaid_request_gets_402_with_a_nut18_payment_request(http, mint) -> None:
    with pytest.raises(PaymentRequired) as err:
        await http.charge({}, "org/m", 100)
    exc = err.value
    assert exc.status == 402 and exc.details["price_msats"] == 3000 and "3 sat" in exc.message
    creq = exc.details["x_cashu"]
    assert creq.startswith("creqA")
    req = cbor2.loads(base64.urlsafe_b64decode(creq[5:] + "=" * (-len(creq[5:]) % 4)))
    assert (req["a"], req["u"], req["m"]) == (3, "sat", [mint.url])
    assert http.prices() == {"unit": "msats", "per_job": 2000, "per_1k_tokens": 10_000, "mints": [mint.url],
                             "required": True}  # fmt: skip


async def test_paid_request_returns_change_and_a_reused_key_is_refused(http, customer) -> None:
    token = await customer.token(10)
    paid = await http.charge({"Authorization": f"Bearer {token}"}, "org/m", 100)
    assert (paid.status, paid.amount_msats) == ("paid", 3000)
    assert await customer.receive(paid.headers()["X-Cashu"]) == 7
    with pytest.raises(TokenSpent):
        await http.charge({"X-Cashu": token}, "org/m", 100)
    [p] = await http.gate.ledger.call(http.gate.ledger.by_job, paid.request_id)
    assert (p.state, p.kind, p.model) == ("paid", "cashu", "org/m")
    await http.finish(paid, 12)
    assert (await http.gate.ledger.call(http.gate.ledger.get, p.id)).tokens == 12


async def test_failed_request_gets_its_money_back(http, customer) -> None:
    before = customer.balance
    paid = await http.charge({"X-Cashu": await customer.token(10)}, "org/m", 100)
    back = await http.refund(paid)  # the refund and the unsent change, as one token
    assert await customer.receive(back) == 10 and customer.balance == before


async def test_free_when_http_payment_is_off(http) -> None:
    http.required = False
    assert (await http.charge({}, "org/m", 100)).status == "free"


async def test_without_an_unlocked_identity_ecash_is_refused_before_it_is_spent(tmp_path, mint, customer) -> None:
    """The node stores ecash encrypted with the identity's key: with none, a prepayment or a balance deposit is
    refused (503) BEFORE the swap, so the customer's token stays good."""
    from silnode.errors import PaymentsUnavailable

    gate = PaymentGate(Ledger(tmp_path / "p.db").open(), Pricing(2000, 0), None, Ecash((mint.url,)))
    http = HttpPayments(gate, required=True)
    try:
        token = await customer.token(3)
        with pytest.raises(PaymentsUnavailable):
            await http.charge({"X-Cashu": token}, "org/m", 0)
        with pytest.raises(PaymentsUnavailable):
            await http.deposit({"X-Cashu": token})
        assert await customer.receive(token) == 3  # never swapped: still the customer's
    finally:
        await gate.close()
        gate.ledger.close()
