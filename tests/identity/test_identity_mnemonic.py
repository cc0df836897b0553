"""BIP39 phrases: generation and errors that name the problem (length, word, checksum) without echoing it."""

from __future__ import annotations

import json

import pytest

from silnode.errors import SilnodeError
from silnode.identity import (
    Identity,
    InvalidMnemonic,
    MnemonicChecksumError,
    MnemonicLengthError,
    MnemonicWordError,
    mnemonic,
)

PHRASE = "leader monkey parrot ring guide accident before fence cannon height naive bean"


@pytest.mark.parametrize("words", [12, 24])
def test_generate(words):
    a, b = mnemonic.generate(words), mnemonic.generate(words)
    assert len(a.split()) == words and a != b
    assert mnemonic.validate(a) == a and mnemonic.is_valid(a)


def test_generate_refuses_other_lengths():
    with pytest.raises(MnemonicLengthError, match="12 or 24"):
        mnemonic.generate(13)


@pytest.mark.parametrize("text,count", [("", 0), (" ".join(PHRASE.split()[:11]), 11), (PHRASE + " bean", 13)])
def test_wrong_length(text, count):
    with pytest.raises(MnemonicLengthError) as exc:
        mnemonic.validate(text)
    assert f"has {count} word" in str(exc.value) and "12 or 24" in str(exc.value)
    assert exc.value.code == "mnemonic_bad_length" and exc.value.status == 400


def test_other_bip39_lengths_are_accepted_on_import():
    from mnemonic import Mnemonic

    for n_bytes in (20, 24, 28):
        phrase = Mnemonic("english").to_mnemonic(bytes(range(n_bytes)))
        assert mnemonic.validate(phrase) == phrase


def test_bad_word_is_named_by_position_not_echoed():
    words = PHRASE.split()
    words[4] = "guidx"
    with pytest.raises(MnemonicWordError) as exc:
        Identity(" ".join(words))
    err = exc.value
    assert str(err) == "word 5 of 12 is not in the BIP39 English word list"
    assert err.word == "guidx" and err.details["position"] == 5
    assert "guidx" not in json.dumps(err.to_json()) and "guidx" not in repr(err.args)


def test_first_bad_word_wins_over_checksum():
    words = PHRASE.split()
    words[0], words[11] = "zzz", "qqq"
    with pytest.raises(MnemonicWordError, match="word 1 of 12"):
        mnemonic.validate(" ".join(words))


def test_bad_checksum():
    words = PHRASE.split()
    words[0], words[1] = words[1], words[0]  # all valid words, order wrong
    with pytest.raises(MnemonicChecksumError, match="checksum") as exc:
        Identity(" ".join(words))
    assert exc.value.code == "mnemonic_bad_checksum" and exc.value.hint
    assert not mnemonic.is_valid(" ".join(words))


def test_normalisation_accepts_case_and_whitespace():
    messy = "  " + PHRASE.upper().replace(" ", " \n\t ") + "\n"
    assert mnemonic.validate(messy) == PHRASE
    assert Identity(messy).same_keys(Identity(PHRASE))
    assert Identity(messy).reveal_mnemonic() == PHRASE


def test_errors_rebuild_from_the_json_envelope():
    for exc_type in (MnemonicLengthError, MnemonicWordError, MnemonicChecksumError):
        err = exc_type("msg", position=1)
        back = SilnodeError.from_json(err.to_json())
        assert type(back) is exc_type and isinstance(back, InvalidMnemonic) and back.status == 400
