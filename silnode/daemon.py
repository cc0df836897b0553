"""Daemon process lifecycle: run in front, find a running daemon, detect stale state files.

``daemon.json`` ({pid, port, bind}) is written only after the HTTP socket is bound, so its presence with a
live pid *and* an answering port means a daemon is up. A pid that is gone, or a port that does not answer
with that pid, makes it stale (deluge checks pid and port the same way). A flock on ``daemon.lock`` keeps two
daemons off one SILNODE_HOME even when daemon.json is deleted under them.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import logging.handlers
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from silnode import __version__
from silnode.config import Config
from silnode.errors import Conflict
from silnode.fsutil import atomic_write_json

log = logging.getLogger(__name__)


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
            return json.loads(resp.read())
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


def setup_logging(config: Config, *, to_stderr: bool = True) -> None:
    level = logging.DEBUG if os.environ.get("SILNODE_DEBUG") else getattr(logging, config.daemon.log_level.upper())
    root = logging.getLogger()
    root.setLevel(level)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    fh = logging.handlers.RotatingFileHandler(config.log_file, maxBytes=10 * 2**20, backupCount=3)
    fh.setFormatter(fmt)
    root.addHandler(fh)
    if to_stderr and not _stderr_is(config.log_file):  # a background daemon's stderr IS the log file
        sh = logging.StreamHandler()
        sh.setFormatter(fmt)
        root.addHandler(sh)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _stderr_is(path: Path) -> bool:
    try:
        a, b = os.fstat(2), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


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


def unlock_identity(config: Config, password: str | None):
    """The node's identity, unlocked, or None (none created, or no password given: keys stay locked)."""
    from silnode.identity import Keystore

    ks = Keystore.for_config(config)
    if not ks.exists():
        log.info("no identity yet (`silnode identity new`); features that need keys are off")
        return None
    if password is None:
        log.warning("identity locked (no password given); features that need keys are off")
        return None
    ident = ks.unlock(password)  # WrongPassword / KeystoreCorrupt stop the start with one clear line
    log.info("identity unlocked: %s", ident.npub)
    return ident


async def serve(config: Config, password: str | None = None) -> None:
    """Run the node until SIGTERM/SIGINT or admin/shutdown. Raises SilnodeError on startup failure."""
    from aiohttp import web

    from silnode.api import make_app
    from silnode.node import Node

    prepare_home(config)
    lock = DaemonLock(config.lock_file)
    lock.acquire()
    try:
        identity = await asyncio.to_thread(unlock_identity, config, password)
    except BaseException:
        lock.release()
        raise
    node = Node(config, identity=identity)
    runner: web.AppRunner | None = None
    try:
        await node.start()
        app = make_app(node)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, config.daemon.bind_address, config.daemon.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise Conflict(
                f"cannot listen on {config.daemon.bind_address}:{config.daemon.port}: {exc.strerror or exc}",
                hint="another program uses the port: set daemon.port (or SILNODE_DAEMON__PORT)",
            ) from exc
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        port = sockets[0].getsockname()[1] if sockets else config.daemon.port
        for s in sockets:  # small JSON replies: don't wait for Nagle
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        atomic_write_json(
            config.daemon_file,
            {"pid": os.getpid(), "port": port, "bind": config.daemon.bind_address, "version": __version__,
             "started": time.time()},
            mode=0o600,
        )
        log.info("silnode %s listening on %s:%d (home %s)", __version__, config.daemon.bind_address, port, config.home)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, node.request_shutdown)
        await node.shutdown_requested.wait()
        log.info("shutting down")
    finally:
        info = read_daemon_file(config)
        if info and info.pid == os.getpid():
            config.daemon_file.unlink(missing_ok=True)
        if runner is not None:
            await runner.cleanup()  # stop taking requests before the services go
        await node.stop()
        lock.release()
        log.info("stopped")


def run_foreground(config: Config, password: str | None = None) -> int:
    prepare_home(config)
    setup_logging(config, to_stderr=True)
    asyncio.run(serve(config, password))
    return 0
