"""`silnode service install` writes a systemd --user unit whose ExecStart really runs the node (started
here exactly as systemd would: its Environment and ExecStart, then its KillSignal), and `silnode logs`
prints the daemon's log."""

from __future__ import annotations

import configparser
import json
import os
import shlex
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from daemons import run_cli

from silnode.home import probe_health

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def url(home) -> str:
    info = json.loads((home / "daemon.json").read_text())
    return f"http://127.0.0.1:{info['port']}"


def test_the_unit_runs_the_node_and_logs_prints_its_log(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    home = clean_env
    pw = tmp_path / "pw.txt"
    pw.write_text("a long enough keystore password 7")
    run_cli(home, "init", "--password-file", str(pw))
    out = json.loads(run_cli(home, "service", "install", "--password-file", str(pw), "--json").stdout)
    unit = configparser.ConfigParser(interpolation=None)
    unit.read(out["unit"])
    assert out["unlocks_keys"] is True and out["unit"].endswith("xdg/systemd/user/silnode.service")
    svc = unit["Service"]
    assert svc["Environment"] == f"SILNODE_HOME={home}" and svc["KillSignal"] == "SIGTERM"
    assert unit["Install"]["WantedBy"] == "default.target"
    assert "a long enough" not in Path(out["unit"]).read_text()  # a path to the password, never the password

    # what systemd does: start ExecStart with the unit's environment (port 0: tests run side by side)
    env = dict(os.environ, **dict([svc["Environment"].split("=", 1)]), SILNODE_DAEMON__PORT="0")
    with open(tmp_path / "journal.txt", "wb") as journal:
        proc = subprocess.Popen(shlex.split(svc["ExecStart"]), env=env, stdout=journal, stderr=journal)
        try:
            deadline = time.monotonic() + 60
            while not (home / "daemon.json").exists() or probe_health(url(home)) is None:
                assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "journal.txt").read_text()
                time.sleep(0.1)
            with urllib.request.urlopen(f"{url(home)}/api/v1/identity", timeout=30) as r:
                assert json.loads(r.read())["identity"]["unlocked"] is True  # the unit's password file was used
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0  # a clean stop on the unit's KillSignal

    # logs: the daemon's log file (a background daemon writes it)
    run_cli(home, "daemon", "start", "--password-file", str(pw))
    try:
        logs = run_cli(home, "logs", "-n", "200").stdout
        assert "silnode" in logs.lower() and len(logs.splitlines()) >= 2
    finally:
        run_cli(home, "daemon", "stop")
    missing = run_cli(home, "logs", "--worker", "no/model", check=False)
    assert missing.returncode == 1 and "silnode serve no/model" in missing.stderr

    removed = json.loads(run_cli(home, "service", "uninstall", "--json").stdout)
    assert removed["removed"] is True and not os.path.exists(out["unit"])
