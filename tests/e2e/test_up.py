"""`silnode up` (what `make run` runs) as a newcomer meets it, without a terminal: it creates the home and an
identity (the phrase shown once, a random keystore password kept 0600 where `doctor` flags it), starts the
daemon with the keys unlocked, serves the starter model and answers a completion; Ctrl-C stops the node.
A second `up` is a returning user's: no new identity, the same model served again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from daemons import ROOT, run_cli

from silnode.serving import starter

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def up(home, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "silnode", "up", "--port", "0", *args],
        env=dict(os.environ, SILNODE_HOME=str(home), SILNODE_SERVE__N_THREADS="2"),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def test_up_from_nothing_then_again(clean_env):
    home = clean_env / "fresh"
    p = up(home)
    err = []
    assert p.stderr is not None
    deadline = time.monotonic() + 240
    while not any("Ctrl-C stops the node" in line for line in err):  # up is in front, serving
        assert time.monotonic() < deadline and p.poll() is None, "".join(err)
        err.append(p.stderr.readline())
    url = json.loads((home / "daemon.json").read_text())
    base = f"http://127.0.0.1:{url['port']}"
    saved = home / "identity.password"
    assert saved.stat().st_mode & 0o777 == 0o600 and len(saved.read_text()) >= 24
    assert any("identity.password" in line for line in err)
    # the dashboard's URL and a one-time login link for its actions
    assert any(f"dashboard: {base}/ (read-only)" in line and f"{base}/login?code=" in line for line in err)
    ident = json.loads(run_cli(home, "identity", "show", "--json").stdout)
    assert ident["npub"].startswith("npub1")
    with urllib.request.urlopen(f"{base}/api/v1/identity", timeout=30) as r:
        assert json.loads(r.read())["identity"]["unlocked"] is True  # the daemon found the saved password
    reply = post(f"{base}/v1/completions", {"model": starter.NAME, "prompt": "Once upon a time", "max_tokens": 8})
    assert reply["usage"]["completion_tokens"] > 0 and reply["choices"][0]["text"]
    screen = run_cli(home, "status").stdout  # the one-screen view of the running node
    assert f"identity   {ident['npub']} (unlocked)" in screen
    assert f"serving    {starter.NAME}: ready, 1 request(s)" in screen and "selling" in screen
    full = json.loads(run_cli(home, "status", "--json").stdout)
    assert full["identity"]["unlocked"] is True and full["status"]["serving"][starter.NAME]["requests"] == 1
    doctor = run_cli(home, "doctor", "--json", check=False)
    checks = {c["check"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["keystore password"]["status"] == "warn"

    p.send_signal(signal.SIGINT)  # Ctrl-C
    out, rest = p.communicate(timeout=60)
    assert p.returncode == 0, rest
    phrase = [line for line in out.splitlines() if len(line.split()) == 12]
    assert len(phrase) == 1  # the seed phrase, shown once
    assert "stopped" in rest and not (home / "daemon.json").exists()

    again = up(home, "--detach")
    out, rest = again.communicate(timeout=240)
    assert again.returncode == 0, rest
    assert not [line for line in out.splitlines() if len(line.split()) == 12]  # no new phrase
    assert "created" not in rest and starter.NAME in out and "ready" in out
    run_cli(home, "daemon", "stop")

    # the user sets a password of their own: the saved one is removed, and doctor no longer warns
    mine = clean_env / "mine.txt"
    mine.write_text("correct horse battery staple 42")
    changed = json.loads(
        run_cli(home, "identity", "change-password", "--new-password-file", str(mine), "--json").stdout
    )
    assert changed == {"changed": True, "saved_password_removed": True} and not saved.exists()
    checks = {c["check"] for c in json.loads(run_cli(home, "doctor", "--json", check=False).stdout)["checks"]}
    assert "keystore password" not in checks
