"""The daemon process: unlock the identity, start the Node's services, answer HTTP until told to stop.

Finding a running daemon, daemon.json and the lock live in ``silnode.home``.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import signal
import socket
import time
from pathlib import Path

from aiohttp import web

from silnode import __version__
from silnode.api import make_app, runner_options
from silnode.config import Config
from silnode.errors import Conflict
from silnode.fsutil import atomic_write_json
from silnode.home import DaemonLock, prepare_home, read_daemon_file
from silnode.identity import Identity, Keystore
from silnode.node import Node

log = logging.getLogger(__name__)


def setup_logging(config: Config, *, to_stderr: bool = True) -> None:
    level = logging.DEBUG if os.environ.get("SILNODE_DEBUG") else getattr(logging, config.daemon.log_level.upper())
    root = logging.getLogger()
    root.setLevel(level)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    # a background daemon's stdout and stderr are the log file too (C libraries, stray prints): they follow it
    # when it rotates, else they would grow the renamed file without bound
    stdio = tuple(fd for fd in (1, 2) if _fd_is(fd, config.log_file))
    fh = StdioFollowingHandler(
        config.log_file, maxBytes=config.daemon.log_max_bytes, backupCount=config.daemon.log_backups, stdio=stdio
    )
    fh.setFormatter(fmt)
    root.addHandler(fh)
    if to_stderr and not _stderr_is(config.log_file):  # a background daemon's stderr IS the log file
        sh = logging.StreamHandler()
        sh.setFormatter(fmt)
        root.addHandler(sh)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _stderr_is(path: Path) -> bool:
    return _fd_is(2, path)


def _fd_is(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class StdioFollowingHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler that, after each rollover, points the given file descriptors (a background
    daemon's stdout and stderr, opened on the log file) at the new file."""

    def __init__(self, *args: object, stdio: tuple[int, ...] = (), **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.stdio = stdio

    def doRollover(self) -> None:  # noqa: N802 - logging's name
        super().doRollover()
        if self.stream is not None:
            for fd in self.stdio:
                os.dup2(self.stream.fileno(), fd)


def unlock_identity(config: Config, password: str | None) -> Identity | None:
    """The node's identity, unlocked, or None (none created, or no password given: keys stay locked)."""
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


async def run(config: Config, password: str | None = None) -> None:
    """Run the node until SIGTERM/SIGINT or admin/shutdown. Raises SilnodeError on startup failure."""
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
        runner = web.AppRunner(app, access_log=None, handle_signals=False, **runner_options(node))
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
            {
                "pid": os.getpid(),
                "port": port,
                "bind": config.daemon.bind_address,
                "version": __version__,
                "started": time.time(),
            },
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
    asyncio.run(run(config, password))
    return 0
