"""An import is atomic: a daemon SIGKILLed in the middle of copying a model into the store leaves, after a
restart, no model and no half-written file at the store path; the leftover partial is gc's, and the same
import then succeeds with the right sha256."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from daemons import ROOT, run_cli, start_daemon, stop_daemon
from ggufgen import make_sized_gguf

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
SIZE = 768 << 20  # big enough that the copy takes a while on any disk


def test_sigkill_during_an_import_leaves_nothing_half_done(clean_env, tmp_path):
    home = clean_env
    src = make_sized_gguf(tmp_path / "big.gguf", SIZE)
    d = start_daemon(home)
    client = None
    try:
        client = subprocess.Popen(
            [sys.executable, "-m", "silnode", "import", str(src), "--name", "org/big", "--copy", "--license", "mit"],
            env=dict(os.environ, SILNODE_HOME=str(home)),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        partial = home / "partial"
        deadline = time.monotonic() + 120
        while True:  # wait until the copy is under way: a file in partial/ with some but not all bytes
            assert time.monotonic() < deadline, "the import never started copying"
            sizes = [p.stat().st_size for p in partial.rglob("*.gguf")] if partial.is_dir() else []
            if sizes and 0 < sizes[0] < src.stat().st_size:
                break
            time.sleep(0.005)
        os.kill(d.pid, signal.SIGKILL)
        d.proc.wait(30)
    finally:
        if client is not None:
            client.wait(60)
        stop_daemon(d)
    assert client.returncode != 0  # the user saw the import fail
    assert not (home / "models" / "org" / "big").exists()  # nothing at the final path

    d = start_daemon(home)
    try:
        listed = json.loads(run_cli(home, "list", "--json").stdout)
        assert [m["name"] for m in listed["models"]] == [], listed
        gc = json.loads(run_cli(home, "gc", "--json").stdout)
        assert gc["freed"] and not any(partial.rglob("*.gguf"))  # the half copy was found and removed
        run_cli(home, "import", str(src), "--name", "org/big", "--copy", "--license", "mit")
        shown = json.loads(run_cli(home, "show", "org/big", "--json").stdout)
        want = hashlib.sha256(src.read_bytes()).hexdigest()
        assert shown["files"][0]["sha256"] == want and shown["files"][0]["size"] == src.stat().st_size
    finally:
        stop_daemon(d)
