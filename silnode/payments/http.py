"""Selling over HTTP the way Routstr does (silnode/api/openai.py calls it): any OpenAI client pays a request with
ecash, or with the key of a balance the node keeps (``POST /v1/balance``; see :meth:`HttpPayments.deposit`).

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

from silnode.errors import InsufficientBalance, NotFound, PaymentRequired, Unauthorized
from silnode.home import token_digest
from silnode.payments.cashu.token import Token, decode
from silnode.payments.ecash import normalize_mint_url
from silnode.payments.gate import JobTerms, PaymentGate
from silnode.payments.pricing import whole_sats

TOKEN_PREFIXES = ("cashuA", "cashuB")
BALANCE_PREFIX = "sbal_"  # an API key whose balance the node keeps (recognisable in a paste, like sil_ tokens)


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


def balance_key_from_headers(headers: Mapping[str, str]) -> str | None:
    """A bearer API key of a balance the node keeps (``sbal_…``), if the request carries one."""
    scheme, _, key = headers.get("Authorization", "").partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key.startswith(BALANCE_PREFIX) else None


def carries_payment(headers: Mapping[str, str]) -> bool:
    return token_from_headers(headers) is not None or balance_key_from_headers(headers) is not None


def payment_request(amount_sats: int, mints: tuple[str, ...], description: str | None = None) -> str:
    """A NUT-18 payment request, ``creqA`` + base64url(CBOR): what a NUT-24 wallet pays from a 402."""
    body: dict[str, object] = {"i": secrets.token_hex(4), "a": amount_sats, "u": "sat", "s": True, "m": list(mints)}
    if description:
        body["d"] = description
    return "creqA" + base64.urlsafe_b64encode(cbor2.dumps(body)).decode().rstrip("=")


@dataclass
class HttpCharge:
    status: str  # free | paid (a token) | balance (charged to an API key's balance)
    request_id: str
    amount_msats: int = 0
    change: str | None = field(default=None, repr=False)
    payment_id: str | None = None
    key_sha256: str | None = field(default=None, repr=False)
    balance_msats: int | None = None  # what the key holds after this request

    def headers(self) -> dict[str, str]:
        out = {"X-Cashu": self.change} if self.change else {}
        if self.balance_msats is not None:
            out["X-Balance-Msats"] = str(self.balance_msats)
        return out


class HttpPayments:
    def __init__(self, gate: PaymentGate, *, required: bool) -> None:
        self.gate = gate
        self.required = required

    async def verify(self, request: Any) -> str | None:
        """The auth table's ecash credential (api/security.py): a /v1 request whose X-Cashu holds a well-formed
        token from an allowed mint may run with inference scope; the token is spent only by :meth:`charge`,
        once the price (model, max_tokens) is known, so a refused request never costs the customer. A balance
        key (``sbal_…``) the node knows is a credential too."""
        key = balance_key_from_headers(request.headers)
        if key is not None and token_from_headers(request.headers) is None:
            held = await self.gate.ledger.call(self.gate.ledger.balance, token_digest(key))
            if held is None:
                raise Unauthorized("unknown balance key", hint="POST /v1/balance with ecash in X-Cashu makes one")
            return "balance:" + held["id"]
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
        key = balance_key_from_headers(headers)
        if key is not None and token is None and not self.gate.pricing.free:
            return await self._from_balance(key, rid, price, model, max_tokens)
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
        """The request failed after it was paid: its payment back as a token (plus the change it had), or
        credited back to the key's balance."""
        if paid.status == "balance":
            assert paid.key_sha256 and paid.payment_id
            await self.gate.ledger.call(self.gate.ledger.credit_back, paid.key_sha256, paid.payment_id)
            return None
        if paid.status != "paid":
            return paid.change
        refund = decode(await self.gate.refund(paid.request_id))
        if paid.change:  # one token back: the refund and the change the customer has not received yet
            refund = Token(refund.mint, refund.proofs + decode(paid.change).proofs)
        return refund.encode()

    async def finish(self, paid: HttpCharge, tokens: int) -> None:
        await self.gate.finish(paid.request_id, tokens=tokens)

    # ---- balances: "a token funds a balance for later requests when the user asks for that"
    async def _from_balance(self, key: str, rid: str, price: int, model: str, max_tokens: int) -> HttpCharge:
        digest = token_digest(key)
        ledger = self.gate.ledger
        try:
            p = await ledger.call(ledger.spend, digest, price, job_id=rid, model=model, max_tokens=max_tokens)
        except NotFound:
            raise Unauthorized("unknown balance key", hint="POST /v1/balance with ecash in X-Cashu makes one") from None
        except InsufficientBalance as exc:
            exc.details["x_cashu"] = payment_request(whole_sats(price), self.gate.ecash.allowed, f"silnode {model}")
            raise
        left = (await ledger.call(ledger.balance, digest) or {}).get("balance_msats")
        return HttpCharge("balance", rid, p.amount_msats, payment_id=p.id, key_sha256=digest, balance_msats=left)

    async def deposit(self, headers: Mapping[str, str]) -> dict[str, Any]:
        """``POST /v1/balance``: the token in X-Cashu (all of it, less the mint's fee) funds a balance. With a
        balance key as the bearer it tops that key up; without one it makes a new key, returned once (only its
        SHA-256 is kept, as with API tokens)."""
        token = headers.get("X-Cashu", "").strip()
        if not token.startswith(TOKEN_PREFIXES):
            raise PaymentRequired(
                "send the cashu token that funds the balance in X-Cashu", mints=list(self.gate.ecash.allowed)
            )
        key = balance_key_from_headers(headers)
        new_key = None
        if key is None:
            new_key = key = BALANCE_PREFIX + secrets.token_urlsafe(32)
        digest = token_digest(key)
        ledger = self.gate.ledger
        if new_key is None and await ledger.call(ledger.balance, digest) is None:
            raise Unauthorized("unknown balance key", hint="leave the bearer out to make a new key")
        ledger.require_ecash()  # before the swap: ecash the node cannot store would be lost
        redeemed = await self.gate.ecash.redeem_all(token)
        held = await ledger.call(ledger.deposit, digest, redeemed.mint, redeemed.kept, new_id=secrets.token_hex(6))
        out: dict[str, Any] = {"balance_id": held["id"], "balance_msats": held["balance_msats"], "mint": held["mint"]}
        if new_key is not None:
            out["api_key"] = new_key
        return out

    async def balance(self, headers: Mapping[str, str]) -> dict[str, Any]:
        held = await self._known(headers)
        return {"balance_id": held["id"], "balance_msats": held["balance_msats"], "mint": held["mint"]}

    async def withdraw(self, headers: Mapping[str, str]) -> tuple[dict[str, Any], str | None]:
        """``DELETE /v1/balance``: what the key holds, back as one token (for the response's X-Cashu). The
        balance is emptied first, in one transaction, so a request charged meanwhile cannot spend it twice."""
        held = await self._known(headers)
        digest = token_digest(balance_key_from_headers(headers) or "")
        ledger = self.gate.ledger
        msats = await ledger.call(ledger.take_whole_sats, digest)
        token = None
        if msats:
            try:
                async with self.gate._wallet_lock:  # one spender of the node's held ecash at a time
                    proofs = await ledger.call(ledger.held_proofs, held["mint"])
                    token, rest = await self.gate.ecash.make_token(held["mint"], [p for _, p in proofs], msats // 1000)
                    await ledger.call(ledger.spend_proofs, held["mint"], [i for i, _ in proofs], rest)
            except BaseException:
                await ledger.call(ledger.put_back, digest, msats, "withdrawal failed")
                raise
        left = (await ledger.call(ledger.balance, digest) or {}).get("balance_msats", 0)
        return {"balance_id": held["id"], "balance_msats": left, "withdrawn_msats": msats}, token

    async def _known(self, headers: Mapping[str, str]) -> dict[str, Any]:
        key = balance_key_from_headers(headers)
        if key is None:
            raise Unauthorized("send the balance key as the bearer API key (Authorization: Bearer sbal_…)")
        held = await self.gate.ledger.call(self.gate.ledger.balance, token_digest(key))
        if held is None:
            raise Unauthorized("unknown balance key", hint="POST /v1/balance with ecash in X-Cashu makes one")
        return held
