"""Weak-password heuristic and the leak detector (which the daemon-wide leak test relies on)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from silnode.identity import Identity, password_warnings
from silnode.identity.leakcheck import assert_no_leaks, find_leaks, make_canary, needles_for, selftest
from silnode.identity.password import estimate_bits, is_weak


@pytest.mark.parametrize(
    "pw,reason",
    [
        ("", "empty"),
        ("hunter2", "7 characters"),
        ("Password123!", "most common"),
        ("silnode", "most common"),
        ("aaaaaaaaaaaaaaaa", "guessable"),
        ("abcdefghijklmnop", "guessable"),
    ],
)
def test_weak_passwords_are_warned_about(pw, reason):
    warnings = password_warnings(pw)
    assert warnings and any(reason in w for w in warnings), warnings
    assert is_weak(pw)
    if pw:
        assert all(pw not in w for w in warnings)  # never echoes the password


@pytest.mark.parametrize("pw", ["correct horse battery staple", "Tr0ub4dor&3-zebra-Quilt", "x7#Kp2!qLm9@Wz4$"])
def test_strong_passwords_pass(pw):
    assert password_warnings(pw) == [] and estimate_bits(pw) >= 50


def test_selftest_finds_deliberately_leaked_canaries(tmp_path: Path):
    selftest(tmp_path / "selftest")


def test_find_leaks_locations_and_clean_tree(tmp_path: Path):
    canary = make_canary()
    tree = tmp_path / "home"
    (tree / "logs").mkdir(parents=True)
    (tree / "logs" / "daemon.log").write_text("INFO started\n")
    (tree / "state.json").write_text('{"ok": true}')
    assert find_leaks(canary, paths=[tree], texts=["stdout", b"stderr"]) == []
    assert_no_leaks(canary, paths=[tree])

    with open(tree / "logs" / "daemon.log", "a") as fh:
        fh.write(f"DEBUG body={canary!r}\n")
    with gzip.open(tree / "logs" / "daemon.log.1.gz", "wt") as gz:
        gz.write(canary)
    leaks = find_leaks(canary, paths=[tree], texts={"cli --json": f'{{"v": "{canary}"}}'})
    assert {x.where for x in leaks} == {
        str(tree / "logs" / "daemon.log"),
        f"{tree / 'logs' / 'daemon.log.1.gz'} (decompressed)",
        "text:cli --json",
    }
    assert next(x for x in leaks if x.where.endswith("daemon.log")).offset == len("INFO started\nDEBUG body='")
    with pytest.raises(AssertionError) as exc:
        assert_no_leaks(canary, paths=[tree])
    assert canary not in str(exc.value) and "daemon.log" in str(exc.value)


def test_encoded_forms_are_found(tmp_path: Path):
    raw = os.urandom(32)
    (tmp_path / "b64").write_text(__import__("base64").b64encode(raw).decode())
    (tmp_path / "hexup").write_text(raw.hex().upper())
    assert {x.where for x in find_leaks(raw, paths=[tmp_path])} == {str(tmp_path / "b64"), str(tmp_path / "hexup")}
    text = 'pass "word" with spaces/slash'
    assert find_leaks(text, texts={"json": '{"p": "pass \\"word\\" with spaces/slash"}'})
    assert find_leaks(text, texts={"url": "?p=pass+%22word%22+with+spaces%2Fslash"})


def test_identity_needles_cover_every_secret_form():
    ident = Identity("leader monkey parrot ring guide accident before fence cannon height naive bean", "pp-words")
    ident.set_secret("nwc", "nostr+walletconnect://secret-abc")
    needles = ident.leak_needles()
    for must in (
        ident.reveal_mnemonic().encode(),
        b"pp-words",
        b"nostr+walletconnect://secret-abc",
        ident.nostr.secret_bytes().hex().encode(),
        ident.nostr.nsec().encode(),
        ident.catalog.seed_bytes().hex().encode(),
        ident.catalog.libtorrent_secret().hex().encode(),
    ):
        assert must in needles
    assert not any(p in n for n in needles for p in (ident.nostr.pubkey_hex.encode(), ident.npub.encode()))


def test_symlinks_are_not_followed_and_short_needles_refused(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    canary = make_canary()
    (outside / "f").write_text(canary)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "link").symlink_to(outside / "f")
    (tree / "dirlink").symlink_to(outside, target_is_directory=True)
    assert find_leaks(canary, paths=[tree]) == []
    with pytest.raises(ValueError, match="shorter"):
        find_leaks("abc", paths=[tree])
    assert needles_for("abc") == []
