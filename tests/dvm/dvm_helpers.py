"""DVM test helpers: a node that sells the generated tiny model on its embedded relay (a real nostr-sdk LocalRelay
on loopback), and customers on real nostr-sdk clients."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from silnode.config import load_config
from silnode.node import Node

TINY = "test/tiny"
PHRASE = "leader monkey parrot ring guide accident before fence cannon height naive bean"  # NIP-06 vector


async def until(pred, timeout: float = 60.0, what: str = "condition") -> None:
    """Wait for ``pred()`` (sync or async) with a deadline that names what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def node_config(home: Path, **nostr):
    overrides = {"daemon.port": 0, "nostr.relay_port": 0, "serve.n_threads": 2, "serve.n_ctx": 512}
    overrides.update({f"nostr.{k}": v for k, v in nostr.items()})
    return load_config(home, overrides=overrides)


async def import_tiny(node: Node, path: Path) -> None:
    task = node.models.import_file(str(path), TINY, license="mit")
    await node.tasks.wait(task)
    assert task.state == "done", task.error


GEMMA = "test/gemma"


async def import_model(node: Node, path: Path, name: str) -> None:
    task = node.models.import_file(str(path), name, license="mit")
    await node.tasks.wait(task)
    assert task.state == "done", task.error


async def start_relay(path: Path, port: int = 0):
    """A real relay of its own (nostr-sdk LocalRelay on LMDB) on loopback: (relay, url)."""
    from silnode.dvm.relays import EmbeddedRelay

    relay = EmbeddedRelay(path, port=port)
    return relay, await relay.start()


def write_config(home: Path, **nostr) -> None:
    """config.yaml for a daemon subprocess: the test's relays, a free embedded-relay port, 2 threads."""
    import yaml

    home.mkdir(parents=True, exist_ok=True)
    data = {"serve": {"n_threads": 2, "n_ctx": 512}, "nostr": {"relay_port": 0, **nostr}}
    (home / "config.yaml").write_text(yaml.safe_dump(data))


class NostrRelay:
    """The PyPI `nostr-relay` server (SQLite, gunicorn + uvicorn): a second, independent relay implementation.

    Started as its own process on a loopback port, ready once its NIP-11 document answers; ``restart()``
    brings it back on the same port with the same database (events survive)."""

    def __init__(self, path: Path, port: int = 0) -> None:
        import socket

        if not port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.path, self.port = path, port
        self.url = f"ws://127.0.0.1:{port}"
        self.proc = None

    def _config(self) -> Path:
        import yaml

        self.path.mkdir(parents=True, exist_ok=True)
        conf = {
            "storage": {
                "sqlalchemy.url": f"sqlite+aiosqlite:///{self.path / 'nostr.sqlite3'}",
                "num_concurrent_adds": 2,
                "validators": [
                    "nostr_relay.validators.is_not_too_large",
                    "nostr_relay.validators.is_signed",
                    "nostr_relay.validators.is_recent",
                ],
            },
            "gunicorn": {"bind": f"127.0.0.1:{self.port}", "workers": 1, "loglevel": "warning"},
            "max_event_size": 65536,  # its default (4096 characters of content) refuses long results
            "subscription_limit": 32,
            "max_limit": 6000,
            "message_timeout": 1800,
            "logging": {"version": 1, "root": {"level": "WARNING"}},
        }
        p = self.path / "relay.yaml"
        p.write_text(yaml.safe_dump(conf))
        return p

    async def start(self, timeout: float = 60.0) -> str:
        import subprocess
        import sys
        import urllib.request

        exe = Path(sys.executable).parent / "nostr-relay"  # a [test] extra, installed beside this Python
        log = open(self.path.parent / f"nostr-relay-{self.port}.log", "ab") if self.path.parent.exists() else None
        self.proc = subprocess.Popen(
            [str(exe), "-c", str(self._config()), "serve"], stdout=log, stderr=log, start_new_session=True
        )
        if log is not None:
            log.close()

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nostr-relay exited with {self.proc.returncode}")
            req = urllib.request.Request(f"http://127.0.0.1:{self.port}/", headers={"Accept": "application/nostr+json"})
            try:
                with urllib.request.urlopen(req, timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        await until(lambda: asyncio.to_thread(ready), timeout, f"nostr-relay answering on port {self.port}")
        return self.url

    async def stop(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # gunicorn's master stops its worker
            try:
                await asyncio.to_thread(self.proc.wait, 15)
            except Exception:
                os.killpg(self.proc.pid, signal.SIGKILL)
                await asyncio.to_thread(self.proc.wait)
        self.proc = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()
