"""Identity errors, part of the one error tree in :mod:`silnode.errors`.

    SilnodeError
    ├── BadRequest
    │   ├── InvalidMnemonic               400 invalid_mnemonic
    │   │   ├── MnemonicLengthError       400 mnemonic_bad_length
    │   │   ├── MnemonicWordError         400 mnemonic_bad_word
    │   │   └── MnemonicChecksumError     400 mnemonic_bad_checksum
    │   └── InvalidSecretName             400 invalid_secret_name
    ├── Unauthorized
    │   └── WrongPassword                 401 wrong_password
    ├── NotFound
    │   ├── IdentityNotFound              404 no_identity
    │   └── SecretNotFound                404 secret_not_found
    ├── Conflict
    │   └── IdentityExists                409 identity_exists
    └── KeystoreError                     500 keystore_error
        ├── KeystoreCorrupt               500 keystore_corrupt
        └── KeystoreVersionError          500 keystore_version

No message here ever carries a secret: a bad mnemonic word is named by its position (the word itself is
kept on the exception as ``.word`` for an interactive prompt that wants to echo it, never in ``str()`` or
``to_json()``), and keystore errors name the file, not its contents.
"""

from __future__ import annotations

from silnode.errors import BadRequest, Conflict, NotFound, SilnodeError, Unauthorized


class InvalidMnemonic(BadRequest):
    code = "invalid_mnemonic"
    hint = "check the words against your written backup; a BIP39 phrase has 12 or 24 words (15, 18, 21 also valid)"


class MnemonicLengthError(InvalidMnemonic):
    code = "mnemonic_bad_length"


class MnemonicWordError(InvalidMnemonic):
    code = "mnemonic_bad_word"
    word: str | None = None  # the offending word; deliberately not part of the message


class MnemonicChecksumError(InvalidMnemonic):
    code = "mnemonic_bad_checksum"
    hint = "every word is a BIP39 word, so one is probably wrong (a similar word) or two are swapped"


class InvalidSecretName(BadRequest):
    code = "invalid_secret_name"
    hint = "secret names use letters, digits, '.', '_', '-' (1-64 characters)"


class WrongPassword(Unauthorized):
    code = "wrong_password"
    hint = "the keystore password is set by `silnode identity new/import` (SILNODE_PASSWORD, --password-file)"


class IdentityNotFound(NotFound):
    code = "no_identity"
    hint = "create one with `silnode identity new` or restore one with `silnode identity import`"


class SecretNotFound(NotFound):
    code = "secret_not_found"
    hint = "`silnode secrets list` shows the names"


class IdentityExists(Conflict):
    code = "identity_exists"
    hint = "--force keeps a backup of the old keystore (identity.enc.bak) and writes the new one"


class KeystoreError(SilnodeError):
    code = "keystore_error"


class KeystoreCorrupt(KeystoreError):
    code = "keystore_corrupt"
    hint = ("the keystore file is damaged; restore it from a backup (identity.enc.bak) or re-import the "
            "phrase with `silnode identity import --force`")


class KeystoreVersionError(KeystoreError):
    code = "keystore_version"
    hint = "this keystore was written by a newer silnode; upgrade silnode to read it"
