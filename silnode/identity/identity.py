"""Identity: one BIP39 phrase (+ optional passphrase), the keys it derives, and the node's named secrets.

An :class:`Identity` is what an unlocked keystore holds in memory. It shows only public parts:
``repr``/``str`` and :meth:`Identity.public_info` carry the npub, the Nostr hex pubkey and the catalog
public key; the phrase, the passphrase and secret values come out only through methods whose names say so
(``reveal_mnemonic()``, ``reveal_passphrase()``, ``get_secret()``). It cannot be pickled.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from silnode.errors import InvalidSecretName, SecretNotFound
from silnode.identity import mnemonic as bip39
from silnode.identity.keys import CATALOG_PATH, NOSTR_PATH, CatalogKey, NostrKey

SECRET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_SECRET_BYTES = 64 * 1024


def check_secret_name(name: str) -> str:
    if not isinstance(name, str) or not SECRET_NAME_RE.match(name):
        raise InvalidSecretName(
            f"invalid secret name {name!r}" if isinstance(name, str) and len(name) <= 80 else "invalid secret name"
        )
    return name


class Identity:
    __slots__ = ("_mnemonic", "_passphrase", "_secrets", "catalog", "nostr")

    def __init__(self, mnemonic: str, passphrase: str = "", secrets: dict[str, str] | None = None) -> None:
        phrase = bip39.validate(mnemonic)  # raises InvalidMnemonic naming the fault
        seed = bip39.to_seed(phrase, passphrase or "")
        self._mnemonic = phrase
        self._passphrase = passphrase or ""
        self._secrets: dict[str, str] = {}
        self.nostr = NostrKey.from_seed(seed)
        self.catalog = CatalogKey.from_seed(seed)
        for name, value in (secrets or {}).items():
            self.set_secret(name, value)

    @classmethod
    def generate(cls, words: int = 12, passphrase: str = "") -> Identity:
        return cls(bip39.generate(words), passphrase)

    @classmethod
    def from_mnemonic(cls, phrase: str, passphrase: str = "") -> Identity:
        return cls(phrase, passphrase)

    # --- public -------------------------------------------------------------------------------------
    @property
    def npub(self) -> str:
        return self.nostr.npub

    @property
    def word_count(self) -> int:
        return len(self._mnemonic.split(" "))

    def public_info(self) -> dict[str, Any]:
        """Public parts only (what `identity show` and GET /api/v1/identity return)."""
        return {
            "npub": self.nostr.npub,
            "nostr_pubkey": self.nostr.pubkey_hex,
            "catalog_pubkey": self.catalog.public_key_hex,
            "nostr_path": NOSTR_PATH,
            "catalog_path": CATALOG_PATH,
        }

    def same_keys(self, other: Identity) -> bool:
        return self.nostr.public_key == other.nostr.public_key and self.catalog.public_key == other.catalog.public_key

    def __repr__(self) -> str:
        return (
            f"Identity(npub={self.nostr.npub!r}, catalog_pubkey={self.catalog.public_key_hex!r}, "
            f"secrets={len(self._secrets)})"
        )

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("Identity cannot be pickled")

    # --- secrets (explicit) -----------------------------------------------------------------------------
    def reveal_mnemonic(self) -> str:
        return self._mnemonic

    def reveal_passphrase(self) -> str:
        return self._passphrase

    def secret_names(self) -> list[str]:
        return sorted(self._secrets)

    def get_secret(self, name: str) -> str:
        try:
            return self._secrets[check_secret_name(name)]
        except KeyError:
            raise SecretNotFound(f"no secret named {name!r}", name=name) from None

    def set_secret(self, name: str, value: str) -> None:
        check_secret_name(name)
        if not isinstance(value, str):
            raise TypeError("a secret value is a str")
        if len(value.encode()) > MAX_SECRET_BYTES:
            raise InvalidSecretName(f"secret {name!r} is larger than {MAX_SECRET_BYTES} bytes", name=name)
        self._secrets[name] = value

    def remove_secret(self, name: str) -> None:
        self.get_secret(name)
        del self._secrets[name]

    # --- for the keystore and leak tests ---------------------------------------------------------------
    def to_payload(self) -> dict[str, Any]:
        return {"mnemonic": self._mnemonic, "passphrase": self._passphrase, "secrets": dict(self._secrets)}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Identity:
        return cls(payload["mnemonic"], payload.get("passphrase", ""), payload.get("secrets") or {})

    def leak_needles(self, min_len: int = 8) -> list[bytes]:
        """Every secret of this identity in the encodings it could leak as (for leak tests to grep for).

        The phrase, the passphrase and each secret value as UTF-8; the Nostr secret as hex and nsec; the
        catalog seed and libtorrent's expanded secret as hex and base64. Needles shorter than ``min_len``
        bytes are dropped (they would match by chance).
        """
        raw_keys = [self.nostr.secret_bytes(), self.catalog.seed_bytes(), self.catalog.libtorrent_secret()]
        texts = [self._mnemonic, self._passphrase, *self._secrets.values(), self.nostr.nsec()]
        needles: list[bytes] = [t.encode() for t in texts]
        for raw in raw_keys:
            needles += [
                raw.hex().encode(),
                raw.hex().upper().encode(),
                base64.b64encode(raw),
                base64.urlsafe_b64encode(raw).rstrip(b"="),
                raw,
            ]
        seen: list[bytes] = []
        for n in needles:
            if len(n) >= min_len and n not in seen:
                seen.append(n)
        return seen
