"""The one seam where a price and a payment join the job flow (payments live in silnode/payments/).

The job service asks the gate for a price after a job is checked and before any work starts:

    amount = await gate.quote(job)          # msats, or None: free
    await gate.settle(job, amount, notify)  # returns once paid; raises JobRejected to refuse the job
    change = gate.take_change(job)          # a cashu token for what a prepayment held beyond the price
    ...run it...
    token = await gate.refund(job)          # it failed / was cancelled / expired after payment: money back

``notify(status, extra, amount_msats, bolt11)`` publishes a kind-7000 feedback (``payment-required`` with the
invoice). A job whose ``bid`` is below the quote is refused before ``settle``. The default gate is free.
Change and refunds are bearer money: the service sends them only in an *encrypted* kind-7000 feedback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from silnode.dvm.jobs import Job
from silnode.errors import JobRejected, NotFound, SilnodeError

log = logging.getLogger(__name__)

Notify = Callable[[str, str, "int | None", "str | None"], Awaitable[None]]


class PaymentGate(Protocol):
    async def quote(self, job: Job) -> int | None: ...

    async def settle(self, job: Job, amount: int, notify: Notify) -> None: ...

    async def finish(self, job: Job, *, tokens: int, model: str) -> None: ...

    def take_change(self, job: Job) -> str | None: ...

    async def refund(self, job: Job | None, reason: str = "") -> str | None: ...

    def pricing(self) -> dict[str, Any] | None: ...


class FreeGate:
    """Every job is free: no quote, nothing to settle."""

    async def quote(self, job: Job) -> int | None:
        return None

    async def settle(self, job: Job, amount: int, notify: Notify) -> None:  # pragma: no cover - never priced
        return None

    async def finish(self, job: Job, *, tokens: int, model: str) -> None:
        return None

    def take_change(self, job: Job) -> str | None:
        return None

    async def refund(self, job: Job | None, reason: str = "") -> str | None:
        return None

    def pricing(self) -> dict[str, Any] | None:
        return None


class LedgerGate:
    """The payments service (silnode/payments: pricing, invoices, ecash, the earnings ledger) behind this seam.

    quote: the price of the job's max_tokens, or None when payments are off. settle: a ``["cashu", token]``
    prepayment is redeemed at once (what it held beyond the price waits in :meth:`take_change`); otherwise an
    invoice goes out as a ``payment-required`` feedback with ``["amount", msats, bolt11]`` and the job waits,
    bounded by payments.invoice_expiry, for it to be paid. Every refusal (a bid under the price, a foreign mint,
    a spent token, an invoice that expired) becomes a JobRejected, so the customer reads the reason in an
    ``error`` feedback. finish: tokens and model go into the ledger. refund: a paid job that did not deliver
    gets its money back as one cashu token (the refund plus any change not yet sent); the ledger marks it
    ``refunded``."""

    def __init__(self, payments: Any) -> None:
        self.payments = payments
        self._change: dict[str, str] = {}  # job id -> a change token not yet sent to its customer

    async def quote(self, job: Job) -> int | None:
        gate = self.payments.gate
        return None if gate is None else await gate.quote(job)

    async def settle(self, job: Job, amount: int, notify: Notify) -> None:
        gate = self.payments.gate

        async def on_invoice(charge: Any) -> None:
            sats = -(-charge.amount_msats // 1000)
            await notify("payment-required", f"pay {sats} sats to run this job", charge.amount_msats, charge.bolt11)

        try:
            charge = await gate.settle(job, on_invoice)
        except SilnodeError as exc:
            raise JobRejected(exc.message) from exc
        if charge.change:
            self._change[job.id] = charge.change

    def take_change(self, job: Job) -> str | None:
        """The change of the job's prepayment, once (the service sends it encrypted with ``processing``)."""
        return self._change.pop(job.id, None)

    async def refund(self, job: Job | None, reason: str = "") -> str | None:
        """Money back for a paid job that will deliver nothing: a token, or None when nothing was paid in ecash
        (free, unpaid, already refunded). A refund that cannot be made (the mint is down; a Lightning payment
        through LNbits/NWC, which holds no ecash) is logged and left ``paid`` in the ledger for the operator."""
        gate = self.payments.gate
        if job is None or gate is None:
            return None
        change = self._change.pop(job.id, None)
        try:
            token = await gate.refund(job.id)
        except NotFound:
            return change  # nothing paid: only the change (if any) goes back
        except SilnodeError as exc:
            log.warning("job %s: no refund (%s): %s", job.id[:12], reason or "failed", exc.message)
            return change
        if change:
            from silnode.payments.cashu.token import Token, decode

            t, c = decode(token), decode(change)
            if t.mint == c.mint:  # one token back: the refund and the change the customer did not get yet
                token = Token(t.mint, t.proofs + c.proofs).encode()
        return token

    async def finish(self, job: Job, *, tokens: int, model: str) -> None:
        if self.payments.gate is not None:
            await self.payments.gate.finish(job.id, tokens=tokens, model=model)

    def pricing(self) -> dict[str, Any] | None:
        """For the NIP-89 announcement: the price rule and the mints a ``["cashu", token]`` may come from."""
        gate = self.payments.gate
        if gate is None or not gate.require_payment or gate.pricing.free:
            return None
        return {**gate.pricing.to_json(), "mints": list(gate.ecash.allowed)}
