"""`make demo` (scripts/demo.py) as a user runs it: every step of the story completes (A publishes, C and B get
the model through A's catalog, B serves and sells, C's customer buys a job, paid at the real test mint), and
everything is torn down; and Ctrl-C in the middle tears everything down too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemons import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

sys.path.insert(0, str(ROOT / "scripts"))
import test_services  # noqa: E402

STEPS = [
    ("network", "start a private DHT (no public bootstrap)"),
    ("network", "start one Nostr relay"),
    ("network", "start a cashu mint (nutshell, FakeWallet) and fund C's customer"),
    ("A", "start a daemon with a new identity"),
    ("B", "start a daemon with a new identity"),
    ("C", "start a daemon with a new identity"),
    ("A", "share demo/tiny-llama and publish the catalog"),
    ("C", "follow A's catalog, get the model from A, seed it"),
    ("B", "discover the model in A's catalog and download it from A and C"),
    ("B", "serve the model and sell it on Nostr (NIP-90)"),
    ("C", "C's customer buys a completion from B over NIP-90"),
    ("B", "record the job and the earnings"),
]


def demo(workdir: Path, report: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "scripts/demo.py", "--workdir", str(workdir), "--report", str(report), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def node_pids(workdir: Path) -> list[int]:
    """The pids the three daemons wrote (each daemon.json is removed by its daemon on a clean stop)."""
    pids = []
    for label in "ABC":
        f = workdir / f"node-{label}" / "daemon.json"
        if f.exists():
            pids.append(json.loads(f.read_text())["pid"])
    return pids


def test_the_demo_story_completes_paid_and_leaves_nothing_running(tmp_path):
    test_services.ensure("cashu")  # the paid story needs the test mint (built once, as `make test` does)
    report = tmp_path / "report.json"
    p = demo(tmp_path / "net", report)
    out, _ = p.communicate(timeout=540)
    assert p.returncode == 0, out
    story = json.loads(report.read_text())
    assert story["outcome"] == "ok" and story["paid"] is True
    assert [(s["who"], s["step"]) for s in story["steps"]] == STEPS
    assert all(s["ok"] for s in story["steps"]), story
    by_step = {s["step"]: s["detail"] for s in story["steps"]}
    assert "sha256-verified (16.7 MiB)" in by_step["discover the model in A's catalog and download it from A and C"]
    assert "paid 2000 msats in ecash" in by_step["C's customer buys a completion from B over NIP-90"]
    assert by_step["record the job and the earnings"].endswith("earnings paid: 2000 msats")
    for who, what in STEPS:  # the readable story names each step with its timing
        assert f"{who:<9} {what} ..." in out
    assert "all 12 steps passed" in out and "everything stopped" in out
    assert "stopped node A" in out and "stopped the mint" in out and "stopped the relay" in out
    assert node_pids(tmp_path / "net") == []  # every daemon stopped cleanly (daemon.json removed)


def test_ctrl_c_mid_story_tears_everything_down(tmp_path):
    report = tmp_path / "report.json"
    workdir = tmp_path / "net"
    p = demo(workdir, report, "--free")
    assert p.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 400
    while not any("share demo/tiny-llama" in line for line in lines):  # the three daemons are up
        assert time.monotonic() < deadline and p.poll() is None, "".join(lines)
        lines.append(p.stdout.readline())
    pids = node_pids(workdir)
    assert len(pids) == 3 and all(alive(pid) for pid in pids)
    p.send_signal(signal.SIGINT)
    rest, _ = p.communicate(timeout=120)
    out = "".join(lines) + rest
    assert p.returncode == 130, out
    assert "interrupted (Ctrl-C)" in out and "everything stopped" in out
    assert "payments: the job will be FREE (--free was given)" in out
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids), out
    assert json.loads(report.read_text())["outcome"] == "interrupted"
