"""The seam between selling (the NIP-90 DVM, later /v1) and getting paid.

A DVM hands each job to the gate before it runs it::

    gate = node.payments.gate                      # PaymentGate, or None when payments are off
    price = await gate.quote(job)                  # msats, or None: the job runs free
    charge = await gate.charge(job)                # BidTooLow / InvalidCashuToken / MintNotAllowed /
                                                   # TokenSpent / InsufficientPayment -> an `error` feedback
    if charge.status == "invoice":                 # send kind 7000 payment-required with charge.amount_tag()
        await charge.wait()                        # returns once paid; InvoiceExpired after the expiry
    ...run the job...                              # charge.status is now "paid" (or "free")
    await gate.finish(job.id, tokens=n, model=m)   # what the job really produced, for the ledger
    # the 6050 result carries ["amount", str(charge.amount_msats)]; charge.change (a cashu token for what a
    # prepayment held beyond the price) goes back to the customer, e.g. in an encrypted 7000 feedback

or in one call: ``charge = await gate.settle(job, on_invoice=send_payment_required)``.

``job`` is any object with ``id`` (the request event id), ``max_tokens`` and optionally ``bid`` (msats, NIP-90's
``bid`` tag), ``cashu`` (the ``["cashu", token]`` tag's token) and ``model``; :class:`JobTerms` is one.

Guarantees: a job is charged at most once (a second ``charge`` for the same job id returns the payment already
made, or the same open invoice); never more than its bid (a bid below the price is refused, naming the price);
nothing runs unpaid when ``require_payment`` is on; every invoice and token lands in the ledger with its state
changes; ecash received is kept encrypted in the ledger in the transaction that marks the job paid. After a
restart, :meth:`PaymentGate.recover` finds invoices paid while the node was down; the payments service runs it at
start as ``node.payments.recovery`` (a task): the DVM awaits it and resumes the jobs of the payments it returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from silnode.errors import BadRequest, InvoiceExpired, NotFound, PaymentError, SilnodeError
from silnode.payments.backends import Invoice, InvoiceBackend
from silnode.payments.ecash import Ecash
from silnode.payments.ledger import Ledger, Payment
from silnode.payments.pricing import Pricing, check_bid

log = logging.getLogger(__name__)

CLAIM_TRIES = 3  # a paid invoice whose ecash cannot be minted after this many tries is recorded paid, unclaimed


@dataclass(frozen=True)
class JobTerms:
    id: str
    max_tokens: int
    bid: int | None = None  # msats
    cashu: str | None = field(default=None, repr=False)  # bearer money: never in a repr
    model: str | None = None


def terms(job: Any) -> JobTerms:
    if isinstance(job, JobTerms):
        return job
    jid = getattr(job, "id", None) or getattr(job, "job_id", None)
    if not isinstance(jid, str) or not jid:
        raise BadRequest("a job needs an id")
    return JobTerms(
        jid,
        int(getattr(job, "max_tokens", 0) or 0),
        getattr(job, "bid", None) if getattr(job, "bid", None) is not None else getattr(job, "bid_msats", None),
        getattr(job, "cashu", None),
        getattr(job, "model", None),
    )


@dataclass
class Charge:
    status: Literal["free", "paid", "invoice"]
    job_id: str
    amount_msats: int = 0
    bolt11: str | None = None
    payment_id: str | None = None
    expires_at: float | None = None
    change: str | None = field(default=None, repr=False)  # a cashu token owed back to the customer
    _waiter: asyncio.Future[Payment] | None = field(default=None, repr=False)

    def amount_tag(self) -> list[str]:
        """NIP-90's ``["amount", msats, bolt11]`` (the bolt11 only for an open invoice)."""
        return ["amount", str(self.amount_msats), *([self.bolt11] if self.bolt11 else [])]

    async def wait(self) -> None:
        """Return once paid (at once for free/paid); InvoiceExpired when the invoice expires unpaid."""
        if self._waiter is None:
            return
        await asyncio.shield(self._waiter)
        self.status = "paid"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "job_id": self.job_id,
            "amount_msats": self.amount_msats,
            "bolt11": self.bolt11,
            "payment_id": self.payment_id,
            "expires_at": self.expires_at,
            "change": bool(self.change),
        }


class PaymentGate:
    def __init__(
        self,
        ledger: Ledger,
        pricing: Pricing,
        backend: InvoiceBackend | None,
        ecash: Ecash,
        *,
        require_payment: bool = True,
        invoice_expiry_s: int = 600,
        poll_interval_s: float = 0.5,
    ) -> None:
        self.ledger = ledger
        self.pricing = pricing
        self.backend = backend
        self.ecash = ecash
        self.require_payment = require_payment
        self.invoice_expiry_s = invoice_expiry_s
        self.poll_interval_s = poll_interval_s
        self._watchers: dict[str, asyncio.Task[Payment]] = {}
        # one charge decision per job at a time (no job is invoiced twice; other jobs do not wait), and one
        # spender of the ecash the node holds (two refunds must not swap the same proofs)
        self._job_locks: dict[str, tuple[asyncio.Lock, int]] = {}  # lock, how many use it
        self._wallet_lock = asyncio.Lock()

    # ---- the seam
    async def quote(self, job: Any, *, require: bool | None = None) -> int | None:
        """The job's price in msats; None when it runs free. ``require`` overrides ``require_payment`` (the
        HTTP side has its own switch)."""
        if not (self.require_payment if require is None else require) or self.pricing.free:
            return None
        return self.pricing.quote(terms(job).max_tokens)

    async def charge(self, job: Any, *, require: bool | None = None) -> Charge:
        t = terms(job)
        price = await self.quote(t, require=require)
        lock, users = self._job_locks.get(t.id, (asyncio.Lock(), 0))
        self._job_locks[t.id] = (lock, users + 1)
        try:
            async with lock:
                return await self._charge(t, price)
        finally:
            lock, users = self._job_locks[t.id]
            if users == 1:  # the last one deciding for this job: forget its lock
                del self._job_locks[t.id]
            else:
                self._job_locks[t.id] = (lock, users - 1)

    async def _charge(self, t: JobTerms, price: int | None) -> Charge:
        if price is None:
            p = await self.ledger.call(
                self.ledger.create,
                job_id=t.id,
                kind="free",
                backend="none",
                amount_msats=0,
                state="free",
                model=t.model,
                max_tokens=t.max_tokens,
            )
            return Charge("free", t.id, 0, payment_id=p.id)
        check_bid(price, t.bid)
        for p in await self.ledger.call(self.ledger.by_job, t.id):
            if p.state == "paid":
                return Charge("paid", t.id, p.amount_msats, payment_id=p.id)
            if p.state == "unpaid" and p.kind == "invoice" and (p.expires_at or 0) > time.time():
                return Charge("invoice", t.id, p.amount_msats, p.bolt11, p.id, p.expires_at,
                              _waiter=self._watch(p))  # fmt: skip
        if t.cashu:
            return await self._take_cashu(t, price)
        return await self._invoice(t, price)

    async def settle(self, job: Any, on_invoice: Any = None) -> Charge:
        """:meth:`charge`, then (for an invoice) ``await on_invoice(charge)`` and wait until it is paid."""
        charge = await self.charge(job)
        if charge.status == "invoice":
            if on_invoice is not None:
                await on_invoice(charge)
            await charge.wait()
        return charge

    async def finish(self, job_id: str, *, tokens: int | None, model: str | None = None) -> None:
        await self.ledger.call(self.ledger.set_work, job_id, tokens=tokens, model=model)

    # ---- cashu prepayment
    async def _take_cashu(self, t: JobTerms, price: int) -> Charge:
        self.ledger.require_ecash()  # refuse before the swap: swapped ecash the node cannot keep would be lost
        try:
            redeemed = await self.ecash.redeem(t.cashu or "", price)
        except SilnodeError as exc:
            note = f"{exc.code}: {exc.message}"[:300]
            mint = None
            try:
                from silnode.payments.cashu.token import decode

                mint = decode(t.cashu or "").mint
            except SilnodeError:
                pass
            await self.ledger.call(
                self.ledger.create,
                job_id=t.id,
                kind="cashu",
                backend="cashu",
                amount_msats=price,
                state="failed",
                model=t.model,
                max_tokens=t.max_tokens,
                mint=mint,
                note=note,
            )
            raise
        p = await self.ledger.call(
            self.ledger.create,
            job_id=t.id,
            kind="cashu",
            backend="cashu",
            amount_msats=redeemed.kept_msats,
            state="paid",
            model=t.model,
            max_tokens=t.max_tokens,
            mint=redeemed.mint,
            proofs=redeemed.kept,
            note="token swapped",
        )
        return Charge("paid", t.id, p.amount_msats, payment_id=p.id, change=redeemed.change)

    # ---- invoices
    async def _invoice(self, t: JobTerms, price: int) -> Charge:
        if self.backend is None:
            raise PaymentError("no invoice backend is configured (payments.backend)")
        inv = await self.backend.create_invoice(price, f"silnode job {t.id[:16]}", self.invoice_expiry_s)
        p = await self.ledger.call(
            self.ledger.create,
            job_id=t.id,
            kind="invoice",
            backend=self.backend.name if self.backend else "",
            amount_msats=inv.amount_msats,
            model=t.model,
            max_tokens=t.max_tokens,
            invoice_id=inv.id,
            bolt11=inv.bolt11,
            expires_at=inv.expires_at,
            mint=getattr(getattr(self.backend, "mint", None), "url", None),
        )
        return Charge("invoice", t.id, p.amount_msats, p.bolt11, p.id, p.expires_at, _waiter=self._watch(p))

    def _watch(self, p: Payment) -> asyncio.Task[Payment]:
        task = self._watchers.get(p.id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._poll(p), name=f"invoice-{p.id[:8]}")
            self._watchers[p.id] = task
            task.add_done_callback(lambda tk, pid=p.id: self._watchers.pop(pid, None))
            task.add_done_callback(_consume)  # a nobody-awaited expiry must not warn "never retrieved"
        return task

    async def _poll(self, p: Payment) -> Payment:
        assert self.backend is not None and p.invoice_id and p.bolt11
        inv = Invoice(p.invoice_id, p.bolt11, p.amount_msats, p.expires_at or time.time())
        paid, claim_failures = False, 0
        while True:
            try:
                paid = paid or await self.backend.is_paid(inv)
                if paid:
                    try:
                        proofs = await self.backend.claim(inv)
                    except PaymentError as exc:
                        claim_failures += 1
                        if claim_failures < CLAIM_TRIES:
                            raise
                        # the customer paid: the job is owed its run even if the node's ecash could not be minted
                        log.error("invoice %s paid, but claiming it failed: %s", p.id[:8], exc.message)
                        return await self.ledger.call(
                            self.ledger.set_state, p.id, "paid", note=f"paid; not claimed: {exc.message}"[:300]
                        )
                    return await self.ledger.call(
                        self.ledger.set_state, p.id, "paid", proofs=proofs, note="invoice paid"
                    )
            except PaymentError as exc:  # a backend hiccup is not a verdict: ask again until the expiry
                log.warning("checking invoice %s: %s", p.id[:8], exc.message)
            if not paid and time.time() >= inv.expires_at:
                await self.ledger.call(self.ledger.set_state, p.id, "expired", note="not paid in time")
                raise InvoiceExpired(
                    f"the invoice of job {p.job_id[:16]} for {p.amount_msats} msats expired unpaid",
                    job_id=p.job_id,
                    amount_msats=p.amount_msats,
                )
            await asyncio.sleep(min(self.poll_interval_s, max(0.0, inv.expires_at - time.time()) + 0.01))

    # ---- restarts and refunds
    async def recover(self) -> list[Payment]:
        """After a restart: check every invoice left unpaid once. Returns those paid meanwhile (their jobs
        should run now); expired ones are marked expired; the rest are watched again."""
        paid: list[Payment] = []
        for p in await self.ledger.call(self.ledger.pending):
            if p.kind != "invoice" or self.backend is None or p.backend != self.backend.name:
                continue
            task = self._watch(p)
            await asyncio.sleep(0)  # let the first check run
            if p.expires_at is not None and p.expires_at <= time.time() or await self._paid_now(p):
                try:
                    paid.append(await asyncio.shield(task))
                except InvoiceExpired:
                    pass
        return paid

    async def _paid_now(self, p: Payment) -> bool:
        assert self.backend is not None and p.invoice_id and p.bolt11
        try:
            return await self.backend.is_paid(Invoice(p.invoice_id, p.bolt11, p.amount_msats, p.expires_at or 0))
        except PaymentError:
            return False

    async def refund(self, job_id: str) -> str:
        """Give a paid job's money back as a cashu token (from the ecash the node holds at that mint); the
        payment becomes ``refunded``. The token goes to the customer (an encrypted 7000 feedback, or HTTP change)."""
        async with self._wallet_lock:
            paid = [
                p for p in await self.ledger.call(self.ledger.by_job, job_id) if p.state == "paid" and p.amount_msats
            ]
            if not paid:
                raise NotFound(f"job {job_id[:16]} has no paid payment to refund")
            p = paid[-1]
            if not p.mint:
                # Lightning (LNbits, NWC): the node holds no ecash to give back; the ledger says a refund is owed
                await self.ledger.call(self.ledger.note, p.id, "refund owed: the job delivered nothing (Lightning)")
                raise PaymentError(f"the payment of job {job_id[:16]} was not ecash ({p.backend}); refund it by hand")
            held = await self.ledger.call(self.ledger.held_proofs, p.mint)
            token, rest = await self.ecash.make_token(p.mint, [pr for _, pr in held], p.amount_msats // 1000)
            await self.ledger.call(self.ledger.refund, p.id, [i for i, _ in held], rest)
            return token

    async def close(self) -> None:
        for task in list(self._watchers.values()):
            task.cancel()
        await asyncio.gather(*self._watchers.values(), return_exceptions=True)
        if self.backend is not None:
            await self.backend.close()
        await self.ecash.close()


def _consume(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
