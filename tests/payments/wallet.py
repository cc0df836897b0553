"""The customer's side in the tests: a plain cashu wallet on the node's own mint client (funds, sends tokens,
pays bolt11 invoices by melting, receives change and refunds)."""

from __future__ import annotations

from silnode.payments.cashu.mint import MintClient, split_amount
from silnode.payments.cashu.token import Proof, Token, decode


class Customer:
    def __init__(self, mint_url: str, proofs: list[Proof] | None = None) -> None:
        self.mint = MintClient(mint_url)
        self.proofs: list[Proof] = list(proofs or [])

    @property
    def balance(self) -> int:
        return sum(p.amount for p in self.proofs)

    async def fund(self, sats: int) -> None:
        """Only on a mint with FakeWallet brr=true (every invoice reports paid)."""
        q = await self.mint.mint_quote(sats)
        self.proofs += await self.mint.mint(q["quote"], sats)

    async def _cut(self, sats: int) -> list[Proof]:
        """Proofs worth exactly ``sats`` (swapping the wallet's proofs to make change)."""
        if self.balance < sats:
            raise AssertionError(f"the test customer holds {self.balance} sats, not {sats}")
        fresh = await self.mint.swap(self.proofs, split_amount(sats) + split_amount(self.balance - sats))
        n = len(split_amount(sats))
        self.proofs = fresh[n:]
        return fresh[:n]

    async def token(self, sats: int) -> str:
        return Token(self.mint.url, tuple(await self._cut(sats))).encode()

    async def pay(self, bolt11: str) -> dict:
        quote = await self.mint.melt_quote(bolt11)
        inputs = await self._cut(int(quote["amount"]) + int(quote.get("fee_reserve") or 0))
        return await self.mint.melt(quote["quote"], inputs)

    async def receive(self, token: str) -> int:
        t = decode(token)
        fresh = await self.mint.swap(list(t.proofs), split_amount(t.amount))
        self.proofs += fresh
        return t.amount

    async def close(self) -> None:
        await self.mint.close()
