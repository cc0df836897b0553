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
import json
import os
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from silnode.config import Config
from silnode.errors import Conflict
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
