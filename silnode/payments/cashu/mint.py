"""A Cashu mint over HTTP (NUT-01/02 keys, NUT-03 swap, NUT-04 mint, NUT-05 melt, NUT-07 state).

The client creates blinded outputs with fresh random secrets and unblinds the mint's signatures into
:class:`Proof` s, so every proof it returns belongs to the caller alone. Mint errors become the node's error
tree here: "already spent" (code 11001) is :class:`TokenSpent`, everything else :class:`PaymentError` naming
the mint's own message (never the proofs)."""

from __future__ import annotations

import asyncio
import math
import secrets
from dataclasses import dataclass
from typing import Any

import aiohttp
from coincurve import PublicKey

from silnode.errors import PaymentError, TokenSpent
from silnode.payments.cashu import bdhke
from silnode.payments.cashu.token import Proof, normalize_mint_url

SPENT_CODES = {11001}  # "Token already spent" (NUT errors); nutshell 0.20 also says "proofs already spent"


def split_amount(amount: int) -> list[int]:
    """The powers of two that sum to ``amount`` (how a wallet asks for outputs)."""
    return [1 << i for i in range(amount.bit_length()) if amount >> i & 1]


@dataclass(frozen=True)
class Keyset:
    id: str
    unit: str
    input_fee_ppk: int
    keys: dict[int, PublicKey]


class MintClient:
    def __init__(self, url: str, *, timeout: float = 20.0) -> None:
        self.url = normalize_mint_url(url)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._keysets: dict[str, Keyset] = {}

    def __repr__(self) -> str:
        return f"MintClient({self.url!r})"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.request(method, self.url + path, json=body) as resp:
                try:
                    data = await resp.json(content_type=None)
                except ValueError:
                    data = None
                if resp.status >= 400:
                    detail = data.get("detail") if isinstance(data, dict) else None
                    code = data.get("code") if isinstance(data, dict) else None
                    text = str(detail or f"HTTP {resp.status}")[:300]
                    if code in SPENT_CODES or "already spent" in text.lower():
                        raise TokenSpent(f"the mint says this ecash is already spent ({text})")
                    raise PaymentError(f"mint {self.url} refused {path}: {text}", mint_code=code)
                return data
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise PaymentError(f"mint {self.url} is unreachable: {exc.__class__.__name__}") from exc

    # ---- keys
    async def keyset(self, unit: str = "sat", keyset_id: str | None = None) -> Keyset:
        """The active keyset of ``unit`` (or the one named), with its public keys; cached."""
        if keyset_id and keyset_id in self._keysets:
            return self._keysets[keyset_id]
        listing = await self._call("GET", "/v1/keysets")
        chosen = None
        for ks in listing.get("keysets", []):
            if (keyset_id and ks.get("id") == keyset_id) or (
                not keyset_id and ks.get("unit") == unit and ks.get("active")
            ):
                chosen = ks
                break
        if chosen is None:
            raise PaymentError(
                f"mint {self.url} has no {'keyset ' + keyset_id if keyset_id else 'active ' + unit + ' keyset'}"
            )
        keys = await self._call("GET", f"/v1/keys/{chosen['id']}")
        raw = keys["keysets"][0]["keys"]
        ks = Keyset(
            chosen["id"],
            chosen.get("unit", unit),
            int(chosen.get("input_fee_ppk") or 0),
            {int(a): PublicKey(bytes.fromhex(k)) for a, k in raw.items()},
        )
        self._keysets[ks.id] = ks
        return ks

    async def input_fee(self, proofs: list[Proof]) -> int:
        """NUT-02 fee of spending ``proofs``: the sum of their keysets' ppk, rounded up to whole units."""
        total = 0
        for p in proofs:
            total += (await self.keyset(keyset_id=p.id)).input_fee_ppk
        return math.ceil(total / 1000)

    # ---- outputs
    def _outputs(self, ks: Keyset, amounts: list[int]) -> tuple[list[dict[str, Any]], list[tuple[str, bytes, int]]]:
        outputs, pending = [], []
        for amount in amounts:
            if amount not in ks.keys:
                raise PaymentError(f"mint {self.url} has no key for amount {amount}")
            secret = secrets.token_hex(32)
            b_, r = bdhke.blind(secret.encode())
            outputs.append({"amount": amount, "id": ks.id, "B_": b_.format().hex()})
            pending.append((secret, r, amount))
        return outputs, pending

    def _unblind(self, ks: Keyset, sigs: list[dict[str, Any]], pending: list[tuple[str, bytes, int]]) -> list[Proof]:
        if len(sigs) != len(pending):
            raise PaymentError(f"mint {self.url} returned {len(sigs)} signatures for {len(pending)} outputs")
        proofs = []
        for sig, (secret, r, amount) in zip(sigs, pending):
            c = bdhke.unblind(PublicKey(bytes.fromhex(sig["C_"])), r, ks.keys[amount])
            proofs.append(Proof(amount, ks.id, secret, c.format().hex()))
        return proofs

    # ---- NUT-03
    async def swap(self, inputs: list[Proof], amounts: list[int]) -> list[Proof]:
        """Spend ``inputs`` for fresh proofs of ``amounts`` (their sum must be the inputs less the fee)."""
        ks = await self.keyset()
        outputs, pending = self._outputs(ks, amounts)
        data = await self._call("POST", "/v1/swap", {"inputs": [p.to_json() for p in inputs], "outputs": outputs})
        return self._unblind(ks, data.get("signatures", []), pending)

    # ---- NUT-04
    async def mint_quote(self, amount: int, unit: str = "sat") -> dict[str, Any]:
        return await self._call("POST", "/v1/mint/quote/bolt11", {"amount": amount, "unit": unit})

    async def mint_quote_state(self, quote: str) -> dict[str, Any]:
        return await self._call("GET", f"/v1/mint/quote/bolt11/{quote}")

    async def mint(self, quote: str, amount: int) -> list[Proof]:
        ks = await self.keyset()
        outputs, pending = self._outputs(ks, split_amount(amount))
        data = await self._call("POST", "/v1/mint/bolt11", {"quote": quote, "outputs": outputs})
        return self._unblind(ks, data.get("signatures", []), pending)

    # ---- NUT-05
    async def melt_quote(self, bolt11: str, unit: str = "sat") -> dict[str, Any]:
        return await self._call("POST", "/v1/melt/quote/bolt11", {"request": bolt11, "unit": unit})

    async def melt(self, quote: str, inputs: list[Proof]) -> dict[str, Any]:
        return await self._call("POST", "/v1/melt/bolt11", {"quote": quote, "inputs": [p.to_json() for p in inputs]})

    # ---- NUT-07
    async def check_state(self, proofs: list[Proof]) -> list[str]:
        ys = [bdhke.hash_to_curve(p.secret.encode()).format().hex() for p in proofs]
        data = await self._call("POST", "/v1/checkstate", {"Ys": ys})
        by_y = {s.get("Y"): s.get("state") for s in data.get("states", [])}
        return [str(by_y.get(y, "UNKNOWN")) for y in ys]
