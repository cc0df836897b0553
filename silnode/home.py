"""The node's home on disk: SILNODE_HOME's layout, the API token, ``daemon.json`` and the daemon lock.

Shared by the daemon (which writes daemon.json and holds the lock), the client (which reads daemon.json to
find the daemon) and the CLI (``init``, ``daemon status``), so none of them imports another for it.

``daemon.json`` ({pid, port, bind}) is written only after the HTTP socket is bound, so its presence with a
live pid *and* an answering port means a daemon is up. A pid that is gone, or a port that does not answer
with that pid, makes it stale (deluge checks pid and port the same way). A flock on ``daemon.lock`` keeps two
daemons off one SILNODE_HOME even when daemon.json is deleted under them.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from silnode.config import Config
from silnode.errors import BadRequest, ConfigError, Conflict, NotFound
from silnode.fsutil import atomic_write_bytes


def ensure_token(path: Path) -> str:
    """Read the API token, creating it (0600) on first use."""
    try:
        token = path.read_text(encoding="ascii").strip()
        if len(token) >= 32:
            return token
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (token + "\n").encode(), mode=0o600)
    return token


@dataclass(frozen=True)
class DaemonInfo:
    pid: int
    port: int
    bind: str

    @property
    def url(self) -> str:
        host = self.bind
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


def read_daemon_file(config: Config) -> DaemonInfo | None:
    try:
        data = json.loads(config.daemon_file.read_text())
        return DaemonInfo(pid=int(data["pid"]), port=int(data["port"]), bind=str(data["bind"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not reaped) is not a running daemon
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def probe_health(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{url}/api/v1/health", timeout=timeout) as resp:
            data = json.loads(resp.read())
            return data if isinstance(data, dict) else None
    except (OSError, ValueError, urllib.error.URLError):
        return None


def daemon_state(config: Config) -> tuple[str, DaemonInfo | None]:
    """('running' | 'stopped' | 'stale', info). Stale: daemon.json exists but nothing answers for it."""
    info = read_daemon_file(config)
    if info is None:
        return ("stale", None) if config.daemon_file.exists() else ("stopped", None)
    if not pid_alive(info.pid):
        return "stale", info
    health = probe_health(info.url)
    if not health or health.get("pid") != info.pid:
        return "stale", info
    return "running", info


def prepare_home(config: Config) -> None:
    config.home.mkdir(parents=True, exist_ok=True)
    os.chmod(config.home, 0o700)
    config.log_file.parent.mkdir(parents=True, exist_ok=True)
    config.state_dir.mkdir(parents=True, exist_ok=True)


class DaemonLock:
    """An exclusive flock on daemon.lock for the daemon's whole life (released by the kernel on death)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise Conflict(
                f"another silnode daemon is running for {self.path.parent}",
                hint="`silnode daemon status` shows it; use another SILNODE_HOME for a second node",
            ) from None
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# ---------------------------------------------------------------------------------------------------------------
# Scoped API tokens (``tokens.json``, 0600). The admin token stays in ``api.token`` (the CLI on this machine
# reads it); every other token is shown once when it is made and only its SHA-256 is kept, so a copy of
# the file grants nothing. A token's id and name are what `tokens list` shows and `tokens revoke` takes.

TOKEN_SCOPES = ("inference", "admin")
TOKEN_PREFIX = "sil_"  # so a leaked token is recognisable in a log or a paste
_TOKEN_NAME_MAX = 64


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class ApiToken:
    id: str
    name: str
    scope: str
    sha256: str
    created: float

    def public(self) -> dict[str, Any]:
        """What list/REST show: never the hash."""
        return {"id": self.id, "name": self.name, "scope": self.scope, "created": self.created}


class TokenStore:
    """Read-modify-write of ``tokens.json`` under an flock, so the CLI (daemon stopped or not) and the
    daemon's REST calls never lose each other's changes; the daemon re-reads the file when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: tuple[tuple[int, int, int], list[ApiToken]] | None = None

    @classmethod
    def for_config(cls, config: Config) -> TokenStore:
        return cls(config.home / "tokens.json")

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self) -> list[ApiToken]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path} is not readable JSON: {exc}", hint="fix or delete the file") from exc
        items = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ConfigError(f"{self.path}: expected {{'tokens': [...]}}", hint="fix or delete the file")
        out = []
        for item in items:
            try:
                tok = ApiToken(
                    id=str(item["id"]),
                    name=str(item["name"]),
                    scope=str(item["scope"]),
                    sha256=str(item["sha256"]),
                    created=float(item["created"]),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"{self.path}: a token entry is malformed ({exc})") from exc
            if tok.scope in TOKEN_SCOPES and len(tok.sha256) == 64:
                out.append(tok)
        return out

    def _write(self, tokens: list[ApiToken]) -> None:
        body = {"tokens": [{**t.public(), "sha256": t.sha256} for t in tokens]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, (json.dumps(body, indent=2, sort_keys=True) + "\n").encode(), mode=0o600)

    def _locked(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name("tokens.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def tokens(self) -> list[ApiToken]:
        """The tokens, re-read only when the file changed (the daemon calls this per request)."""
        stamp = self._stamp()
        if stamp is None:
            self._cache = None
            return []
        if self._cache is None or self._cache[0] != stamp:
            self._cache = (stamp, self._read())
        return list(self._cache[1])

    def create(self, scope: str, name: str | None = None) -> tuple[ApiToken, str]:
        """A new token: (its record, the token itself - shown once, never stored)."""
        if scope not in TOKEN_SCOPES:
            raise BadRequest(f"unknown token scope {scope!r}; use one of {', '.join(TOKEN_SCOPES)}")
        name = (name or "").strip() or f"{scope}-{secrets.token_hex(2)}"
        if len(name) > _TOKEN_NAME_MAX or not all(c.isalnum() or c in "._-@" for c in name):
            raise BadRequest(
                f"token name {name[:80]!r} is not allowed",
                hint="use letters, digits, '.', '_', '-', '@' (at most 64 characters)",
            )
        fd = self._locked()
        try:
            tokens = self._read()
            if any(t.name == name for t in tokens):
                raise Conflict(f"a token named {name!r} exists", hint="pick another --name or revoke the old one")
            secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
            tok = ApiToken(
                id=secrets.token_hex(6), name=name, scope=scope, sha256=token_digest(secret), created=time.time()
            )
            self._write([*tokens, tok])
        finally:
            os.close(fd)
        return tok, secret

    def revoke(self, ref: str) -> ApiToken:
        """Remove a token by id or name."""
        fd = self._locked()
        try:
            tokens = self._read()
            hit = [t for t in tokens if ref in (t.id, t.name)]
            if not hit:
                raise NotFound(f"no API token {ref[:80]!r}", hint="`silnode tokens list` shows ids and names")
            self._write([t for t in tokens if t is not hit[0]])
        finally:
            os.close(fd)
        return hit[0]

    def match(self, given: str) -> ApiToken | None:
        """The token whose hash equals ``given``'s, comparing every entry in constant time."""
        digest = token_digest(given)
        found = None
        for tok in self.tokens():
            if hmac.compare_digest(digest, tok.sha256):
                found = tok
        return found
