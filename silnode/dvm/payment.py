"""The one seam where a price and a payment join the job flow (payments live in silnode/payments/).

The job service asks the gate for a price after a job is checked and before any work starts:

    amount = await gate.quote(job)          # msats, or None: free
    await gate.settle(job, amount, notify)  # returns once paid; raises JobRejected to refuse the job

``notify(status, extra, amount_msats, bolt11)`` publishes a kind-7000 feedback (``payment-required`` with the
invoice). A job whose ``bid`` is below the quote is refused before ``settle``. The default gate is free.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from silnode.dvm.jobs import Job
from silnode.errors import JobRejected, SilnodeError

Notify = Callable[[str, str, "int | None", "str | None"], Awaitable[None]]


class PaymentGate(Protocol):
    async def quote(self, job: Job) -> int | None: ...

    async def settle(self, job: Job, amount: int, notify: Notify) -> None: ...

    async def finish(self, job: Job, *, tokens: int, model: str) -> None: ...


class FreeGate:
    """Every job is free: no quote, nothing to settle."""

    async def quote(self, job: Job) -> int | None:
        return None

    async def settle(self, job: Job, amount: int, notify: Notify) -> None:  # pragma: no cover - never priced
        return None

    async def finish(self, job: Job, *, tokens: int, model: str) -> None:
        return None


class LedgerGate:
    """The payments service (silnode/payments: pricing, invoices, ecash, the earnings ledger) behind this seam.

    quote: the price of the job's max_tokens, or None when payments are off. settle: a ``["cashu", token]``
    prepayment is redeemed at once; otherwise an invoice goes out as a ``payment-required`` feedback with
    ``["amount", msats, bolt11]`` and the job waits, bounded by payments.invoice_expiry, for it to be paid.
    Every refusal (a bid under the price, a foreign mint, a spent token, an invoice that expired) becomes a
    JobRejected, so the customer reads the reason in an ``error`` feedback. finish: tokens and model go into
    the ledger."""

    def __init__(self, payments: Any) -> None:
        self.payments = payments

    async def quote(self, job: Job) -> int | None:
        gate = self.payments.gate
        return None if gate is None else await gate.quote(job)

    async def settle(self, job: Job, amount: int, notify: Notify) -> None:
        gate = self.payments.gate

        async def on_invoice(charge: Any) -> None:
            sats = -(-charge.amount_msats // 1000)
            await notify("payment-required", f"pay {sats} sats to run this job", charge.amount_msats, charge.bolt11)

        try:
            await gate.settle(job, on_invoice)
        except SilnodeError as exc:
            raise JobRejected(exc.message) from exc

    async def finish(self, job: Job, *, tokens: int, model: str) -> None:
        if self.payments.gate is not None:
            await self.payments.gate.finish(job.id, tokens=tokens, model=model)
