"""Cashu proofs and tokens (NUT-00): ``cashuA`` (V3, base64url JSON) and ``cashuB`` (V4, base64url CBOR).

A token is bearer money: its proofs never go to logs or REST replies (``Token.__repr__`` hides them)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import cbor2

from silnode.errors import InvalidCashuToken

MAX_TOKEN_CHARS = 64 * 1024  # a token of a few hundred proofs; anything bigger is refused unread


@dataclass(frozen=True)
class Proof:
    amount: int
    id: str  # keyset id, hex
    secret: str
    C: str  # hex, compressed point

    def to_json(self) -> dict[str, Any]:
        return {"amount": self.amount, "id": self.id, "secret": self.secret, "C": self.C}

    @classmethod
    def from_json(cls, data: Any) -> Proof:
        if not isinstance(data, dict):
            raise InvalidCashuToken("a proof must be an object")
        try:
            amount, kid, secret, c = data["amount"], data["id"], data["secret"], data["C"]
        except KeyError as exc:
            raise InvalidCashuToken(f"a proof lacks {exc.args[0]!r}") from None
        if not (isinstance(amount, int) and not isinstance(amount, bool) and amount > 0):
            raise InvalidCashuToken("a proof's amount must be a positive integer")
        if not all(isinstance(v, str) and v for v in (kid, secret, c)):
            raise InvalidCashuToken("a proof's id, secret and C must be non-empty strings")
        return cls(amount, kid, secret, c)

    def __repr__(self) -> str:
        return f"Proof(amount={self.amount}, id={self.id!r})"


@dataclass(frozen=True)
class Token:
    mint: str
    proofs: tuple[Proof, ...]
    unit: str = "sat"
    memo: str | None = field(default=None)

    @property
    def amount(self) -> int:
        return sum(p.amount for p in self.proofs)

    def __repr__(self) -> str:
        return f"Token(mint={self.mint!r}, unit={self.unit!r}, amount={self.amount}, proofs={len(self.proofs)})"

    # ---- V4 (cashuB)
    def encode(self) -> str:
        by_keyset: dict[str, list[Proof]] = {}
        for p in self.proofs:
            by_keyset.setdefault(p.id, []).append(p)
        body: dict[str, Any] = {
            "t": [
                {"i": bytes.fromhex(kid), "p": [{"a": p.amount, "s": p.secret, "c": bytes.fromhex(p.C)} for p in ps]}
                for kid, ps in by_keyset.items()
            ]
        }
        if self.memo:
            body["d"] = self.memo
        body["m"] = self.mint
        body["u"] = self.unit
        return "cashuB" + base64.urlsafe_b64encode(cbor2.dumps(body)).decode().rstrip("=")


def _b64(text: str) -> bytes:
    try:
        # some wallets write standard base64: accept both alphabets, and no stray characters
        text = text.rstrip("=").replace("+", "-").replace("/", "_")
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (ValueError, TypeError) as exc:
        raise InvalidCashuToken("the token is not valid base64url") from exc


def decode(text: str) -> Token:
    """A ``cashuA…`` or ``cashuB…`` string as a :class:`Token` (one mint), or InvalidCashuToken saying why."""
    if not isinstance(text, str):
        raise InvalidCashuToken("a cashu token is a string")
    text = text.strip()
    if len(text) > MAX_TOKEN_CHARS:
        raise InvalidCashuToken(f"the token is longer than {MAX_TOKEN_CHARS} characters")
    if text.startswith("cashuA"):
        return _decode_v3(_b64(text[6:]))
    if text.startswith("cashuB"):
        return _decode_v4(_b64(text[6:]))
    raise InvalidCashuToken("a cashu token starts with cashuA or cashuB")


def _decode_v3(raw: bytes) -> Token:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCashuToken("the cashuA token is not JSON") from exc
    entries = data.get("token") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InvalidCashuToken("the cashuA token has no 'token' list")
    mints = {e.get("mint") for e in entries if isinstance(e, dict)}
    if len(mints) != 1 or not all(isinstance(e, dict) for e in entries):
        raise InvalidCashuToken("a token must hold proofs of exactly one mint")
    proofs = tuple(Proof.from_json(p) for e in entries for p in (e.get("proofs") or []))
    return _checked(Token(str(mints.pop()), proofs, str(data.get("unit") or "sat"), data.get("memo")))


def _decode_v4(raw: bytes) -> Token:
    try:
        data = cbor2.loads(raw)
    except Exception as exc:  # cbor2 raises several types for garbage
        raise InvalidCashuToken("the cashuB token is not CBOR") from exc
    if not isinstance(data, dict) or not isinstance(data.get("m"), str) or not isinstance(data.get("t"), list):
        raise InvalidCashuToken("the cashuB token lacks its mint 'm' or its proofs 't'")
    proofs: list[Proof] = []
    for entry in data["t"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("i"), bytes) or not isinstance(entry.get("p"), list):
            raise InvalidCashuToken("a cashuB keyset entry needs 'i' (bytes) and 'p' (list)")
        for p in entry["p"]:
            if not isinstance(p, dict) or not isinstance(p.get("c"), bytes):
                raise InvalidCashuToken("a cashuB proof needs 'a', 's' and 'c' (bytes)")
            proofs.append(
                Proof.from_json({"amount": p.get("a"), "id": entry["i"].hex(), "secret": p.get("s"), "C": p["c"].hex()})
            )
    memo = data.get("d") if isinstance(data.get("d"), str) else None
    return _checked(Token(data["m"], tuple(proofs), str(data.get("u") or "sat"), memo))


def _checked(token: Token) -> Token:
    if not token.proofs:
        raise InvalidCashuToken("the token holds no proofs")
    if not token.mint.startswith(("http://", "https://")):
        raise InvalidCashuToken("the token's mint is not an http(s) URL")
    return token


def normalize_mint_url(url: str) -> str:
    """Mint URLs compare without a trailing slash and with a lower-case scheme and host."""
    url = url.strip().rstrip("/")
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}{sep}{host.lower()}{slash}{path}"
