"""What a job costs: a fixed part plus a per-1k-token part estimated from the job's max_tokens.

Prices are in millisatoshis (NIP-90's unit) and rounded *up* to whole sats at quote time, because every
backend here (a cashu mint, an LNbits or NWC invoice) settles whole sats: the quoted price is exactly what
is charged, so a bid at or above it is never charged more than the bid."""

from __future__ import annotations

from dataclasses import dataclass

from silnode.errors import BadRequest, BidTooLow


def whole_sats(msats: int) -> int:
    return -(-msats // 1000)


@dataclass(frozen=True)
class Pricing:
    per_job_msats: int = 0
    per_1k_tokens_msats: int = 0

    def __post_init__(self) -> None:
        if self.per_job_msats < 0 or self.per_1k_tokens_msats < 0:
            raise BadRequest("prices must be >= 0 msats")

    @property
    def free(self) -> bool:
        return self.per_job_msats == 0 and self.per_1k_tokens_msats == 0

    def quote(self, max_tokens: int) -> int:
        """The price of a job that may generate ``max_tokens`` tokens, in msats (a multiple of 1000)."""
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
            raise BadRequest("max_tokens must be a non-negative integer")
        raw = self.per_job_msats + -(-self.per_1k_tokens_msats * max_tokens // 1000)
        return whole_sats(raw) * 1000

    def to_json(self) -> dict[str, int | str]:
        """What a NIP-89 announcement or /v1/models shows."""
        return {"unit": "msats", "per_job": self.per_job_msats, "per_1k_tokens": self.per_1k_tokens_msats}


def check_bid(price_msats: int, bid_msats: int | None) -> int:
    """The amount to charge: the price, if the bid (when given) covers it; else BidTooLow naming the price."""
    if bid_msats is None:
        return price_msats
    if not isinstance(bid_msats, int) or isinstance(bid_msats, bool) or bid_msats < 0:
        raise BadRequest("bid must be a non-negative integer of msats")
    if bid_msats < price_msats:
        raise BidTooLow(
            f"the price of this job is {price_msats} msats; the bid of {bid_msats} msats is below it",
            price_msats=price_msats,
            bid_msats=bid_msats,
        )
    return price_msats
