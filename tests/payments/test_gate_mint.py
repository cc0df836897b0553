"""The PaymentGate against a real nutshell mint (FakeWallet, brr=false): invoices are NUT-04 mint quotes that a
customer pays by melting ecash; prepayments are real tokens swapped at the mint."""

from __future__ import annotations

import asyncio
import logging
import os
import time

import pytest

from silnode.errors import BidTooLow, InsufficientPayment, InvoiceExpired, MintNotAllowed, TokenSpent
from silnode.payments.backends import CashuMintBackend
from silnode.payments.cashu.token import decode
from silnode.payments.ecash import Ecash
from silnode.payments.gate import JobTerms, PaymentGate
from silnode.payments.ledger import Ledger, ProofBox, proof_key
from silnode.payments.pricing import Pricing

KEY = proof_key(os.urandom(32))
PRICING = Pricing(per_job_msats=2000, per_1k_tokens_msats=10_000)  # 100 tokens -> 3 sats


def make_gate(path, mint_url: str, *, mints: tuple[str, ...] | None = None, expiry: int = 60) -> PaymentGate:
    ledger = Ledger(path, ProofBox(KEY)).open()
    return PaymentGate(
        ledger,
        PRICING,
        CashuMintBackend(mint_url),
        Ecash(mints if mints is not None else (mint_url,)),
        invoice_expiry_s=expiry,
        poll_interval_s=0.1,
    )


async def close(gate: PaymentGate) -> None:
    await gate.close()
    gate.ledger.close()


def job(jid: str = "a" * 64, **kw) -> JobTerms:
    return JobTerms(jid, kw.pop("max_tokens", 100), **kw)


async def test_unpaid_invoice_expires_and_the_job_never_runs(tmp_path, mint) -> None:
    gate = make_gate(tmp_path / "p.db", mint.url, expiry=2)
    sent: list = []
    ran = False
    try:
        with pytest.raises(InvoiceExpired, match="expired unpaid"):
            await gate.settle(job(), on_invoice=lambda c: _record(sent, c))
            ran = True
        assert not ran
        charge = sent[0]
        assert charge.status == "invoice" and charge.amount_msats == 3000
        assert charge.bolt11.startswith("lnbc") and charge.amount_tag() == ["amount", "3000", charge.bolt11]
        [p] = await gate.ledger.call(gate.ledger.by_job, "a" * 64)
        assert (p.state, p.kind, p.backend, p.bolt11) == ("expired", "invoice", "cashu", charge.bolt11)
        assert (await gate.backend.mint.mint_quote_state(p.invoice_id))["state"] == "UNPAID"
        assert await gate.ledger.call(gate.ledger.held_msats) == 0
    finally:
        await close(gate)


async def _record(sink: list, charge) -> None:
    sink.append(charge)


async def test_paid_invoice_runs_once_and_the_node_holds_the_ecash(tmp_path, mint, customer) -> None:
    gate = make_gate(tmp_path / "p.db", mint.url)
    try:
        charge = await gate.charge(job(model="org/m"))
        assert charge.status == "invoice"
        started = time.monotonic()
        await customer.pay(charge.bolt11)
        await charge.wait()
        print(f"cashu invoice paid -> gate released in {time.monotonic() - started:.3f} s")
        assert charge.status == "paid"
        [p] = await gate.ledger.call(gate.ledger.by_job, "a" * 64)
        assert (p.state, p.amount_msats, p.model) == ("paid", 3000, "org/m")
        assert await gate.ledger.call(gate.ledger.held_msats) == 3000
        assert (await gate.backend.mint.mint_quote_state(p.invoice_id))["state"] == "ISSUED"
        # the same job asked again (a relay's duplicate, a retry): paid already, no second invoice
        again = await gate.charge(job(model="org/m"))
        assert (again.status, again.payment_id, again.bolt11) == ("paid", p.id, None)
        assert len(await gate.ledger.call(gate.ledger.by_job, "a" * 64)) == 1
        await gate.finish("a" * 64, tokens=42)
        assert (await gate.ledger.call(gate.ledger.get, p.id)).tokens == 42
    finally:
        await close(gate)


async def test_open_invoice_is_reused_not_doubled(tmp_path, mint) -> None:
    gate = make_gate(tmp_path / "p.db", mint.url)
    try:
        first = await gate.charge(job("b" * 64))
        second = await gate.charge(job("b" * 64))
        assert second.status == "invoice" and (second.bolt11, second.payment_id) == (first.bolt11, first.payment_id)
    finally:
        await close(gate)


async def test_bid_below_price_is_refused_before_any_invoice(tmp_path, mint) -> None:
    gate = make_gate(tmp_path / "p.db", mint.url)
    try:
        assert await gate.quote(job()) == 3000
        with pytest.raises(BidTooLow, match="price of this job is 3000 msats") as err:
            await gate.charge(job(bid=2999))
        assert err.value.details["price_msats"] == 3000
        assert await gate.ledger.call(gate.ledger.by_job, "a" * 64) == []
        ok = await gate.charge(job(bid=5000))  # a higher bid is charged the price, not the bid
        assert ok.amount_msats == 3000
    finally:
        await close(gate)


async def test_cashu_prepayment_is_swapped_and_the_change_returned(tmp_path, mint, customer, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    gate = make_gate(tmp_path / "p.db", mint.url)
    try:
        token = await customer.token(10)
        charge = await gate.charge(job(cashu=token, model="org/m"))
        assert (charge.status, charge.amount_msats, charge.bolt11) == ("paid", 3000, None)
        assert await customer.receive(charge.change) == 7  # 10 - 3, no fee at this mint
        [p] = await gate.ledger.call(gate.ledger.by_job, "a" * 64)
        assert (p.state, p.kind, p.mint, p.amount_msats) == ("paid", "cashu", mint.url, 3000)
        assert await gate.ledger.call(gate.ledger.held_msats) == 3000
        # the customer's token is spent: the node swapped it before any work
        assert set(await customer.mint.check_state(list(decode(token).proofs))) == {"SPENT"}
        assert "cashuB" not in repr(charge) and token not in repr(job(cashu=token))
        held = [pr for _, pr in await gate.ledger.call(gate.ledger.held_proofs)]
        secrets = [token, charge.change] + [pr.secret for pr in held] + [pr.secret for pr in decode(token).proofs]
        assert len(held) == 2 and not [s for s in secrets if s in caplog.text]  # 3 sats = 1 + 2
    finally:
        await close(gate)


async def test_the_same_token_twice_is_a_double_spend(tmp_path, mint, customer) -> None:
    gate = make_gate(tmp_path / "p.db", mint.url)
    try:
        token = await customer.token(3)
        assert (await gate.charge(job("c" * 64, cashu=token))).status == "paid"
        with pytest.raises(TokenSpent):
            await gate.charge(job("d" * 64, cashu=token))
        [p] = await gate.ledger.call(gate.ledger.by_job, "d" * 64)
        assert p.state == "failed"
        assert (await gate.ledger.call(gate.ledger.events, p.id))[0][1].startswith("token_spent")
        assert await gate.ledger.call(gate.ledger.held_msats) == 3000  # paid once
    finally:
        await close(gate)


async def test_foreign_mint_and_short_tokens_are_refused_without_spending_them(tmp_path, mint, customer) -> None:
    gate = make_gate(tmp_path / "p.db", mint.url, mints=("https://mint.elsewhere.example",))
    try:
        token = await customer.token(5)
        with pytest.raises(MintNotAllowed, match="not accepted here"):
            await gate.charge(job(cashu=token))
        short = await customer.token(2)
        gate.ecash = Ecash((mint.url,))
        with pytest.raises(InsufficientPayment, match="the price is 3000 msats"):
            await gate.charge(job("e" * 64, cashu=short))
        # neither was spent: the customer still owns both
        assert await customer.receive(token) == 5 and await customer.receive(short) == 2
    finally:
        await close(gate)


async def test_payment_while_the_node_is_down_is_found_at_restart(tmp_path, mint, customer) -> None:
    gate = make_gate(tmp_path / "p.db", mint.url)
    charge = await gate.charge(job(model="org/m"))
    await close(gate)  # the node stops with the invoice open

    await customer.pay(charge.bolt11)  # ...and the customer pays meanwhile

    gate = make_gate(tmp_path / "p.db", mint.url)
    try:
        recovered = await gate.recover()
        assert [(p.job_id, p.state) for p in recovered] == [("a" * 64, "paid")]
        assert (await gate.charge(job(model="org/m"))).status == "paid"  # the DVM resumes it; not billed again
        assert await gate.ledger.call(gate.ledger.held_msats) == 3000
        assert await gate.recover() == []
    finally:
        await close(gate)


async def test_refund_is_a_real_token(tmp_path, mint, customer) -> None:
    gate = make_gate(tmp_path / "p.db", mint.url)
    try:
        before = customer.balance
        charge = await gate.charge(job(cashu=await customer.token(3)))
        assert charge.status == "paid" and customer.balance == before - 3
        refund = await gate.refund("a" * 64)
        assert await customer.receive(refund) == 3 and customer.balance == before
        [p] = await gate.ledger.call(gate.ledger.by_job, "a" * 64)
        assert p.state == "refunded"
        assert await gate.ledger.call(gate.ledger.held_msats) == 0
        s = await gate.ledger.call(gate.ledger.summary, None)
        assert s["earned_msats"] == 0 and s["totals"]["refunded"] == {"count": 1, "msats": 3000}
    finally:
        await close(gate)


async def test_free_when_payment_is_not_required(tmp_path, mint) -> None:
    gate = make_gate(tmp_path / "p.db", mint.url)
    gate.require_payment = False
    try:
        assert await gate.quote(job()) is None
        charge = await gate.settle(job(bid=1))
        assert charge.status == "free" and charge.amount_msats == 0
        [p] = await gate.ledger.call(gate.ledger.by_job, "a" * 64)
        assert p.state == "free"
    finally:
        await close(gate)


async def test_concurrent_payments_settle_each_job_once(tmp_path, mint, customer) -> None:
    gate = make_gate(tmp_path / "p.db", mint.url)
    try:
        charges = [await gate.charge(job(f"{i:064x}", max_tokens=0)) for i in range(3)]  # 2 sats each
        for c in charges:
            await customer.pay(c.bolt11)
        await asyncio.gather(*(c.wait() for c in charges))
        assert await gate.ledger.call(gate.ledger.held_msats) == 6000
    finally:
        await close(gate)


async def test_the_same_job_charged_concurrently_gets_one_invoice(tmp_path, mint) -> None:
    gate = make_gate(tmp_path / "p.db", mint.url)
    try:
        charges = await asyncio.gather(*(gate.charge(job("7" * 64)) for _ in range(4)))
        assert len({c.bolt11 for c in charges}) == 1 and all(c.status == "invoice" for c in charges)
        assert len(await gate.ledger.call(gate.ledger.by_job, "7" * 64)) == 1
        assert gate._job_locks == {}  # no lock left behind per job
    finally:
        await close(gate)


async def test_paid_invoice_whose_ecash_someone_else_minted_still_runs_the_job(tmp_path, mint, customer) -> None:
    """Quote ids are bearer at this mint: whoever learns one may mint its ecash first. The customer paid, so
    the job is owed its run; the ledger says the node's ecash was not claimed."""
    gate = make_gate(tmp_path / "p.db", mint.url)
    gate.poll_interval_s = 2.0  # the node checks at once (unpaid), then not for 2 s: the thief's window
    try:
        charge = await gate.charge(job())
        [p] = await gate.ledger.call(gate.ledger.by_job, "a" * 64)
        await customer.pay(charge.bolt11)
        thief = await customer.mint.mint(p.invoice_id, 3)
        assert sum(t.amount for t in thief) == 3
        await charge.wait()
        paid = await gate.ledger.call(gate.ledger.get, p.id)
        assert paid.state == "paid" and await gate.ledger.call(gate.ledger.held_msats) == 0
        assert (await gate.ledger.call(gate.ledger.events, p.id))[-1][1].startswith("paid; not claimed")
    finally:
        await close(gate)
