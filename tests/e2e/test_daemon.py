"""The daemon as users run it: `silnode daemon start/stop` subprocesses, stale state, two nodes, signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemons import ROOT, start_daemon, stop_daemon

from silnode.home import probe_health

pytestmark = pytest.mark.e2e


def silnode(home: Path, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, SILNODE_HOME=str(home))
    r = subprocess.run(
        [sys.executable, "-m", "silnode", *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    if check:
        assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r


def wait_gone(pid: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_start_status_stop_background(clean_env, tiny_gguf):
    home = clean_env
    silnode(home, "init")
    r = silnode(home, "daemon", "start", "--port", "0", "--json")
    info = json.loads(r.stdout)
    pid = info["pid"]
    try:
        assert probe_health(info["url"])["pid"] == pid
        dj = json.loads((home / "daemon.json").read_text())
        assert dj["pid"] == pid and dj["bind"] == "127.0.0.1" and dj["port"] > 0
        assert (home / "daemon.json").stat().st_mode & 0o777 == 0o600
        again = json.loads(silnode(home, "daemon", "start", "--json").stdout)
        assert again["already"] is True and again["pid"] == pid
        silnode(home, "import", str(tiny_gguf), "--name", "e2e/tiny")
        st = json.loads(silnode(home, "daemon", "status", "--json").stdout)
        assert st["store"]["models"] == 1
    finally:
        r = silnode(home, "daemon", "stop", "--json", check=False)
    assert r.returncode == 0, r.stderr
    assert wait_gone(pid)
    assert not (home / "daemon.json").exists()
    r = silnode(home, "daemon", "status", check=False)
    assert r.returncode == 3 and "not running" in r.stdout
    log = (home / "logs" / "daemon.log").read_text()
    # services stop in reverse order of start
    starts = [
        log.index(f"starting {s}") for s in ("store", "tasks", "torrent-engine", "distribution", "serving", "models")
    ]
    stops = [
        log.index(f"stopping {s}") for s in ("models", "serving", "distribution", "torrent-engine", "tasks", "store")
    ]
    assert starts == sorted(starts) and stops == sorted(stops) and starts[-1] < stops[0]
    assert log.count("stopping store") == 1  # one handler: no duplicated lines


def test_stale_daemon_json_detected_and_replaced(clean_env):
    home = clean_env
    home.mkdir(parents=True)
    # a pid that does not exist
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (home / "daemon.json").write_text(json.dumps({"pid": dead.pid, "port": 1, "bind": "127.0.0.1"}))
    r = silnode(home, "daemon", "status", "--json", check=False)
    assert r.returncode == 3 and json.loads(r.stdout)["state"] == "stale"
    checks = {c["check"]: c for c in json.loads(silnode(home, "doctor", "--json", check=False).stdout)["checks"]}
    assert checks["daemon"]["status"] == "warn" and "stale daemon.json" in checks["daemon"]["detail"]
    # a live pid whose port does not answer (our own pid, a closed port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    (home / "daemon.json").write_text(json.dumps({"pid": os.getpid(), "port": closed_port, "bind": "127.0.0.1"}))
    assert json.loads(silnode(home, "daemon", "status", "--json", check=False).stdout)["state"] == "stale"
    r = silnode(home, "daemon", "start", "--port", "0", "--json")
    info = json.loads(r.stdout)
    try:
        assert info["pid"] != os.getpid()
        assert json.loads((home / "daemon.json").read_text())["pid"] == info["pid"]
    finally:
        silnode(home, "daemon", "stop")


def test_two_daemons_side_by_side(tmp_path, tiny_gguf):
    a = start_daemon(tmp_path / "a")
    b = start_daemon(tmp_path / "b")
    try:
        assert a.port != b.port
        silnode(a.home, "import", str(tiny_gguf), "--name", "only/in-a")
        la = json.loads(silnode(a.home, "list", "--json").stdout)["models"]
        lb = json.loads(silnode(b.home, "list", "--json").stdout)["models"]
        assert [m["name"] for m in la] == ["only/in-a"] and lb == []
        assert a.token != b.token
    finally:
        stop_daemon(a)
        stop_daemon(b)


def test_second_daemon_on_same_home_refused(clean_env):
    a = start_daemon(clean_env)
    try:
        r = silnode(clean_env, "daemon", "start", "--foreground", "--port", "0", check=False, timeout=30)
        assert r.returncode == 0 and f"already running (pid {a.pid})" in r.stdout
        # even with daemon.json gone, the lock holds
        (clean_env / "daemon.json").unlink()
        r = silnode(clean_env, "daemon", "start", "--foreground", "--port", "0", check=False, timeout=30)
        assert r.returncode == 1 and "another silnode daemon" in r.stderr
    finally:
        stop_daemon(a)


def test_sigterm_stops_cleanly(clean_env):
    d = start_daemon(clean_env)
    os.kill(d.pid, signal.SIGTERM)
    assert d.proc.wait(15) == 0
    assert not (clean_env / "daemon.json").exists()
    assert "stopped" in (clean_env / "logs" / "daemon.log").read_text()


def test_admin_shutdown_over_rest(clean_env):
    import urllib.request

    d = start_daemon(clean_env)
    req = urllib.request.Request(
        f"{d.url}/api/v1/admin/shutdown", method="POST", headers={"Authorization": f"Bearer {d.token}"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 202
    assert d.proc.wait(15) == 0
    assert not (clean_env / "daemon.json").exists()


def test_port_in_use_is_a_clear_error(clean_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = silnode(clean_env, "daemon", "start", "--foreground", "--port", str(port), check=False)
        assert r.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}" in r.stderr and "daemon.port" in r.stderr
        assert "Traceback" not in r.stderr


def test_sigkill_leaves_stale_state_that_start_recovers(clean_env):
    d = start_daemon(clean_env)
    os.kill(d.pid, signal.SIGKILL)
    d.proc.wait(10)
    assert (clean_env / "daemon.json").exists()
    assert json.loads(silnode(clean_env, "daemon", "status", "--json", check=False).stdout)["state"] == "stale"
    r = silnode(clean_env, "daemon", "start", "--port", "0", "--json")
    try:
        assert json.loads(r.stdout)["already"] is False
    finally:
        silnode(clean_env, "daemon", "stop")
