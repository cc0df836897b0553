"""One BIP39 identity for the node: Nostr key (NIP-06), catalog key (SLIP-0010 ed25519), encrypted keystore.

    from silnode.identity import Identity, Keystore
    ks = Keystore.for_config(config)                       # SILNODE_HOME/identity.enc
    ident = ks.create(mnemonic.generate(12), "", password)  # or Identity.generate() + ks.save(ident, password)
    ident = ks.unlock(password)                             # WrongPassword / KeystoreCorrupt / IdentityNotFound
    ident.public_info()        # {"npub", "nostr_pubkey", "catalog_pubkey", "nostr_path", "catalog_path"}
    ident.nostr.to_nostr_sdk() # nostr_sdk.Keys for events;  ident.catalog.sign(msg) / .libtorrent_secret()

Paths: Nostr ``m/44'/1237'/0'/0/0`` (NIP-06); catalog ``m/7564398'/0'/0'`` (SLIP-0010 ed25519; why: keys.py).
"""

from silnode.errors import (
    IdentityExists,
    IdentityNotFound,
    InvalidMnemonic,
    InvalidSecretName,
    KeystoreCorrupt,
    KeystoreError,
    KeystoreVersionError,
    MnemonicChecksumError,
    MnemonicLengthError,
    MnemonicWordError,
    SecretNotFound,
    WrongPassword,
)
from silnode.identity import mnemonic
from silnode.identity.identity import Identity
from silnode.identity.keys import CATALOG_PATH, NOSTR_PATH, CatalogKey, NostrKey, expand_ed25519_seed
from silnode.identity.keystore import ANCHOR_KDF, DEFAULT_KDF, FAST_TEST_KDF, KdfParams, Keystore
from silnode.identity.password import password_warnings

__all__ = [
    "ANCHOR_KDF",
    "CATALOG_PATH",
    "DEFAULT_KDF",
    "FAST_TEST_KDF",
    "NOSTR_PATH",
    "CatalogKey",
    "Identity",
    "IdentityExists",
    "IdentityNotFound",
    "InvalidMnemonic",
    "InvalidSecretName",
    "KdfParams",
    "Keystore",
    "KeystoreCorrupt",
    "KeystoreError",
    "KeystoreVersionError",
    "MnemonicChecksumError",
    "MnemonicLengthError",
    "MnemonicWordError",
    "NostrKey",
    "SecretNotFound",
    "WrongPassword",
    "expand_ed25519_seed",
    "mnemonic",
    "password_warnings",
]
