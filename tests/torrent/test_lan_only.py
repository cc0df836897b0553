"""network.lan_only holds at the packet level: a peer on a public address is refused with it on and reached
with it off (the control case, so the test can fail). Each case runs in its own network namespace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CHILD = Path(__file__).with_name("lan_only_child.py")


@pytest.mark.parametrize(("mode", "outcome"), [("off", "done"), ("on", "no-peer")])
def test_lan_only_refuses_a_public_peer(tmp_path, mode, outcome):
    r = subprocess.run(
        ["unshare", "-n", sys.executable, str(CHILD), mode, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == outcome
