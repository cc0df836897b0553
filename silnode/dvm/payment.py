"""The one seam where a price and a payment join the job flow (payments live in silnode/payments/).

The job service asks the gate for a price after a job is checked and before any work starts:

    amount = await gate.quote(job)          # msats, or None: free
    await gate.settle(job, amount, notify)  # returns once paid; raises JobRejected to refuse the job

``notify(status, extra, amount_msats, bolt11)`` publishes a kind-7000 feedback (``payment-required`` with the
invoice). A job whose ``bid`` is below the quote is refused before ``settle``. The default gate is free.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from silnode.dvm.jobs import Job

Notify = Callable[[str, str, "int | None", "str | None"], Awaitable[None]]


class PaymentGate(Protocol):
    async def quote(self, job: Job) -> int | None: ...

    async def settle(self, job: Job, amount: int, notify: Notify) -> None: ...


class FreeGate:
    """Every job is free: no quote, nothing to settle."""

    async def quote(self, job: Job) -> int | None:
        return None

    async def settle(self, job: Job, amount: int, notify: Notify) -> None:  # pragma: no cover - never priced
        return None
