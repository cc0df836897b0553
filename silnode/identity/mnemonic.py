"""BIP39 recovery phrases: generate, validate (naming what is wrong), and turn into a 64-byte seed.

Uses the reference ``mnemonic`` package (trezor/python-mnemonic) for the English word list, entropy and
PBKDF2 seed. Validation is ours so that the error says *which* problem a phrase has:

- wrong length   -> :class:`MnemonicLengthError` ("got 11 words; ...")
- unknown word   -> :class:`MnemonicWordError` naming the position ("word 5 of 12 ..."); the word itself is
  on ``exc.word`` only, never in the message, because a typo of a seed word is still most of a secret
- bad checksum   -> :class:`MnemonicChecksumError`

Input is normalised the way BIP39 does (NFKD) plus case folding and whitespace collapsing, so a phrase
pasted in capitals or across lines is accepted; :func:`normalize` returns the canonical single-spaced form
that is stored in the keystore.
"""

from __future__ import annotations

import hashlib
import unicodedata
from functools import lru_cache

from silnode.errors import InvalidMnemonic, MnemonicChecksumError, MnemonicLengthError, MnemonicWordError

WORD_COUNTS = (12, 15, 18, 21, 24)  # every length BIP39 defines; silnode generates 12 (default) or 24
GENERATE_WORD_COUNTS = (12, 24)
_STRENGTH = {12: 128, 15: 160, 18: 192, 21: 224, 24: 256}


@lru_cache(maxsize=1)
def _bip39():
    # the BIP39 word list loads only when a phrase is made or checked
    from mnemonic import Mnemonic

    return Mnemonic("english")


@lru_cache(maxsize=1)
def _index() -> dict[str, int]:
    return {w: i for i, w in enumerate(_bip39().wordlist)}


def normalize(phrase: str) -> str:
    """NFKD, lower case, single spaces: the canonical form of a phrase (not validated)."""
    return " ".join(unicodedata.normalize("NFKD", phrase).lower().split())


def generate(words: int = 12) -> str:
    """A fresh phrase of ``words`` words (12 or 24) from the OS random source."""
    if words not in GENERATE_WORD_COUNTS:
        raise MnemonicLengthError(f"a new phrase has 12 or 24 words, not {words}", words=words)
    return _bip39().generate(strength=_STRENGTH[words])


def validate(phrase: str) -> str:
    """Check a phrase and return its canonical form; raise an :class:`InvalidMnemonic` subclass naming the fault.

    The checks run in the order a user can act on: length first, then each word, then the checksum.
    """
    words = normalize(phrase).split(" ") if phrase.strip() else []
    n = len(words)
    if n not in WORD_COUNTS:
        raise MnemonicLengthError(
            f"the phrase has {n} word{'s' if n != 1 else ''}; a BIP39 phrase has 12 or 24 "
            f"(15, 18 or 21 are also accepted)",
            words=n,
        )
    index = _index()
    for pos, word in enumerate(words, 1):
        if word not in index:
            err = MnemonicWordError(f"word {pos} of {n} is not in the BIP39 English word list", position=pos, words=n)
            err.word = word
            raise err
    bits = "".join(format(index[w], "011b") for w in words)
    n_check = len(bits) // 33
    entropy = int(bits[: len(bits) - n_check], 2).to_bytes((len(bits) - n_check) // 8, "big")
    expected = format(hashlib.sha256(entropy).digest()[0], "08b")[:n_check]
    if bits[-n_check:] != expected:
        raise MnemonicChecksumError(
            f"the checksum of this {n}-word phrase does not match: a word is wrong or words are out of order", words=n
        )
    return " ".join(words)


def is_valid(phrase: str) -> bool:
    try:
        validate(phrase)
    except InvalidMnemonic:
        return False
    return True


def to_seed(phrase: str, passphrase: str = "") -> bytes:
    """The 64-byte BIP39 seed (PBKDF2-HMAC-SHA512, 2048 rounds) of a validated phrase and optional passphrase."""
    # the BIP39 word list loads only when a phrase is made or checked
    from mnemonic import Mnemonic

    return Mnemonic.to_seed(validate(phrase), passphrase or "")
