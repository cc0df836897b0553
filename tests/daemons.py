"""Real daemon subprocesses for tests: start one on port 0 in a given home and wait until it answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class LiveDaemon:
    home: Path
    proc: subprocess.Popen
    pid: int
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return (self.home / "api.token").read_text().strip()


def start_daemon(home: Path, *extra: str, env: dict[str, str] | None = None, timeout: float = 30) -> LiveDaemon:
    """Start `silnode daemon start --foreground --port 0` as a subprocess and wait until it answers."""
    from silnode.home import probe_health

    home.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ, SILNODE_HOME=str(home), **(env or {}))
    log = open(home / "test-daemon.out", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "silnode", "daemon", "start", "--foreground", "--port", "0", *extra],
        env=full_env,
        stdout=log,
        stderr=log,
        cwd=ROOT,
    )
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited: {(home / 'test-daemon.out').read_text()[-2000:]}")
        try:
            info = json.loads((home / "daemon.json").read_text())
        except (OSError, ValueError):
            info = None
        if info and info["pid"] == proc.pid and probe_health(f"http://127.0.0.1:{info['port']}"):
            return LiveDaemon(home, proc, proc.pid, info["port"])
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("daemon did not start")


def stop_daemon(d: LiveDaemon) -> None:
    if d.proc.poll() is None:
        d.proc.terminate()
        try:
            d.proc.wait(15)
        except subprocess.TimeoutExpired:
            d.proc.kill()
            d.proc.wait()


def run_cli(home: Path, *args: str, check: bool = True, timeout: float = 240) -> subprocess.CompletedProcess:
    """`silnode ARGS` as a user runs it, in its own process, against the node in `home`."""
    r = subprocess.run(
        [sys.executable, "-m", "silnode", *args],
        env=dict(os.environ, SILNODE_HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r
