"""The encrypted keystore ``SILNODE_HOME/identity.enc``: the phrase, the BIP39 passphrase and named secrets.

File format (version 1), every integer big-endian::

    offset  size  field
    0       8     magic  b"SILNODEK"
    8       1     format version (1)
    9       4     header length H
    13      H     header, UTF-8 JSON (public):
                    {"kdf":    {"name": "argon2id", "version": 19, "time_cost": t, "memory_cost": m_kib,
                                "parallelism": p, "salt": b64(16 bytes)},
                     "cipher": {"name": "xsalsa20-poly1305", "nonce": b64(24 bytes)},
                     "public": {npub, nostr_pubkey, catalog_pubkey, nostr_path, catalog_path},
                     "written_at": ISO-8601 UTC}
    13+H    C     PyNaCl SecretBox ciphertext (16-byte Poly1305 tag + encrypted UTF-8 JSON payload
                  {"format": 1, "header_sha256": hex, "mnemonic", "passphrase", "secrets": {name: value}})
    end-32  32    SHA-256 of every byte before it

Key = Argon2id(password NFC-normalised, salt, params from the header) via argon2-cffi ``hash_secret_raw``.
A fresh salt and nonce are drawn on every write. The payload carries the header's SHA-256, so a header edited
to show other public keys is caught on unlock. The trailing SHA-256 is not a security MAC (anyone can
recompute it): it separates *damage* (truncation, a flipped bit -> :class:`KeystoreCorrupt` naming the file)
from a *wrong password* (:class:`WrongPassword`), which SecretBox alone cannot tell apart. A damaged file is
never replaced by a new identity: only ``create(..., force=True)`` overwrites, after copying the old file
to ``identity.enc.bak`` (then ``.bak.1``, ``.bak.2``, ...; a backup is never overwritten).

The public block lets ``identity show`` print the npub without the password; it is a cache, verified
against the keys derived from the phrase on every unlock.

Argon2id parameters (:data:`DEFAULT_KDF`): t=3, m=128 MiB, p=4 — RFC 9106's second recommended setting
(t=3, m=64 MiB, p=4) with the memory doubled. ~0.19 s per unlock on the 2-core dev machine, ~10x the time
and 6.7x the memory per guess of the t=2, m=19 MiB, p=1 that mesh-llm and OpenAgents use (argon2 crate /
OWASP minimum); see bench/identity_unlock.py. Params are stored per file, so raising them later only needs a
rewrite (change_password re-encrypts with the keystore's current params). Tests pass fast params
explicitly (``Keystore(path, kdf=FAST_TEST_KDF)``); the default is never weakened.

File 0600, its directory 0700, written tmp -> fsync -> rename (:func:`silnode.fsutil.atomic_write_bytes`);
read-modify-write operations hold an ``flock`` on ``.identity.enc.lock`` beside it.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import logging
import os
import stat
import struct
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from silnode.errors import (
    IdentityExists,
    IdentityNotFound,
    InvalidMnemonic,
    InvalidSecretName,
    KeystoreCorrupt,
    KeystoreError,
    KeystoreVersionError,
    WrongPassword,
)
from silnode.fsutil import atomic_write_bytes
from silnode.identity.identity import Identity

log = logging.getLogger(__name__)

FILENAME = "identity.enc"
MAGIC = b"SILNODEK"
FORMAT_VERSION = 1
_PREFIX = struct.Struct(">8sBI")  # magic, version, header length
_CHECKSUM_LEN = 32
_MAX_HEADER = 64 * 1024
SALT_LEN = 16
KEY_LEN = 32  # nacl.secret.SecretBox.KEY_SIZE
NONCE_LEN = 24  # nacl.secret.SecretBox.NONCE_SIZE
ARGON2_VERSION = 19  # 0x13


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost: ``time_cost`` passes over ``memory_cost`` KiB in ``parallelism`` lanes."""

    time_cost: int = 3
    memory_cost: int = 128 * 1024  # KiB
    parallelism: int = 4

    def check(self) -> KdfParams:
        """Bounds for params read from a file: a damaged or hostile header must not ask for 100 GiB."""
        if not (
            1 <= self.time_cost <= 64
            and 1 <= self.parallelism <= 64
            and 8 * self.parallelism <= self.memory_cost <= 4 * 1024 * 1024
        ):
            raise ValueError(f"Argon2id parameters out of range: {self}")
        return self

    def derive(self, password: str | bytes, salt: bytes) -> bytes:
        # crypto libraries load when a keystore is opened, not at CLI start
        from argon2.low_level import Type, hash_secret_raw

        return hash_secret_raw(
            secret=_password_bytes(password),
            salt=salt,
            time_cost=self.time_cost,
            memory_cost=self.memory_cost,
            parallelism=self.parallelism,
            hash_len=KEY_LEN,
            type=Type.ID,
            version=ARGON2_VERSION,
        )


DEFAULT_KDF = KdfParams()
# what mesh-llm's keystore and OpenAgents' secure_store use (argon2 crate defaults = OWASP minimum)
ANCHOR_KDF = KdfParams(time_cost=2, memory_cost=19456, parallelism=1)
# for tests only: ~0.1 ms; pass it explicitly, never as a default
FAST_TEST_KDF = KdfParams(time_cost=1, memory_cost=8, parallelism=1)


def _password_bytes(password: str | bytes) -> bytes:
    if isinstance(password, bytes):
        return password
    if not isinstance(password, str):
        raise TypeError("the password is a str")
    return unicodedata.normalize("NFC", password).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, length: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(str(text), validate=True)
    except ValueError:
        raise ValueError(f"{what} is not base64") from None
    if len(raw) != length:
        raise ValueError(f"{what} has {len(raw)} bytes, expected {length}")
    return raw


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` as 0700, or narrow it to 0700 when it exists with group/other bits."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if stat.S_IMODE(st.st_mode) & 0o077 and st.st_uid == os.getuid():
        os.chmod(path, 0o700)


class Keystore:
    """``SILNODE_HOME/identity.enc``. Every method that touches secrets takes the password."""

    def __init__(self, path: str | os.PathLike[str], kdf: KdfParams = DEFAULT_KDF) -> None:
        self.path = Path(path)
        self.kdf = kdf.check()
        self.last_backup: Path | None = None  # set when create/save(force=True) moved an old file aside

    @classmethod
    def for_home(cls, home: str | os.PathLike[str], kdf: KdfParams = DEFAULT_KDF) -> Keystore:
        return cls(Path(home) / FILENAME, kdf)

    @classmethod
    def for_config(cls, config: Any, kdf: KdfParams = DEFAULT_KDF) -> Keystore:
        return cls.for_home(config.home, kdf)

    @property
    def backup_path(self) -> Path:
        return self.path.with_name(self.path.name + ".bak")

    def exists(self) -> bool:
        return self.path.exists()

    def __repr__(self) -> str:
        return f"Keystore({str(self.path)!r})"

    # --- writing --------------------------------------------------------------------------------------
    def create(self, mnemonic: str, passphrase: str, password: str, *, force: bool = False) -> Identity:
        """Write a new keystore for ``mnemonic`` (+ BIP39 ``passphrase``); refuse to replace one unless ``force``.

        With ``force`` an existing file (readable or not) is first copied to ``identity.enc.bak``
        (``.bak.N`` when that exists) and :attr:`last_backup` names it.
        """
        identity = Identity(mnemonic, passphrase)
        with self._locked():
            if self.exists() and not force:
                raise IdentityExists(f"an identity already exists at {self.path}", path=str(self.path))
            self._write(identity, password, backup=self.exists())
        return identity

    def save(self, identity: Identity, password: str, *, force: bool = False) -> None:
        """Encrypt ``identity`` with ``password`` (fresh salt and nonce) and replace the file atomically.

        Replacing a file that holds a *different* identity, or one that cannot be read, needs ``force`` and
        keeps a backup, as :meth:`create` does. Rewriting the same identity keeps no backup: after a password
        change the old copy would still open with the old password.
        """
        with self._locked():
            self._save_locked(identity, password, force=force)

    def change_password(self, old: str, new: str) -> None:
        with self._locked():
            identity = self._unlock(old)
            self._write(identity, new, backup=False)

    def set_secret(self, password: str, name: str, value: str) -> None:
        with self._locked():
            identity = self._unlock(password)
            identity.set_secret(name, value)
            self._write(identity, password, backup=False)

    def rm_secret(self, password: str, name: str) -> None:
        with self._locked():
            identity = self._unlock(password)
            identity.remove_secret(name)
            self._write(identity, password, backup=False)

    def list_secrets(self, password: str) -> list[str]:
        """Names of the stored secrets, sorted; never their values."""
        return self.unlock(password).secret_names()

    # --- reading --------------------------------------------------------------------------------------
    def unlock(self, password: str) -> Identity:
        """Decrypt and return the identity. Raises IdentityNotFound, WrongPassword, KeystoreCorrupt,
        KeystoreVersionError — each a one-line message naming the file."""
        return self._unlock(password)

    def header(self) -> dict[str, Any]:
        """The public header (KDF params, public keys, write time) without the password."""
        return self._parse(self._read())[0]

    def read_public_info(self) -> dict[str, Any]:
        """Public keys from the header, without the password. Checked against the phrase on every unlock,
        but not here: treat them as a display cache."""
        public = self.header().get("public")
        if not isinstance(public, dict):
            raise self._corrupt("the header has no public block")
        return dict(public)

    # --- internals ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        ensure_private_dir(self.path.parent)
        lock = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _save_locked(self, identity: Identity, password: str, *, force: bool) -> None:
        backup = False
        if self.exists():
            try:
                public = self.read_public_info()
                same = (
                    public.get("nostr_pubkey") == identity.nostr.pubkey_hex
                    and public.get("catalog_pubkey") == identity.catalog.public_key_hex
                )
            except KeystoreError:
                same = False
            if not same:
                if not force:
                    raise IdentityExists(
                        f"{self.path} holds another identity (or cannot be read); not replacing it", path=str(self.path)
                    )
                backup = True
        self._write(identity, password, backup=backup)

    def _next_backup(self) -> Path:
        candidate, n = self.backup_path, 0
        while candidate.exists() or candidate.is_symlink():
            n += 1
            candidate = self.backup_path.with_name(f"{self.backup_path.name}.{n}")
        return candidate

    def _write(self, identity: Identity, password: str, *, backup: bool) -> None:
        # crypto libraries load when a keystore is opened, not at CLI start
        import nacl.secret
        import nacl.utils

        ensure_private_dir(self.path.parent)
        if backup and self.exists():
            target = self._next_backup()
            atomic_write_bytes(target, self.path.read_bytes(), mode=0o600)
            self.last_backup = target
            log.info("previous keystore kept as %s", target)
        salt = nacl.utils.random(SALT_LEN)
        nonce = nacl.utils.random(NONCE_LEN)
        header = {
            "kdf": {"name": "argon2id", "version": ARGON2_VERSION, **asdict(self.kdf), "salt": _b64(salt)},
            "cipher": {"name": "xsalsa20-poly1305", "nonce": _b64(nonce)},
            "public": identity.public_info(),
            "written_at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        }
        header_bytes = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        payload = {
            "format": FORMAT_VERSION,
            "header_sha256": hashlib.sha256(header_bytes).hexdigest(),
            **identity.to_payload(),
        }
        key = self.kdf.derive(password, salt)
        ciphertext = nacl.secret.SecretBox(key).encrypt(json.dumps(payload).encode(), nonce).ciphertext
        body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_bytes)) + header_bytes + ciphertext
        atomic_write_bytes(self.path, body + hashlib.sha256(body).digest(), mode=0o600)

    def _corrupt(self, reason: str) -> KeystoreCorrupt:
        return KeystoreCorrupt(f"keystore {self.path} is corrupted: {reason}", path=str(self.path))

    def _read(self) -> bytes:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise IdentityNotFound(f"no identity: {self.path} does not exist", path=str(self.path)) from None
        except IsADirectoryError:
            raise KeystoreError(f"cannot read keystore {self.path}: it is a directory", path=str(self.path)) from None
        except OSError as exc:
            raise KeystoreError(f"cannot read keystore {self.path}: {exc.strerror}", path=str(self.path)) from None
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            log.warning(
                "keystore %s is readable by other users (mode %o); run: chmod 600 %s", self.path, mode, self.path
            )
        return data

    def _parse(self, data: bytes) -> tuple[dict[str, Any], bytes, bytes]:
        """-> (header dict, header bytes, ciphertext); every failure is a KeystoreCorrupt/VersionError."""
        if len(data) < len(MAGIC):
            raise self._corrupt(f"truncated ({len(data)} bytes)")
        if data[: len(MAGIC)] != MAGIC:
            raise self._corrupt("not a silnode keystore (bad magic bytes)")
        if len(data) < _PREFIX.size + _CHECKSUM_LEN:
            raise self._corrupt(f"truncated ({len(data)} bytes)")
        _magic, version, header_len = _PREFIX.unpack_from(data)
        if version > FORMAT_VERSION:
            raise KeystoreVersionError(
                f"keystore {self.path} has format version {version}; this silnode reads up to {FORMAT_VERSION}",
                path=str(self.path),
                version=version,
            )
        if version < 1:
            raise self._corrupt(f"unknown format version {version}")
        body, checksum = data[:-_CHECKSUM_LEN], data[-_CHECKSUM_LEN:]
        if hashlib.sha256(body).digest() != checksum:
            raise self._corrupt("checksum mismatch (the file is truncated or damaged)")
        if header_len > _MAX_HEADER or _PREFIX.size + header_len > len(body):
            raise self._corrupt("header length out of range")
        header_bytes = body[_PREFIX.size : _PREFIX.size + header_len]
        ciphertext = body[_PREFIX.size + header_len :]
        try:
            header = json.loads(header_bytes)
        except ValueError as exc:
            raise self._corrupt(f"unreadable header ({exc.__class__.__name__})") from None
        if not isinstance(header, dict):
            raise self._corrupt("unreadable header (not a JSON object)")
        return header, header_bytes, ciphertext

    def _kdf_from_header(self, header: dict[str, Any]) -> tuple[KdfParams, bytes, bytes]:
        try:
            kdf, cipher = header["kdf"], header["cipher"]
            if kdf.get("name") != "argon2id" or kdf.get("version") != ARGON2_VERSION:
                raise ValueError(f"unsupported KDF {kdf.get('name')!r} v{kdf.get('version')!r}")
            if cipher.get("name") != "xsalsa20-poly1305":
                raise ValueError(f"unsupported cipher {cipher.get('name')!r}")
            params = KdfParams(int(kdf["time_cost"]), int(kdf["memory_cost"]), int(kdf["parallelism"])).check()
            return params, _unb64(kdf["salt"], SALT_LEN, "salt"), _unb64(cipher["nonce"], NONCE_LEN, "nonce")
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise self._corrupt(f"bad header ({detail})") from None

    def _unlock(self, password: str) -> Identity:
        # crypto libraries load when a keystore is opened, not at CLI start
        import nacl.exceptions
        import nacl.secret

        header, header_bytes, ciphertext = self._parse(self._read())
        params, salt, nonce = self._kdf_from_header(header)
        if len(ciphertext) < nacl.secret.SecretBox.MACBYTES:
            raise self._corrupt("ciphertext is too short")
        started = time.perf_counter()
        key = params.derive(password, salt)
        try:
            plaintext = nacl.secret.SecretBox(key).decrypt(ciphertext, nonce)
        except nacl.exceptions.CryptoError:
            raise WrongPassword(f"wrong password for keystore {self.path}", path=str(self.path)) from None
        try:
            payload = json.loads(plaintext)
            if payload.get("format") != FORMAT_VERSION:
                raise ValueError("payload format")
            if payload.get("header_sha256") != hashlib.sha256(header_bytes).hexdigest():
                raise ValueError("the header does not match the encrypted contents")
            identity = Identity.from_payload(payload)
        except InvalidMnemonic:
            raise self._corrupt("the stored recovery phrase is not valid BIP39") from None
        except InvalidSecretName:
            raise self._corrupt("a stored secret has an invalid name") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            reason = str(exc) if isinstance(exc, ValueError) and "header" in str(exc) else "unreadable contents"
            raise self._corrupt(reason) from None
        public = header.get("public") or {}
        if (
            public.get("nostr_pubkey") != identity.nostr.pubkey_hex
            or public.get("catalog_pubkey") != identity.catalog.public_key_hex
        ):
            raise self._corrupt("the public keys in the header do not match the recovery phrase")
        log.debug(
            "unlocked keystore %s (argon2id t=%d m=%dKiB p=%d) in %.3fs",
            self.path,
            params.time_cost,
            params.memory_cost,
            params.parallelism,
            time.perf_counter() - started,
        )
        return identity


def keystore_for(config: Any, kdf: KdfParams = DEFAULT_KDF) -> Keystore:
    """The keystore of a :class:`silnode.config.Config` (``config.home / identity.enc``)."""
    return Keystore.for_config(config, kdf)


__all__ = [
    "ANCHOR_KDF",
    "DEFAULT_KDF",
    "FAST_TEST_KDF",
    "FILENAME",
    "FORMAT_VERSION",
    "MAGIC",
    "KdfParams",
    "Keystore",
    "ensure_private_dir",
    "keystore_for",
]
