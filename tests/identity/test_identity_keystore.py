"""The encrypted keystore: round trip, wrong password, damage, format checks, permissions, secrets, leaks."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import stat
import struct
import threading
from pathlib import Path

import pytest

from silnode.config import load_config
from silnode.errors import SilnodeError
from silnode.identity import (
    DEFAULT_KDF,
    FAST_TEST_KDF,
    Identity,
    IdentityExists,
    IdentityNotFound,
    InvalidSecretName,
    KdfParams,
    Keystore,
    KeystoreCorrupt,
    KeystoreVersionError,
    SecretNotFound,
    WrongPassword,
)
from silnode.identity.keystore import MAGIC
from silnode.identity.leakcheck import find_leaks, make_canary

PHRASE = "leader monkey parrot ring guide accident before fence cannon height naive bean"
NPUB = "npub1zutzeysacnf9rru6zqwmxd54mud0k44tst6l70ja5mhv8jjumytsd2x7nu"
PW = "correct horse battery staple"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "silnode-home"


@pytest.fixture
def ks(home: Path) -> Keystore:
    return Keystore.for_home(home, kdf=FAST_TEST_KDF)


def _rewrite(path: Path, mutate) -> None:
    """Apply ``mutate(bytearray)`` to the file body and fix the trailing SHA-256 (a deliberate edit)."""
    body = bytearray(path.read_bytes()[:-32])
    mutate(body)
    path.write_bytes(bytes(body) + hashlib.sha256(bytes(body)).digest())


def _header(path: Path) -> tuple[int, dict]:
    data = path.read_bytes()
    _m, _v, hlen = struct.unpack_from(">8sBI", data)
    return hlen, json.loads(data[13 : 13 + hlen])


# --- round trip -----------------------------------------------------------------------------------------


def test_round_trip(ks: Keystore, home: Path):
    created = ks.create(PHRASE, "bip39 pass", PW)
    ks.set_secret(PW, "lnbits-key", "s3cr3t-value")
    back = ks.unlock(PW)
    assert back.same_keys(created) and back.public_info() == created.public_info()
    assert back.reveal_mnemonic() == PHRASE and back.reveal_passphrase() == "bip39 pass"
    assert back.get_secret("lnbits-key") == "s3cr3t-value"
    assert ks.path == home / "identity.enc" and ks.path.read_bytes().startswith(MAGIC)


def test_save_generated_identity_and_public_info_without_password(ks: Keystore):
    ident = Identity.generate(24)
    ks.save(ident, PW)
    assert ks.read_public_info() == ident.public_info()
    assert set(ident.public_info()) == {"npub", "nostr_pubkey", "catalog_pubkey", "nostr_path", "catalog_path"}
    assert ks.unlock(PW).word_count == 24


def test_kdf_params_are_stored_and_read_from_the_file(ks: Keystore, home: Path):
    ks.create(PHRASE, "", PW)
    _, header = _header(ks.path)
    assert header["kdf"] == {
        "name": "argon2id",
        "version": 19,
        "time_cost": 1,
        "memory_cost": 8,
        "parallelism": 1,
        "salt": header["kdf"]["salt"],
    }
    # a reader configured with other params still opens it (params come from the file)
    assert Keystore.for_home(home, kdf=KdfParams(2, 64, 2)).unlock(PW).npub == NPUB


def test_default_kdf_is_strong_and_tests_pass_fast_params_explicitly(home: Path):
    assert Keystore(home / "x.enc").kdf == DEFAULT_KDF
    assert (DEFAULT_KDF.time_cost, DEFAULT_KDF.memory_cost, DEFAULT_KDF.parallelism) == (3, 128 * 1024, 4)
    assert DEFAULT_KDF != FAST_TEST_KDF


def test_fresh_salt_and_nonce_on_every_write(ks: Keystore):
    ident = ks.create(PHRASE, "", PW)
    first = ks.path.read_bytes()
    _, h1 = _header(ks.path)
    ks.save(ident, PW)
    _, h2 = _header(ks.path)
    assert h1["kdf"]["salt"] != h2["kdf"]["salt"] and h1["cipher"]["nonce"] != h2["cipher"]["nonce"]
    assert first[-64:] != ks.path.read_bytes()[-64:]


def test_change_password(ks: Keystore, home: Path):
    ks.create(PHRASE, "", PW)
    ks.change_password(PW, "a new long password 42")
    with pytest.raises(WrongPassword):
        ks.unlock(PW)
    assert ks.unlock("a new long password 42").npub == NPUB
    assert not ks.backup_path.exists()  # no copy left that the old password still opens
    with pytest.raises(WrongPassword):
        ks.change_password(PW, "whatever")


def test_config_home_gives_the_keystore_path(home: Path):
    cfg = load_config(home=home)
    assert Keystore.for_config(cfg).path == home / "identity.enc"


# --- errors -------------------------------------------------------------------------------------------


def test_missing_file(ks: Keystore):
    with pytest.raises(IdentityNotFound, match="does not exist") as exc:
        ks.unlock(PW)
    assert exc.value.hint and "identity new" in exc.value.hint


def test_wrong_password_is_one_clear_line(ks: Keystore):
    ks.create(PHRASE, "", PW)
    with pytest.raises(WrongPassword) as exc:
        ks.unlock("not the password")
    msg = str(exc.value)
    assert msg == f"wrong password for keystore {ks.path}" and "\n" not in msg
    assert exc.value.status == 401 and exc.value.code == "wrong_password"
    assert exc.value.__cause__ is None and exc.value.__suppress_context__
    assert type(SilnodeError.from_json(exc.value.to_json())) is WrongPassword


def test_password_unicode_forms_are_the_same_password(ks: Keystore):
    ks.create(PHRASE, "", "caf\u00e9 au lait, s'il vous plaît")
    assert ks.unlock("cafe\u0301 au lait, s'il vous plaît").npub == NPUB  # NFD typed, NFC stored


def test_flipped_ciphertext_byte_is_reported_as_corruption(ks: Keystore):
    ks.create(PHRASE, "", PW)
    data = bytearray(ks.path.read_bytes())
    data[-40] ^= 0x01  # inside the ciphertext, trailer not fixed: accidental damage
    ks.path.write_bytes(bytes(data))
    with pytest.raises(KeystoreCorrupt, match="checksum") as exc:
        ks.unlock(PW)
    assert str(ks.path) in str(exc.value) and "\n" not in str(exc.value)


def test_tampered_ciphertext_with_fixed_checksum_never_opens(ks: Keystore):
    ks.create(PHRASE, "", PW)
    _rewrite(ks.path, lambda b: b.__setitem__(len(b) - 5, b[len(b) - 5] ^ 0x80))
    with pytest.raises(WrongPassword):  # Poly1305 rejects it; no edited identity comes back
        ks.unlock(PW)


def test_tampered_header_public_keys_are_caught(ks: Keystore):
    ks.create(PHRASE, "", PW)
    other = Identity.generate().public_info()

    def swap(body: bytearray) -> None:
        hlen = struct.unpack_from(">I", body, 9)[0]
        header = json.loads(bytes(body[13 : 13 + hlen]))
        header["public"] = other
        new = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        body[9:13] = struct.pack(">I", len(new))
        body[13 : 13 + hlen] = new

    _rewrite(ks.path, swap)
    assert ks.read_public_info() == other  # the unverified cache shows it...
    with pytest.raises(KeystoreCorrupt, match="header does not match"):  # ...unlock does not accept it
        ks.unlock(PW)


@pytest.mark.parametrize("keep", [0, 5, 12, 40, "half", -1])
def test_truncated_file(ks: Keystore, keep):
    ks.create(PHRASE, "", PW)
    data = ks.path.read_bytes()
    cut = {"half": len(data) // 2, -1: len(data) - 1}.get(keep, keep)
    ks.path.write_bytes(data[:cut])
    with pytest.raises(KeystoreCorrupt) as exc:
        ks.unlock(PW)
    assert str(ks.path) in str(exc.value) and ("truncated" in str(exc.value) or "magic" in str(exc.value))
    # never a silent new identity: the damaged file stays, and create refuses without --force
    with pytest.raises(IdentityExists):
        ks.create(mnemonic_phrase(), "", PW)
    assert ks.path.read_bytes() == data[:cut]


def mnemonic_phrase() -> str:
    from silnode.identity import mnemonic

    return mnemonic.generate(12)


def test_bad_magic(ks: Keystore):
    ks.create(PHRASE, "", PW)
    data = ks.path.read_bytes()
    ks.path.write_bytes(b"NOTSILNK" + data[8:])
    with pytest.raises(KeystoreCorrupt, match="bad magic"):
        ks.unlock(PW)
    ks.path.write_text("mnemonic = leader monkey ...\n")
    with pytest.raises(KeystoreCorrupt, match="not a silnode keystore"):
        ks.header()


def test_newer_format_version(ks: Keystore):
    ks.create(PHRASE, "", PW)
    _rewrite(ks.path, lambda b: b.__setitem__(8, 2))
    with pytest.raises(KeystoreVersionError, match="format version 2") as exc:
        ks.unlock(PW)
    assert "upgrade" in exc.value.hint


def test_version_zero_is_corrupt(ks: Keystore):
    ks.create(PHRASE, "", PW)
    _rewrite(ks.path, lambda b: b.__setitem__(8, 0))
    with pytest.raises(KeystoreCorrupt, match="version 0"):
        ks.unlock(PW)


def test_hostile_kdf_params_are_refused_before_hashing(ks: Keystore):
    ks.create(PHRASE, "", PW)

    def huge(body: bytearray) -> None:
        hlen = struct.unpack_from(">I", body, 9)[0]
        old = bytes(body[13 : 13 + hlen])
        new = old.replace(b'"memory_cost":8', b'"memory_cost":1073741824')
        body[9:13] = struct.pack(">I", len(new))
        body[13 : 13 + hlen] = new

    _rewrite(ks.path, huge)
    with pytest.raises(KeystoreCorrupt, match="out of range"):
        ks.unlock(PW)


def test_header_that_is_not_json(ks: Keystore):
    ks.create(PHRASE, "", PW)
    _rewrite(ks.path, lambda b: b.__setitem__(13, ord("!")))
    with pytest.raises(KeystoreCorrupt, match="unreadable header"):
        ks.unlock(PW)


def test_directory_instead_of_file(ks: Keystore):
    ks.path.mkdir(parents=True)
    with pytest.raises(SilnodeError, match="directory"):
        ks.unlock(PW)


# --- replacing --------------------------------------------------------------------------------------------


def test_create_refuses_to_overwrite_and_force_keeps_backups(ks: Keystore):
    ks.create(PHRASE, "", PW)
    first = ks.path.read_bytes()
    with pytest.raises(IdentityExists, match="already exists"):
        ks.create(mnemonic_phrase(), "", PW)
    assert ks.path.read_bytes() == first
    second = ks.create(mnemonic_phrase(), "", PW, force=True)
    assert ks.last_backup == ks.backup_path and ks.backup_path.read_bytes() == first
    assert ks.unlock(PW).same_keys(second)
    ks.create(mnemonic_phrase(), "", PW, force=True)
    assert ks.last_backup == ks.backup_path.with_name("identity.enc.bak.1")
    assert ks.backup_path.read_bytes() == first  # a backup is never overwritten
    assert Keystore(ks.backup_path, kdf=FAST_TEST_KDF).unlock(PW).npub == NPUB


def test_force_over_a_corrupt_file_backs_it_up(ks: Keystore):
    ks.path.parent.mkdir(parents=True)
    ks.path.write_bytes(b"garbage")
    ks.create(PHRASE, "", PW, force=True)
    assert ks.backup_path.read_bytes() == b"garbage" and ks.unlock(PW).npub == NPUB


def test_save_refuses_another_identity_without_force(ks: Keystore):
    ks.create(PHRASE, "", PW)
    other = Identity.generate()
    with pytest.raises(IdentityExists, match="another identity"):
        ks.save(other, PW)
    ks.save(other, PW, force=True)
    assert ks.unlock(PW).same_keys(other) and ks.backup_path.exists()


# --- permissions ------------------------------------------------------------------------------------------


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_permissions(ks: Keystore, home: Path):
    old = os.umask(0)
    try:
        ks.create(PHRASE, "", PW)
        ks.create(PHRASE, "", PW, force=True)
    finally:
        os.umask(old)
    assert _mode(home) == 0o700 and _mode(ks.path) == 0o600 and _mode(ks.backup_path) == 0o600
    assert sorted(p.name for p in home.iterdir()) == [".identity.enc.lock", "identity.enc", "identity.enc.bak"]


def test_existing_open_home_is_narrowed(ks: Keystore, home: Path):
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    ks.create(PHRASE, "", PW)
    assert _mode(home) == 0o700


def test_loose_file_mode_is_warned_about(ks: Keystore, caplog: pytest.LogCaptureFixture):
    ks.create(PHRASE, "", PW)
    os.chmod(ks.path, 0o644)
    with caplog.at_level(logging.WARNING, logger="silnode.identity"):
        ks.unlock(PW)
    assert "readable by other users" in caplog.text


# --- secrets ----------------------------------------------------------------------------------------------


def test_secrets_set_list_rm(ks: Keystore):
    ks.create(PHRASE, "", PW)
    ks.set_secret(PW, "nwc-uri", "nostr+walletconnect://abc?secret=xyz123456")
    ks.set_secret(PW, "cashu.mint-token", "cashuAey1234567890")
    names = ks.list_secrets(PW)
    assert names == ["cashu.mint-token", "nwc-uri"] and all(isinstance(n, str) for n in names)
    ks.set_secret(PW, "nwc-uri", "replaced-value-000")
    assert ks.unlock(PW).get_secret("nwc-uri") == "replaced-value-000"
    ks.rm_secret(PW, "nwc-uri")
    assert ks.list_secrets(PW) == ["cashu.mint-token"]
    with pytest.raises(SecretNotFound, match="nwc-uri"):
        ks.rm_secret(PW, "nwc-uri")
    with pytest.raises(WrongPassword):
        ks.set_secret("bad", "x", "y")
    assert ks.list_secrets(PW) == ["cashu.mint-token"]


@pytest.mark.parametrize("name", ["", "-lead", "has space", "a/b", "x" * 65, "é"])
def test_bad_secret_names(ks: Keystore, name):
    ks.create(PHRASE, "", PW)
    with pytest.raises(InvalidSecretName):
        ks.set_secret(PW, name, "value-1234")


def test_concurrent_secret_writes_are_not_lost(ks: Keystore):
    ks.create(PHRASE, "", PW)
    errors: list[BaseException] = []

    def put(i: int) -> None:
        try:
            ks.set_secret(PW, f"k{i}", f"value-{i:04d}")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and ks.list_secrets(PW) == sorted(f"k{i}" for i in range(8))


# --- nothing leaks ---------------------------------------------------------------------------------------


def test_repr_str_public_info_and_errors_leak_nothing(ks: Keystore):
    canary = make_canary()
    ident = ks.create(PHRASE, "my bip39 passphrase", PW)
    ks.set_secret(PW, "canary", canary)
    ident = ks.unlock(PW)
    texts = {
        "repr": repr(ident),
        "str": str(ident),
        "nostr": repr(ident.nostr),
        "catalog": repr(ident.catalog),
        "keystore": repr(ks),
        "public_info": json.dumps(ident.public_info()),
        "header": json.dumps(ks.header()),
    }
    for bad in ("wrong", ""):
        try:
            ks.unlock(bad)
        except WrongPassword as exc:
            texts[f"err-{bad}"] = f"{exc} {exc.to_json()} {exc.args}"
    assert find_leaks([ident, canary, PW], texts=texts) == []
    assert ident.npub in texts["repr"] and "secrets=1" in texts["repr"]
    for obj in (ident, ident.nostr, ident.catalog):
        with pytest.raises(TypeError):
            pickle.dumps(obj)


def test_keystore_file_and_home_hold_no_plaintext_and_logs_stay_clean(
    ks: Keystore, home: Path, caplog: pytest.LogCaptureFixture, tmp_path: Path
):
    canary = make_canary()
    with caplog.at_level(logging.DEBUG):
        ks.create(PHRASE, "bip39-passphrase-xyz", PW)
        ks.set_secret(PW, "canary", canary)
        ks.change_password(PW, PW + "!")
        with_canary = ks.unlock(PW + "!")
        ks.create(PHRASE, "bip39-passphrase-xyz", PW, force=True)
        with pytest.raises(WrongPassword):
            ks.unlock("nope")
        ident = ks.unlock(PW)
    assert find_leaks([ident, canary, PW], paths=[home], texts={"log": caplog.text}) == []
    assert "unlocked keystore" in caplog.text  # DEBUG logging was on and captured
    # the grep works: a deliberately leaked plaintext copy of the payload is found
    leaked = tmp_path / "leaked-copy"
    leaked.mkdir()
    (leaked / "payload.json").write_text(json.dumps(with_canary.to_payload()))
    where = {x.where for x in find_leaks([canary], paths=[home, leaked])}
    assert where == {str(leaked / "payload.json")}
    assert find_leaks([ident], paths=[leaked])  # phrase and passphrase found too
