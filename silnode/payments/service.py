"""The node's payments service: opens the earnings ledger, builds the invoice backend from config and the
keystore's secrets, and exposes the :class:`~silnode.payments.gate.PaymentGate` the DVM (and /v1) call."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from silnode.config import Config
from silnode.errors import ConfigError, PaymentsUnavailable, SecretNotFound
from silnode.payments.backends import CashuMintBackend, InvoiceBackend, LNbitsBackend, NWCBackend
from silnode.payments.ecash import Ecash
from silnode.payments.gate import PaymentGate
from silnode.payments.http import HttpPayments
from silnode.payments.ledger import Ledger, ProofBox, parse_since, proof_key
from silnode.payments.pricing import Pricing

log = logging.getLogger(__name__)

LNBITS_SECRET = "lnbits_invoice_key"
NWC_SECRET = "nwc_uri"


def ledger_path(config: Config) -> Any:
    return config.state_dir / "payments.db"


def make_backend(config: Config, identity: Any) -> InvoiceBackend:
    pc = config.payments
    if pc.backend == "cashu":
        url = pc.mint_url or (pc.mints[0] if pc.mints else "")
        if not url:
            raise ConfigError("payments.backend cashu needs payments.mint_url or payments.mints")
        return CashuMintBackend(url)
    secret = LNBITS_SECRET if pc.backend == "lnbits" else NWC_SECRET
    if identity is None:
        raise PaymentsUnavailable(
            f"payments.backend {pc.backend} reads its key from the keystore, and the identity is locked",
            hint="start the daemon with SILNODE_PASSWORD set",
        )
    try:
        value = identity.get_secret(secret)
    except SecretNotFound:
        raise PaymentsUnavailable(
            f"payments.backend {pc.backend} needs the keystore secret {secret!r}",
            hint=f"`silnode secrets set {secret}` stores it encrypted",
        ) from None
    if pc.backend == "lnbits":
        return LNbitsBackend(pc.lnbits_url, value)
    return NWCBackend(value)


class PaymentsService:
    name = "payments"

    def __init__(self, config: Config, identity: Any = None) -> None:
        self.config = config
        self.identity = identity
        self.ledger: Ledger | None = None
        self.gate: PaymentGate | None = None
        self.http: HttpPayments | None = None  # /v1 paid with ecash (silnode/payments/http.py says how to wire it)
        # invoices left open by the last run, checked again at start; the DVM awaits it and resumes the jobs of
        # the payments it returns (paid while the node was down)
        self.recovery: asyncio.Task[list[Any]] | None = None

    async def start(self) -> None:
        pc = self.config.payments
        # the backend first: a missing key fails the start before anything is opened
        backend = make_backend(self.config, self.identity) if pc.require_payment else None
        box = ProofBox(proof_key(self.identity.nostr.secret_bytes())) if self.identity is not None else None
        self.ledger = await asyncio.to_thread(Ledger(ledger_path(self.config), box).open)
        mints = pc.mints or ((pc.mint_url,) if pc.mint_url else ())
        self.gate = PaymentGate(
            self.ledger,
            Pricing(pc.price_msats_per_job, pc.price_msats_per_1k_tokens),
            backend,
            Ecash(mints),
            require_payment=pc.require_payment,
            invoice_expiry_s=pc.invoice_expiry,
            poll_interval_s=pc.poll_interval,
        )
        self.http = HttpPayments(self.gate, required=pc.require_payment_http)
        if pc.require_payment:
            log.info("payments: %s backend, %d mint(s) accepted for ecash", pc.backend, len(mints))
            # in the background: a slow backend must not hold up the node's start
            self.recovery = asyncio.get_running_loop().create_task(self.gate.recover(), name="payments-recover")

    async def stop(self) -> None:
        if self.recovery is not None:
            self.recovery.cancel()
            await asyncio.gather(self.recovery, return_exceptions=True)
            self.recovery = None
        self.http = None
        if self.gate is not None:
            await self.gate.close()
            self.gate = None
        if self.ledger is not None:
            await asyncio.to_thread(self.ledger.close)
            self.ledger = None

    async def earnings(self, since: str | None = None) -> dict[str, Any]:
        if self.ledger is None:
            raise PaymentsUnavailable("the payments service is not running")
        return await self.ledger.call(self.ledger.summary, parse_since(since))

    def summary(self) -> dict[str, Any]:
        pc = self.config.payments
        return {
            "require_payment": pc.require_payment,
            "backend": pc.backend if pc.require_payment else None,
            "pricing": Pricing(pc.price_msats_per_job, pc.price_msats_per_1k_tokens).to_json(),
        }


def read_earnings(config: Config, since: str | None = None) -> dict[str, Any]:
    """The ledger's summary without a daemon (the CLI when none runs). Amounts only: no proofs are opened."""
    path = ledger_path(config)
    if not path.exists():
        return Ledger.empty_summary(parse_since(since))
    ledger = Ledger(path).open()
    try:
        return ledger.run(ledger.summary, parse_since(since))
    finally:
        ledger.close()
