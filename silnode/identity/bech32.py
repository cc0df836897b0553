"""Bech32 (BIP-173) as NIP-19 uses it for ``npub`` / ``nsec``: hrp + 32-byte key, no 90-character limit.

Written from the BIP-173 reference; tests cross-check it against nostr-sdk and the NIP-06 vectors.
"""

from __future__ import annotations

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= _GEN[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convertbits(data: bytes | list[int], frombits: int, tobits: int, pad: bool) -> list[int]:
    acc = bits = 0
    out: list[int] = []
    maxv = (1 << tobits) - 1
    for value in data:
        if value < 0 or value >> frombits:
            raise ValueError("invalid bech32 data value")
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        raise ValueError("invalid bech32 padding")
    return out


def encode(hrp: str, data: bytes) -> str:
    values = _convertbits(data, 8, 5, True)
    polymod = _polymod(_hrp_expand(hrp) + values + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[d] for d in values + checksum)


def decode(text: str, hrp: str | None = None) -> tuple[str, bytes]:
    """``(hrp, data)`` of a bech32 string; ``ValueError`` (no input echoed) when it is not valid."""
    if text.lower() != text and text.upper() != text:
        raise ValueError("bech32 string mixes upper and lower case")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise ValueError("not a bech32 string")
    got_hrp, rest = text[:pos], text[pos + 1 :]
    if any(c not in CHARSET for c in rest):
        raise ValueError("bech32 string has a character outside its alphabet")
    values = [CHARSET.index(c) for c in rest]
    if _polymod(_hrp_expand(got_hrp) + values) != 1:
        raise ValueError("bech32 checksum does not match")
    if hrp is not None and got_hrp != hrp:
        raise ValueError(f"expected a {hrp!r} string, got {got_hrp!r}")
    return got_hrp, bytes(_convertbits(values[:-6], 5, 8, False))


def npub_encode(pubkey: bytes) -> str:
    if len(pubkey) != 32:
        raise ValueError("a Nostr public key is 32 bytes")
    return encode("npub", pubkey)


def npub_decode(npub: str) -> bytes:
    data = decode(npub, "npub")[1]
    if len(data) != 32:
        raise ValueError("an npub holds 32 bytes")
    return data
