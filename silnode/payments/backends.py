"""Invoice backends behind one small interface: make a bolt11 for an amount, then check whether it is paid.

    backend.create_invoice(msats, memo, expiry_s) -> Invoice(id, bolt11, amount_msats, expires_at)
    backend.is_paid(invoice) -> bool          one check; the gate polls it, bounded by the invoice's expiry
    backend.claim(invoice) -> list[Proof]     what the node receives once paid (ecash from a mint; [] elsewhere)

Three kinds: a Cashu mint (NUT-04: the mint quote's request *is* the bolt11; once paid the node mints the
ecash and keeps it in the ledger), LNbits REST (invoice key), and NWC (NIP-47 through nostr-sdk's
NostrWalletConnect; tested end to end against @getalby/sdk's wallet service bridged to LNbits,
tests/payments/test_nwc.py). Keys are held in memory only and appear in no repr, message or log."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from silnode.errors import PaymentError
from silnode.payments.cashu.mint import MintClient
from silnode.payments.cashu.token import Proof
from silnode.payments.pricing import whole_sats


@dataclass(frozen=True)
class Invoice:
    id: str  # mint quote id / payment hash: what the backend looks the invoice up by
    bolt11: str
    amount_msats: int
    expires_at: float


class InvoiceBackend(Protocol):
    name: str

    async def create_invoice(self, amount_msats: int, memo: str, expiry_s: int) -> Invoice: ...

    async def is_paid(self, invoice: Invoice) -> bool: ...

    async def claim(self, invoice: Invoice) -> list[Proof]: ...

    async def close(self) -> None: ...


class CashuMintBackend:
    """A NUT-04 mint quote is the invoice; PAID is polled; paid ecash is minted to the node."""

    name = "cashu"

    def __init__(self, mint_url: str) -> None:
        self.mint = MintClient(mint_url)

    def __repr__(self) -> str:
        return f"CashuMintBackend({self.mint.url!r})"

    async def create_invoice(self, amount_msats: int, memo: str, expiry_s: int) -> Invoice:
        sats = whole_sats(amount_msats)
        q = await self.mint.mint_quote(sats)
        mint_expiry = q.get("expiry")
        expires = time.time() + expiry_s
        if isinstance(mint_expiry, (int, float)) and mint_expiry > 0:
            expires = min(expires, float(mint_expiry))  # never promise longer than the mint keeps the quote
        return Invoice(str(q["quote"]), str(q["request"]), sats * 1000, expires)

    async def is_paid(self, invoice: Invoice) -> bool:
        state = (await self.mint.mint_quote_state(invoice.id)).get("state")
        return state in ("PAID", "ISSUED")

    async def claim(self, invoice: Invoice) -> list[Proof]:
        return await self.mint.mint(invoice.id, invoice.amount_msats // 1000)

    async def close(self) -> None:
        await self.mint.close()


class LNbitsBackend:
    """LNbits REST with a wallet's *invoice* key (it can create and read invoices, never spend)."""

    name = "lnbits"

    def __init__(self, url: str, invoice_key: str, *, timeout: float = 20.0) -> None:
        self.url = url.rstrip("/")
        self._key = invoice_key
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"LNbitsBackend({self.url!r}, key=<hidden>)"

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers={"X-Api-Key": self._key})
        try:
            async with self._session.request(method, self.url + path, json=body) as resp:
                data = await resp.json(content_type=None) if resp.content_length != 0 else None
                if resp.status >= 400:
                    detail = data.get("detail") if isinstance(data, dict) else None
                    raise PaymentError(
                        f"LNbits refused {method} {path.split('/')[3] if path.count('/') > 2 else path}: "
                        f"{str(detail or resp.status)[:200]}",
                        status_code=resp.status,
                    )
                return data
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise PaymentError(
                f"LNbits at {self.url} is unreachable or answered garbage: {exc.__class__.__name__}"
            ) from exc

    async def create_invoice(self, amount_msats: int, memo: str, expiry_s: int) -> Invoice:
        sats = whole_sats(amount_msats)
        data = await self._call(
            "POST", "/api/v1/payments", {"out": False, "amount": sats, "memo": memo, "expiry": expiry_s}
        )
        bolt11 = data.get("bolt11") or data.get("payment_request")
        if not bolt11 or not data.get("payment_hash"):
            raise PaymentError("LNbits returned no invoice")
        return Invoice(str(data["payment_hash"]), str(bolt11), sats * 1000, time.time() + expiry_s)

    async def is_paid(self, invoice: Invoice) -> bool:
        try:
            data = await self._call("GET", f"/api/v1/payments/{invoice.id}")
        except PaymentError as exc:
            if exc.details.get("status_code") == 429:  # LNbits' rate limit: not an answer, ask again later
                return False
            raise
        return bool(data.get("paid"))

    async def claim(self, invoice: Invoice) -> list[Proof]:
        return []  # the sats are in the LNbits wallet already

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class NWCBackend:
    """NIP-47 ``make_invoice`` / ``lookup_invoice`` through nostr-sdk. No turnkey NWC wallet service installs
    here; the tests run @getalby/sdk's NWCWalletService bridged to LNbits (tests/payments/nwc_bridge.mjs)."""

    name = "nwc"

    def __init__(self, uri: str) -> None:
        import nostr_sdk

        try:
            parsed = nostr_sdk.NostrWalletConnectUri.parse(uri)
        except Exception as exc:  # nostr-sdk raises its own error types
            raise PaymentError("payments NWC secret is not a nostr+walletconnect:// URI") from exc
        self._nwc = nostr_sdk.NostrWalletConnect(parsed)

    def __repr__(self) -> str:
        return "NWCBackend(<uri hidden>)"

    async def create_invoice(self, amount_msats: int, memo: str, expiry_s: int) -> Invoice:
        import nostr_sdk

        msats = whole_sats(amount_msats) * 1000
        try:
            resp = await self._nwc.make_invoice(
                nostr_sdk.MakeInvoiceRequest(amount=msats, description=memo, description_hash=None, expiry=expiry_s)
            )
        except Exception as exc:
            raise PaymentError(f"the NWC wallet refused make_invoice: {exc.__class__.__name__}") from exc
        if not resp.payment_hash:
            raise PaymentError("the NWC wallet returned no payment hash")
        return Invoice(resp.payment_hash, resp.invoice, msats, time.time() + expiry_s)

    async def is_paid(self, invoice: Invoice) -> bool:
        import nostr_sdk

        try:
            resp = await self._nwc.lookup_invoice(nostr_sdk.LookupInvoiceRequest(payment_hash=invoice.id, invoice=None))
        except Exception as exc:
            raise PaymentError(f"the NWC wallet refused lookup_invoice: {exc.__class__.__name__}") from exc
        return resp.settled_at is not None

    async def claim(self, invoice: Invoice) -> list[Proof]:
        return []

    async def close(self) -> None:
        pass
