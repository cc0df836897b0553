"""Ecash taken as payment: a ``cashuA``/``cashuB`` token from an allow-listed mint, swapped at that mint before
any work (a token is only money once the mint has swapped it for proofs only the node knows), and ecash given
back (change, refunds) as fresh tokens."""

from __future__ import annotations

from dataclasses import dataclass

from silnode.errors import InsufficientPayment, InvalidCashuToken, MintNotAllowed
from silnode.payments.cashu.mint import MintClient, split_amount
from silnode.payments.cashu.token import Proof, Token, decode, normalize_mint_url
from silnode.payments.pricing import whole_sats


@dataclass(frozen=True)
class Redeemed:
    mint: str
    kept: list[Proof]  # worth exactly the price, now the node's
    change: str | None  # a token for what was paid beyond the price (and the mint's fee), for the customer

    @property
    def kept_msats(self) -> int:
        return sum(p.amount for p in self.kept) * 1000

    def __repr__(self) -> str:
        return f"Redeemed(mint={self.mint!r}, kept_msats={self.kept_msats}, change={'yes' if self.change else 'no'})"


class Ecash:
    def __init__(self, allowed_mints: tuple[str, ...] | list[str]) -> None:
        self.allowed = tuple(normalize_mint_url(m) for m in allowed_mints)
        self._clients: dict[str, MintClient] = {}

    def client(self, mint: str) -> MintClient:
        url = normalize_mint_url(mint)
        if url not in self._clients:
            self._clients[url] = MintClient(url)
        return self._clients[url]

    def check(self, token_text: str, price_msats: int) -> Token:
        """Everything that can be refused without asking the mint (nothing is spent on a refusal)."""
        token = decode(token_text)
        if token.unit != "sat":
            raise InvalidCashuToken(f"the token's unit is {token.unit!r}; this node takes 'sat'")
        if normalize_mint_url(token.mint) not in self.allowed:
            raise MintNotAllowed(
                f"ecash from {token.mint} is not accepted here; accepted mints: {', '.join(self.allowed) or 'none'}",
                mints=list(self.allowed),
            )
        if token.amount * 1000 < price_msats:
            raise InsufficientPayment(
                f"the token holds {token.amount * 1000} msats; the price is {price_msats} msats",
                price_msats=price_msats,
                amount_msats=token.amount * 1000,
            )
        return token

    async def redeem(self, token_text: str, price_msats: int) -> Redeemed:
        """Swap the token at its mint: proofs worth the price for the node, the rest back as change.
        A spent token raises TokenSpent (the mint refuses the swap), so one token pays for one job."""
        token = self.check(token_text, price_msats)
        mint = self.client(token.mint)
        price = whole_sats(price_msats)
        fee = await mint.input_fee(list(token.proofs))
        change = token.amount - fee - price
        if change < 0:
            raise InsufficientPayment(
                f"the token holds {token.amount} sats; the price is {price} sats plus the mint's fee of {fee}",
                price_msats=price_msats,
            )
        kept_amounts, change_amounts = split_amount(price), split_amount(change)
        fresh = await mint.swap(list(token.proofs), kept_amounts + change_amounts)
        kept, back = fresh[: len(kept_amounts)], fresh[len(kept_amounts) :]
        return Redeemed(mint.url, kept, Token(mint.url, tuple(back)).encode() if back else None)

    async def redeem_all(self, token_text: str) -> Redeemed:
        """Swap the whole token (less the mint's input fee) for the node's proofs: a deposit, no change."""
        token = self.check(token_text, 0)
        fee = await self.client(token.mint).input_fee(list(token.proofs))
        if token.amount - fee <= 0:
            raise InsufficientPayment(f"the token holds {token.amount} sats, not more than the mint's fee of {fee}")
        return await self.redeem(token_text, (token.amount - fee) * 1000)

    async def make_token(self, mint: str, proofs: list[Proof], amount: int) -> tuple[str, list[Proof]]:
        """A token worth ``amount`` sats cut from ``proofs`` (all of one mint): ``(token, the rest back)``."""
        client = self.client(mint)
        fee = await client.input_fee(proofs)
        rest = sum(p.amount for p in proofs) - fee - amount
        if rest < 0:
            raise InsufficientPayment(
                f"the node holds {sum(p.amount for p in proofs)} sats at {mint}, not {amount} + fee {fee}"
            )
        out_amounts, rest_amounts = split_amount(amount), split_amount(rest)
        fresh = await client.swap(proofs, out_amounts + rest_amounts)
        return Token(client.url, tuple(fresh[: len(out_amounts)])).encode(), fresh[len(out_amounts) :]

    async def close(self) -> None:
        for c in self._clients.values():
            await c.close()
