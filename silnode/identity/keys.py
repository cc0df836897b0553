"""The node's keys, all derived from the one BIP39 seed.

Nostr key (secp256k1, BIP-340 x-only) — NIP-06, ``m/44'/1237'/0'/0/0``
    BIP32 written here (HMAC-SHA512 "Bitcoin seed", CKDpriv; point math by ``coincurve``). Tests check it
    against both NIP-06 vectors, SLIP-0010's secp256k1 vectors, nostr-sdk ``Keys.from_mnemonic`` and
    bip-utils. The npub is NIP-19 bech32 (:mod:`silnode.identity.bech32`).

Catalog key (ed25519: BEP 44 pointer and catalog signatures) — SLIP-0010 ed25519, ``m/7564398'/0'/0'``
    SLIP-0010 written here from the spec (HMAC-SHA512 "ed25519 seed"; hardened CKDpriv only). Tests pass
    SLIP-0010's published ed25519 vectors and cross-check the path against the ``slip10`` package (the
    SLIP's reference) and ``bip-utils`` (independent).

    Why this path:

    * ``7564398`` is ``0x736c6e``, ASCII "sln": a silnode-private BIP43 *purpose*. A phrase may be imported
      from elsewhere (a wallet the user already backs up), and every BIP44 path ``m/44'/<coin>'/...`` is some
      wallet's namespace — ``m/44'/501'/0'/0'`` for instance is Solana's SLIP-0010 ed25519 spending key. The
      catalog key is a *hot* key (it lives in the daemon and is handed to libtorrent as an expanded secret),
      so it must never coincide with a key that holds money. Nostr's own ``m/44'/1237'/<account>'`` belongs to
      NIP-06 accounts and is not ours to take either.
    * second level ``0'`` = role (0 = catalog / BEP 44 publisher key); third level ``0'`` = key index, bumped
      to rotate the catalog key without changing the phrase.
    * every level is hardened because SLIP-0010 defines only hardened derivation for ed25519; a leaked child
      key then also reveals nothing about its parent or siblings.

libtorrent's ``dht_put_mutable_item`` wants the 64-byte ref10 "expanded" secret (``SHA512(seed)`` clamped,
see shared/research/libtorrent-notes.md §6a), not PyNaCl's 64-byte ``seed‖pk``, which it silently accepts
and signs garbage with: :meth:`CatalogKey.libtorrent_secret` returns the right one.

Key objects keep their secret in a private slot and never show it in ``repr``/``str``; methods that hand a
secret out say so in their name (``nsec()``, ``secret_bytes()``, ``seed_bytes()``, ``libtorrent_secret()``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

from silnode.identity import bech32

HARDENED = 0x80000000
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

NOSTR_PATH = "m/44'/1237'/0'/0/0"
CATALOG_PURPOSE = 0x736C6E  # "sln" = 7564398
CATALOG_PATH = "m/7564398'/0'/0'"


def nostr_path(account: int = 0) -> str:
    """NIP-06 path for ``account`` (0 is the default every client uses)."""
    return f"m/44'/1237'/{int(account)}'/0/0"


def parse_path(path: str) -> list[int]:
    """``"m/44'/0h/1"`` -> child indexes (hardened ones with bit 31 set)."""
    parts = path.strip().split("/")
    if not parts or parts[0] != "m":
        raise ValueError(f"a derivation path starts with 'm/': {path!r}")
    out = []
    for part in parts[1:]:
        hardened = part.endswith(("'", "h", "H"))
        num = part[:-1] if hardened else part
        if not num.isdigit() or int(num) >= HARDENED:
            raise ValueError(f"bad derivation path component {part!r} in {path!r}")
        out.append(int(num) | (HARDENED if hardened else 0))
    return out


# --- BIP32 on secp256k1 (for NIP-06) -------------------------------------------------------------------


def _hmac512(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha512).digest()


def _secp_point(k: bytes) -> bytes:
    # crypto libraries load when a key is derived, not at CLI start
    from coincurve import PrivateKey

    return PrivateKey(k).public_key.format(compressed=True)


def bip32_master(seed: bytes) -> tuple[bytes, bytes]:
    """(private key, chain code) of the BIP32 secp256k1 master node."""
    i = _hmac512(b"Bitcoin seed", seed)
    k = int.from_bytes(i[:32], "big")
    if k == 0 or k >= SECP256K1_N:  # probability ~2^-127; BIP32 says the seed is then unusable
        raise ValueError("this seed gives an invalid BIP32 master key")
    return i[:32], i[32:]


def bip32_ckd_priv(k: bytes, c: bytes, index: int) -> tuple[bytes, bytes]:
    data = (b"\x00" + k if index & HARDENED else _secp_point(k)) + index.to_bytes(4, "big")
    i = _hmac512(c, data)
    il = int.from_bytes(i[:32], "big")
    child = (il + int.from_bytes(k, "big")) % SECP256K1_N
    if il >= SECP256K1_N or child == 0:  # probability ~2^-127
        raise ValueError(f"BIP32 child {index} is invalid; use another index")
    return child.to_bytes(32, "big"), i[32:]


def bip32_derive(seed: bytes, path: str) -> tuple[bytes, bytes]:
    """(private key, chain code) at ``path`` from a BIP39 seed, secp256k1."""
    k, c = bip32_master(seed)
    for index in parse_path(path):
        k, c = bip32_ckd_priv(k, c, index)
    return k, c


# --- SLIP-0010 on ed25519 (for the catalog key) ---------------------------------------------------------


def slip10_ed25519_master(seed: bytes) -> tuple[bytes, bytes]:
    i = _hmac512(b"ed25519 seed", seed)
    return i[:32], i[32:]


def slip10_ed25519_ckd_priv(k: bytes, c: bytes, index: int) -> tuple[bytes, bytes]:
    if not index & HARDENED:
        raise ValueError("SLIP-0010 ed25519 derives hardened children only (use ' or h)")
    i = _hmac512(c, b"\x00" + k + index.to_bytes(4, "big"))
    return i[:32], i[32:]


def slip10_ed25519_derive(seed: bytes, path: str) -> tuple[bytes, bytes]:
    """(32-byte ed25519 seed/private key, chain code) at ``path``; every component must be hardened."""
    k, c = slip10_ed25519_master(seed)
    for index in parse_path(path):
        k, c = slip10_ed25519_ckd_priv(k, c, index)
    return k, c


def ed25519_public_key(seed32: bytes) -> bytes:
    # crypto libraries load when a key is derived, not at CLI start
    from nacl.signing import SigningKey

    return bytes(SigningKey(seed32).verify_key)


def expand_ed25519_seed(seed32: bytes) -> bytes:
    """libtorrent's 64-byte ed25519 secret: SHA512(seed) with RFC 8032 clamping (BEP 44 puts)."""
    if len(seed32) != 32:
        raise ValueError("an ed25519 seed is 32 bytes")
    h = bytearray(hashlib.sha512(seed32).digest())
    h[0] &= 248
    h[31] &= 63
    h[31] |= 64
    return bytes(h)


# --- key objects -----------------------------------------------------------------------------------------


class NostrKey:
    """A Nostr (secp256k1 / BIP-340) key pair; repr shows only the npub."""

    __slots__ = ("_secret", "path", "public_key")

    def __init__(self, secret: bytes, path: str | None = None) -> None:
        if len(secret) != 32 or not 0 < int.from_bytes(secret, "big") < SECP256K1_N:
            raise ValueError("a Nostr secret key is 32 bytes in 1..n-1")
        self._secret = bytes(secret)
        self.public_key: bytes = _secp_point(self._secret)[1:]  # x-only (BIP-340)
        self.path = path

    @classmethod
    def from_seed(cls, seed: bytes, account: int = 0) -> NostrKey:
        path = nostr_path(account)
        return cls(bip32_derive(seed, path)[0], path)

    @property
    def pubkey_hex(self) -> str:
        return self.public_key.hex()

    @property
    def npub(self) -> str:
        return bech32.npub_encode(self.public_key)

    # the only ways a secret leaves the object
    def secret_bytes(self) -> bytes:
        return self._secret

    def nsec(self) -> str:
        return bech32.encode("nsec", self._secret)

    def sign_schnorr(self, message32: bytes, aux_randomness: bytes | None = None) -> bytes:
        """BIP-340 signature of a 32-byte message (a Nostr event id)."""

        # crypto libraries load when a key is derived, not at CLI start
        from coincurve import PrivateKey

        if len(message32) != 32:
            raise ValueError("BIP-340 signs a 32-byte message (the event id)")
        aux = os.urandom(32) if aux_randomness is None else aux_randomness
        return PrivateKey(self._secret).sign_schnorr(message32, aux)

    @staticmethod
    def verify_schnorr(public_key: bytes, message32: bytes, signature: bytes) -> bool:
        # crypto libraries load when a key is derived, not at CLI start
        from coincurve import PublicKeyXOnly

        try:
            return PublicKeyXOnly(public_key).verify(signature, message32)
        except (ValueError, TypeError):
            return False

    def to_nostr_sdk(self) -> Any:
        """The same key as a ``nostr_sdk.Keys`` (a NostrSigner) for building and signing events."""
        try:
            # crypto libraries load when a key is derived, not at CLI start
            from nostr_sdk import Keys, SecretKey
        except ImportError as exc:  # pragma: no cover - nostr-sdk is a dependency
            raise RuntimeError("Nostr needs the nostr-sdk package: pip install 'nostr-sdk==0.45.1'") from exc
        return Keys(SecretKey.from_bytes(self._secret))

    def __repr__(self) -> str:
        return f"NostrKey(npub={self.npub!r})"

    __str__ = __repr__

    def __reduce__(self):  # keep secrets out of pickles (multiprocessing, caches) by accident
        raise TypeError("NostrKey cannot be pickled")


class CatalogKey:
    """The ed25519 catalog / BEP 44 signing key; repr shows only the public key."""

    __slots__ = ("_seed", "path", "public_key")

    def __init__(self, seed32: bytes, path: str | None = None) -> None:
        if len(seed32) != 32:
            raise ValueError("an ed25519 seed is 32 bytes")
        self._seed = bytes(seed32)
        self.public_key: bytes = ed25519_public_key(self._seed)
        self.path = path

    @classmethod
    def from_seed(cls, seed: bytes, path: str = CATALOG_PATH) -> CatalogKey:
        return cls(slip10_ed25519_derive(seed, path)[0], path)

    @property
    def public_key_hex(self) -> str:
        return self.public_key.hex()

    def sign(self, message: bytes) -> bytes:
        """64-byte ed25519 signature (PyNaCl); identical to what libtorrent makes with the expanded secret."""
        # crypto libraries load when a key is derived, not at CLI start
        from nacl.signing import SigningKey

        return SigningKey(self._seed).sign(message).signature

    @staticmethod
    def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
        # crypto libraries load when a key is derived, not at CLI start
        from nacl.exceptions import BadSignatureError
        from nacl.signing import VerifyKey

        try:
            VerifyKey(public_key).verify(message, signature)
            return True
        except (BadSignatureError, ValueError, TypeError):
            return False

    # the only ways a secret leaves the object
    def seed_bytes(self) -> bytes:
        return self._seed

    def signing_key(self) -> Any:
        # crypto libraries load when a key is derived, not at CLI start
        from nacl.signing import SigningKey

        return SigningKey(self._seed)

    def libtorrent_secret(self) -> bytes:
        """The 64-byte expanded secret for ``session.dht_put_mutable_item(secret, public_key, data, salt)``."""
        return expand_ed25519_seed(self._seed)

    def __repr__(self) -> str:
        return f"CatalogKey(public_key={self.public_key_hex!r})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("CatalogKey cannot be pickled")
