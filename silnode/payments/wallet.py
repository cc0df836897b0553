"""A small cashu wallet for the customer side (``silnode wallet``, ``silnode ask --pay cashu``): for tests and
demos, not a place to keep savings.

Its proofs live in ONE file, ``SILNODE_HOME/wallet/cashu.enc``: AES-GCM over the JSON ``{mint: [proofs]}``,
with a key derived (HKDF) from the customer's Nostr secret (NIP-06 account 1 of the identity), written
crash-safe (tmp, fsync, rename) under an flock so two commands never lose each other's proofs. Every change
of the proofs is saved before the money leaves the process (a token handed out, an invoice melted), so a
crash loses at most the proofs in flight, never the rest.

    w = CustomerWallet.open(home, secret_bytes)
    await w.fund(mint, 100)             # NUT-04: a mint quote (its bolt11 is what to pay), then mint
    token = await w.send(mint, 21)      # a token cut from the wallet (NUT-03 swap)
    await w.pay_invoice(mint, bolt11)   # NUT-05 melt: pays a provider's payment-required invoice
    await w.receive(token)              # change and refunds back into the wallet
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from silnode.errors import BadRequest, InsufficientPayment, PaymentError, SilnodeError
from silnode.fsutil import atomic_write_bytes
from silnode.payments.cashu.mint import MintClient, split_amount
from silnode.payments.cashu.token import Proof, Token, decode, normalize_mint_url

AAD = b"silnode customer wallet v1"


def wallet_key(secret: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=AAD).derive(secret)


class CustomerWallet:
    def __init__(self, path: Path, key: bytes) -> None:
        self.path = Path(path)
        self._aead = AESGCM(key)
        self._clients: dict[str, MintClient] = {}

    @classmethod
    def open(cls, home: Path, secret: bytes) -> CustomerWallet:
        return cls(Path(home) / "wallet" / "cashu.enc", wallet_key(secret))

    def __repr__(self) -> str:
        return f"CustomerWallet({str(self.path)!r})"

    # ---- the file
    def _read(self) -> dict[str, list[Proof]]:
        try:
            blob = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(self._aead.decrypt(blob[:12], blob[12:], AAD))
        except (InvalidTag, ValueError) as exc:
            raise BadRequest(
                f"{self.path} cannot be opened with this identity's key",
                hint="the wallet belongs to another identity; move it away to start a new one",
            ) from exc
        return {m: [Proof.from_json(p) for p in ps] for m, ps in data.get("proofs", {}).items()}

    def _write(self, proofs: dict[str, list[Proof]]) -> None:
        body = {"proofs": {m: [p.to_json() for p in ps] for m, ps in proofs.items() if ps}, "saved_at": time.time()}
        nonce = os.urandom(12)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write_bytes(self.path, nonce + self._aead.encrypt(nonce, json.dumps(body).encode(), AAD), mode=0o600)

    def _change(self, fn: Callable[[dict[str, list[Proof]]], None]) -> None:
        """Read-modify-write under the wallet's flock."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path.with_name("cashu.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            proofs = self._read()
            fn(proofs)
            self._write(proofs)
        finally:
            os.close(fd)

    def _add(self, mint: str, fresh: list[Proof]) -> None:
        self._change(lambda ps: ps.setdefault(mint, []).extend(fresh))

    def _take(self, mint: str) -> list[Proof]:
        """All proofs of ``mint``, removed from the file (the caller puts back what it does not spend)."""
        taken: list[Proof] = []

        def take(ps: dict[str, list[Proof]]) -> None:
            taken.extend(ps.pop(mint, []))

        self._change(take)
        return taken

    # ---- reads
    def balances(self) -> dict[str, int]:
        return {m: sum(p.amount for p in ps) for m, ps in self._read().items() if ps}

    def balance(self, mint: str) -> int:
        return self.balances().get(normalize_mint_url(mint), 0)

    def client(self, mint: str) -> MintClient:
        url = normalize_mint_url(mint)
        if url not in self._clients:
            self._clients[url] = MintClient(url)
        return self._clients[url]

    async def close(self) -> None:
        for c in self._clients.values():
            await c.close()

    # ---- money in
    async def fund(
        self,
        mint: str,
        sats: int,
        *,
        on_invoice: Callable[[str], Any] | None = None,
        timeout: float = 600.0,
        poll: float = 1.0,
    ) -> int:
        """NUT-04: ask the mint for a quote, show its bolt11 (``on_invoice``), wait until it is paid (a test mint
        with FakeWallet pays at once), then mint the ecash into the wallet. Returns the new balance at the mint."""
        if sats <= 0:
            raise BadRequest("fund a positive number of sats")
        client = self.client(mint)
        quote = await client.mint_quote(sats)
        if on_invoice is not None:
            on_invoice(str(quote["request"]))
        deadline = time.monotonic() + timeout
        while (await client.mint_quote_state(quote["quote"])).get("state") not in ("PAID", "ISSUED"):
            if time.monotonic() >= deadline:
                raise PaymentError(f"the mint's invoice for {sats} sats was not paid within {timeout:.0f} s")
            await asyncio.sleep(poll)
        self._add(client.url, await client.mint(quote["quote"], sats))
        return self.balance(client.url)

    async def receive(self, token_text: str) -> int:
        """Swap a token (change, a refund, a gift) into fresh proofs only this wallet knows. Returns its sats."""
        token = decode(token_text)
        client = self.client(token.mint)
        fee = await client.input_fee(list(token.proofs))
        fresh = await client.swap(list(token.proofs), split_amount(token.amount - fee))
        self._add(client.url, fresh)
        return token.amount - fee

    # ---- money out
    async def _cut(self, mint: str, sats: int, spend: Callable[[list[Proof]], Awaitable[Any]]) -> Any:
        """Proofs worth exactly ``sats`` handed to ``spend``; the rest is saved back first. If ``spend`` fails
        the cut proofs go back too (the mint did not take them)."""
        client = self.client(mint)
        held = self._take(client.url)
        try:
            have = sum(p.amount for p in held)
            fee = await client.input_fee(held) if held else 0
            if have - fee < sats:
                raise InsufficientPayment(
                    f"the wallet holds {have} sats at {client.url}; {sats} (+ fee {fee}) are needed",
                    hint=f"`silnode wallet fund {max(sats + fee - have, 1)} --mint {client.url}`",
                )
            fresh = await client.swap(held, split_amount(sats) + split_amount(have - fee - sats))
        except BaseException:
            self._add(client.url, held)  # nothing was swapped: the proofs are still good
            raise
        n = len(split_amount(sats))
        out, rest = fresh[:n], fresh[n:]
        self._add(client.url, rest)
        try:
            return await spend(out)
        except SilnodeError:
            try:  # keep what the mint did not take
                states = await client.check_state(out)
                self._add(client.url, [p for p, st in zip(out, states) if st == "UNSPENT"])
            except SilnodeError:
                self._add(client.url, out)  # cannot tell: keep them; a later swap finds out
            raise

    async def send(self, mint: str, sats: int) -> str:
        """A token worth ``sats`` for someone else (the wallet no longer holds it)."""

        async def as_token(out: list[Proof]) -> str:
            return Token(self.client(mint).url, tuple(out)).encode()

        return await self._cut(mint, sats, as_token)

    async def pay_invoice(self, mint: str, bolt11: str, *, max_sats: int | None = None) -> dict[str, Any]:
        """NUT-05: melt proofs of ``mint`` into a bolt11. ``max_sats`` caps what it may cost (amount + fee
        reserve): the customer never pays more than it agreed to."""
        client = self.client(mint)
        quote = await client.melt_quote(bolt11)
        need = int(quote["amount"]) + int(quote.get("fee_reserve") or 0)
        if max_sats is not None and need > max_sats:
            raise BadRequest(f"the invoice asks {need} sats (with the mint's fee reserve); the limit is {max_sats}")

        async def melt(out: list[Proof]) -> dict[str, Any]:
            return await client.melt(quote["quote"], out)

        result = await self._cut(mint, need, melt)
        if str(result.get("state", "PAID")) not in ("PAID",) and result.get("paid") is not True:
            raise PaymentError(f"the mint did not pay the invoice (state {result.get('state')})")
        return {"amount_sats": int(quote["amount"]), "fee_reserve_sats": need - int(quote["amount"])}

    async def reclaim(self, token_text: str) -> int:
        """Take back a token this wallet sent that was never redeemed (a refused prepayment): 0 if spent."""
        from silnode.errors import TokenSpent

        try:
            return await self.receive(token_text)
        except TokenSpent:
            return 0


def customer_secret(identity: Any) -> bytes:
    """The customer's Nostr secret (NIP-06 account 1 of the identity's seed, as `silnode ask` signs with): the
    wallet's key comes from it, so the same backup restores both."""
    from silnode.identity import mnemonic as bip39
    from silnode.identity.keys import NostrKey

    seed = bip39.to_seed(identity.reveal_mnemonic(), identity.reveal_passphrase())
    return NostrKey.from_seed(seed, account=1).secret_bytes()
