"""Blind Diffie-Hellman key exchange of Cashu (NUT-00) on coincurve.

Y  = hash_to_curve(secret)         the point of a secret
B_ = Y + r*G                       what the wallet sends (blinded; r is the blinding factor)
C_ = k*B_                          what the mint signs with its key k for that amount
C  = C_ - r*K                      the proof's signature (= k*Y), K = k*G the mint's public key
"""

from __future__ import annotations

import hashlib
import secrets

from coincurve import PrivateKey, PublicKey

DOMAIN = b"Secp256k1_HashToCurve_Cashu_"
# the order of secp256k1: negating a scalar is n - r
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def hash_to_curve(message: bytes) -> PublicKey:
    msg_hash = hashlib.sha256(DOMAIN + message).digest()
    for counter in range(1 << 16):
        digest = hashlib.sha256(msg_hash + counter.to_bytes(4, "little")).digest()
        try:
            return PublicKey(b"\x02" + digest)
        except ValueError:  # not an x coordinate on the curve: try the next counter
            continue
    raise ValueError("no point found for this message")  # pragma: no cover - 2^-65536 odds


def blind(secret: bytes, r: bytes | None = None) -> tuple[PublicKey, bytes]:
    """``(B_, r)`` for a secret; ``r`` random unless given (the test vectors give it)."""
    r = r or PrivateKey(secrets.token_bytes(32)).secret
    return PublicKey.combine_keys([hash_to_curve(secret), PrivateKey(r).public_key]), r


def sign(k: bytes, blinded: PublicKey) -> PublicKey:
    """The mint's side (C_ = k*B_); the node only uses it to check the test vectors."""
    return blinded.multiply(k)


def unblind(c_: PublicKey, r: bytes, mint_key: PublicKey) -> PublicKey:
    neg_r = (N - int.from_bytes(r, "big")) % N
    return PublicKey.combine_keys([c_, mint_key.multiply(neg_r.to_bytes(32, "big"))])


def verify(k: bytes, c: PublicKey, secret: bytes) -> bool:
    return hash_to_curve(secret).multiply(k).format() == c.format()
