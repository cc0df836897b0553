"""The node's own Cashu code against the NUT-00 test vectors (cashubtc/nuts tests/00-tests.md)."""

from __future__ import annotations

import pytest
from coincurve import PrivateKey, PublicKey

from silnode.errors import InvalidCashuToken
from silnode.payments.cashu import bdhke
from silnode.payments.cashu.mint import split_amount
from silnode.payments.cashu.token import Proof, Token, decode, normalize_mint_url


@pytest.mark.parametrize(
    "message,point",
    [
        ("00" * 32, "024cce997d3b518f739663b757deaec95bcd9473c30a14ac2fd04023a739d1a725"),
        ("00" * 31 + "01", "022e7158e11c9506f1aa4248bf531298daa7febd6194f003edcd9b93ade6253acf"),
        ("00" * 31 + "02", "026cdbe15362df59cd1dd3c9c11de8aedac2106eca69236ecd9fbe117af897be4f"),
    ],
)
def test_hash_to_curve_vectors(message: str, point: str) -> None:
    assert bdhke.hash_to_curve(bytes.fromhex(message)).format().hex() == point


@pytest.mark.parametrize(
    "x,r,b_",
    [
        (
            "d341ee4871f1f889041e63cf0d3823c713eea6aff01e80f1719f08f9e5be98f6",
            "99fce58439fc37412ab3468b73db0569322588f62fb3a49182d67e23d877824a",
            "033b1a9737a40cc3fd9b6af4b723632b76a67a36782596304612a6c2bfb5197e6d",
        ),
        (
            "f1aaf16c2239746f369572c0784d9dd3d032d952c2d992175873fb58fae31a60",
            "f78476ea7cc9ade20f9e05e58a804cf19533f03ea805ece5fee88c8e2874ba50",
            "029bdf2d716ee366eddf599ba252786c1033f47e230248a4612a5670ab931f1763",
        ),
    ],
)
def test_blinded_message_vectors(x: str, r: str, b_: str) -> None:
    blinded, _ = bdhke.blind(bytes.fromhex(x), bytes.fromhex(r))
    assert blinded.format().hex() == b_


@pytest.mark.parametrize(
    "k,c_",
    [
        ("00" * 31 + "01", "02a9acc1e48c25eeeb9289b5031cc57da9fe72f3fe2861d264bdc074209b107ba2"),
        ("7f" * 32, "0398bc70ce8184d27ba89834d19f5199c84443c31131e48d3c1214db24247d005d"),
    ],
)
def test_blinded_signature_vectors(k: str, c_: str) -> None:
    b_ = PublicKey(bytes.fromhex("02a9acc1e48c25eeeb9289b5031cc57da9fe72f3fe2861d264bdc074209b107ba2"))
    assert bdhke.sign(bytes.fromhex(k), b_).format().hex() == c_


def test_unblinded_signature_verifies_and_a_wrong_key_does_not() -> None:
    k = PrivateKey().secret
    secret = b"407915bc212be61a77e3e6d2aeb4c727980bda51cd06a6afc29e2861768a7837"
    blinded, r = bdhke.blind(secret)
    c = bdhke.unblind(bdhke.sign(k, blinded), r, PrivateKey(k).public_key)
    assert bdhke.verify(k, c, secret)
    assert not bdhke.verify(PrivateKey().secret, c, secret)


V3 = (
    "cashuAeyJ0b2tlbiI6W3sibWludCI6Imh0dHBzOi8vODMzMy5zcGFjZTozMzM4IiwicHJvb2ZzIjpbeyJhbW91bnQiOjIsImlkIjoiMDA5"
    "YTFmMjkzMjUzZTQxZSIsInNlY3JldCI6IjQwNzkxNWJjMjEyYmU2MWE3N2UzZTZkMmFlYjRjNzI3OTgwYmRhNTFjZDA2YTZhZmMyOWUyODYx"
    "NzY4YTc4MzciLCJDIjoiMDJiYzkwOTc5OTdkODFhZmIyY2M3MzQ2YjVlNDM0NWE5MzQ2YmQyYTUwNmViNzk1ODU5OGE3MmYwY2Y4NTE2M2Vh"
    "In0seyJhbW91bnQiOjgsImlkIjoiMDA5YTFmMjkzMjUzZTQxZSIsInNlY3JldCI6ImZlMTUxMDkzMTRlNjFkNzc1NmIwZjhlZTBmMjNhNjI0"
    "YWNhYTNmNGUwNDJmNjE0MzNjNzI4YzcwNTdiOTMxYmUiLCJDIjoiMDI5ZThlNTA1MGI4OTBhN2Q2YzA5NjhkYjE2YmMxZDVkNWZhMDQwZWEx"
    "ZGUyODRmNmVjNjlkNjEyOTlmNjcxMDU5In1dfV0sInVuaXQiOiJzYXQiLCJtZW1vIjoiVGhhbmsgeW91LiJ9"
)
V4_MULTI = (
    "cashuBo2F0gqJhaUgA_9SLj17PgGFwgaNhYQFhc3hAYWNjMTI0MzVlN2I4NDg0YzNjZjE4NTAxNDkyMThhZjkwZjcxNmE1MmJmNGE1ZWQz"
    "NDdlNDhlY2MxM2Y3NzM4OGFjWCECRFODGd5IXVW-07KaZCvuWHk3WrnnpiDhHki6SCQh88-iYWlIAK0mjE0fWCZhcIKjYWECYXN4QDEzMjNk"
    "M2Q0NzA3YTU4YWQyZTIzYWRhNGU5ZjFmNDlmNWE1YjRhYzdiNzA4ZWIwZDYxZjczOGY0ODMwN2U4ZWVhY1ghAjRWqhENhLSsdHrr2Cw7AFrK"
    "UL9Ffr1XN6RBT6w659lNo2FhAWFzeEA1NmJjYmNiYjdjYzY0MDZiM2ZhNWQ1N2QyMTc0ZjRlZmY4YjQ0MDJiMTc2OTI2ZDNhNTdkM2MzZGNi"
    "YjU5ZDU3YWNYIQJzEpxXGeWZN5qXSmJjY8MzxWyvwObQGr5G1YCCgHicY2FtdWh0dHA6Ly9sb2NhbGhvc3Q6MzMzOGF1Y3NhdA=="
)


def test_token_v3_vector() -> None:
    t = decode(V3)
    assert (t.mint, t.unit, t.memo, t.amount) == ("https://8333.space:3338", "sat", "Thank you.", 10)
    assert t.proofs[0] == Proof(
        2,
        "009a1f293253e41e",
        "407915bc212be61a77e3e6d2aeb4c727980bda51cd06a6afc29e2861768a7837",
        "02bc9097997d81afb2cc7346b5e4345a9346bd2a506eb7958598a72f0cf85163ea",
    )


def test_token_v4_vectors_and_our_encoding() -> None:
    t = decode(V4_MULTI)
    assert (t.mint, t.unit, t.amount) == ("http://localhost:3338", "sat", 4)
    assert [p.id for p in t.proofs] == ["00ffd48b8f5ecf80", "00ad268c4d1f5826", "00ad268c4d1f5826"]
    assert t.proofs[2].C == "0273129c5719e599379a974a626363c333c56cafc0e6d01abe46d5808280789c63"
    # our encoder writes the same bytes as the spec's (which pads with '='; padding is optional on input)
    assert t.encode() == V4_MULTI.rstrip("=")
    assert decode(t.encode()) == t
    single = Token("http://localhost:3338", (t.proofs[0],), memo="Thank you")
    assert decode(single.encode()) == single


@pytest.mark.parametrize(
    "text,why",
    [
        ("casshuA" + V3[6:], "starts with cashuA or cashuB"),
        (V3[6:], "starts with cashuA or cashuB"),
        ("cashuB!!!!", "base64url"),
        ("cashuB_w", "not CBOR"),
        ("cashuBAAAA", "lacks its mint"),
        ("cashuAeyJ0b2tlbiI6W119", "no 'token' list"),
        ("cashuB" + "A" * 70000, "longer than"),
    ],
)
def test_bad_tokens_are_named(text: str, why: str) -> None:
    with pytest.raises(InvalidCashuToken, match=why):
        decode(text)


def test_token_repr_hides_the_proofs() -> None:
    t = decode(V3)
    assert "407915bc" not in repr(t) and "02bc9097" not in repr(t) and "amount=10" in repr(t)


def test_split_amount_and_mint_urls() -> None:
    assert split_amount(13) == [1, 4, 8] and split_amount(0) == [] and sum(split_amount(1000)) == 1000
    assert normalize_mint_url("HTTP://Mint.Example:3338/") == "http://mint.example:3338"
