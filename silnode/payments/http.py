"""Selling over HTTP the way Routstr does, for the lead to wire into /v1 (silnode/api/openai.py is not part of
this change): any OpenAI client pays a request with ecash.

A request carries a Cashu token in ``X-Cashu: <token>`` (NUT-24) or as its bearer API key
(``api_key="cashuB…"`` in the openai client). :meth:`HttpPayments.charge` redeems it at an allow-listed mint
through the same :class:`~silnode.payments.gate.PaymentGate` (so the ledger, the double-spend refusal and the
bid-free price rules are the NIP-90 ones), and returns the change as a token for the response's ``X-Cashu``
header. Without a token, when ``payments.require_payment_http`` is on, it raises :class:`PaymentRequired`
(402) whose ``details["x_cashu"]`` is a NUT-18 payment request (``creqA…``: amount, unit, accepted mints) for
the 402's ``X-Cashu`` header. Wiring, in ``_complete`` after the generation request is built::

    paid = await node.payments.http.charge(request.headers, model.name, generation.max_tokens)
    ...                                  # run it; on failure: change = await node.payments.http.refund(paid)
    response.headers.update(paid.headers())           # X-Cashu: the change, when there is any

and ``error_middleware`` copies ``exc.details["x_cashu"]`` of a PaymentRequired into the 402's ``X-Cashu``.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cbor2

from silnode.errors import PaymentRequired
from silnode.payments.cashu.token import Token, decode
from silnode.payments.ecash import normalize_mint_url
from silnode.payments.gate import JobTerms, PaymentGate
from silnode.payments.pricing import whole_sats

TOKEN_PREFIXES = ("cashuA", "cashuB")


def token_from_headers(headers: Mapping[str, str]) -> str | None:
    """The ecash a request pays with: ``X-Cashu``, else a bearer key that is a cashu token (never the API token)."""
    given = headers.get("X-Cashu", "").strip()
    if given:
        return given
    scheme, _, key = headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() == "bearer" and key.startswith(TOKEN_PREFIXES):
        return key
    return None


def payment_request(amount_sats: int, mints: tuple[str, ...], description: str | None = None) -> str:
    """A NUT-18 payment request, ``creqA`` + base64url(CBOR): what a NUT-24 wallet pays from a 402."""
    body: dict[str, object] = {"i": secrets.token_hex(4), "a": amount_sats, "u": "sat", "s": True, "m": list(mints)}
    if description:
        body["d"] = description
    return "creqA" + base64.urlsafe_b64encode(cbor2.dumps(body)).decode().rstrip("=")


@dataclass
class HttpCharge:
    status: str  # free | paid
    request_id: str
    amount_msats: int = 0
    change: str | None = field(default=None, repr=False)

    def headers(self) -> dict[str, str]:
        return {"X-Cashu": self.change} if self.change else {}


class HttpPayments:
    def __init__(self, gate: PaymentGate, *, required: bool) -> None:
        self.gate = gate
        self.required = required

    async def verify(self, request: Any) -> str | None:
        """The auth table's ecash credential (api/security.py): a /v1 request whose X-Cashu holds a well-formed
        token from an allowed mint may run with inference scope; the token is spent only by :meth:`charge`,
        once the price (model, max_tokens) is known, so a refused request never costs the customer."""
        token = token_from_headers(request.headers)
        if token is None:
            return None
        try:
            parsed = decode(token)
        except Exception as exc:  # noqa: BLE001 - any undecodable token is the customer's mistake
            raise PaymentRequired(f"X-Cashu is not a cashu token: {exc}") from None
        if normalize_mint_url(parsed.mint) not in self.gate.ecash.allowed:
            raise PaymentRequired(
                f"this node takes ecash from {', '.join(self.gate.ecash.allowed) or 'no mint'}, not {parsed.mint}"
            )
        return "cashu:" + secrets.token_hex(8)

    def price_msats(self, max_tokens: int) -> int:
        return self.gate.pricing.quote(max_tokens)

    def prices(self) -> dict[str, object]:
        """For /v1/models: what a request costs and where to get the ecash."""
        return {**self.gate.pricing.to_json(), "mints": list(self.gate.ecash.allowed), "required": self.required}

    async def charge(self, headers: Mapping[str, str], model: str, max_tokens: int) -> HttpCharge:
        rid = "http-" + secrets.token_hex(16)
        token = token_from_headers(headers)
        price = self.price_msats(max_tokens)
        if token is None or self.gate.pricing.free:
            if self.required and not self.gate.pricing.free:
                raise PaymentRequired(
                    f"this request costs {price} msats: send a cashu token of at least {whole_sats(price)} sat "
                    f"in X-Cashu (or as the API key) from one of: {', '.join(self.gate.ecash.allowed)}",
                    price_msats=price,
                    mints=list(self.gate.ecash.allowed),
                    x_cashu=payment_request(whole_sats(price), self.gate.ecash.allowed, f"silnode {model}"),
                )
            await self.gate.ledger.call(
                self.gate.ledger.create, job_id=rid, kind="free", backend="http", amount_msats=0, state="free",
                model=model, max_tokens=max_tokens,
            )  # fmt: skip
            return HttpCharge("free", rid)
        charge = await self.gate.charge(JobTerms(rid, max_tokens, cashu=token, model=model), require=True)
        return HttpCharge("paid", rid, charge.amount_msats, charge.change)

    async def refund(self, paid: HttpCharge) -> str | None:
        """The request failed after it was paid: its payment back as a token (plus the change it had)."""
        if paid.status != "paid":
            return paid.change
        refund = decode(await self.gate.refund(paid.request_id))
        if paid.change:  # one token back: the refund and the change the customer has not received yet
            refund = Token(refund.mint, refund.proofs + decode(paid.change).proofs)
        return refund.encode()

    async def finish(self, paid: HttpCharge, tokens: int) -> None:
        await self.gate.finish(paid.request_id, tokens=tokens)
