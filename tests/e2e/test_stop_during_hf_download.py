"""`silnode daemon stop` while a `share hf://` download runs: the download is cancelled at its next chunk and the
daemon exits by itself (exit status 0), never by the SIGTERM/SIGKILL that `daemon stop` sends after its
timeout. The download alone would take ~50 s on this slow fake Hub, past that timeout (30 s + 5 s)."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from daemons import run_cli, start_daemon, stop_daemon
from fakehub import serve_hub
from ggufgen import make_sized_gguf

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SIZE = 64 << 20
COMMIT = "f" * 40
PATH = f"/org/Big-GGUF/resolve/{COMMIT}/big-Q4_K_M.gguf"  # pinned to the commit


def call(d, method: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(
        f"{d.url}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {d.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def test_daemon_stop_cancels_a_running_hf_download(clean_env, tmp_path):
    data = make_sized_gguf(tmp_path / "big.gguf", SIZE).read_bytes()
    with serve_hub() as hub:
        hub.publish("org/Big-GGUF", COMMIT, {"big-Q4_K_M.gguf": data})
        hub.slow[PATH] = 0.05  # 64 KiB per 50 ms: ~50 s for the whole file
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "NO_PROXY": "127.0.0.1,localhost"}
        d = start_daemon(clean_env, env=env)
        try:
            task = call(
                d, "POST", "/api/v1/models/share", {"source": "hf://org/Big-GGUF/big-Q4_K_M.gguf", "wait": False}
            )
            tid = task["task"]["id"]
            deadline = time.monotonic() + 120  # a hang guard, not a speed limit
            while (t := call(d, "GET", f"/api/v1/tasks/{tid}")["task"])["done_bytes"] == 0:
                assert t["state"] == "running" and time.monotonic() < deadline, t
                time.sleep(0.05)
            assert t["total_bytes"] == len(data)

            out = json.loads(run_cli(clean_env, "daemon", "stop", "--json").stdout)
            assert out["state"] == "stopped"
            assert d.proc.wait(30) == 0  # it ended by itself: not -SIGTERM, not -SIGKILL
            assert hub.served.get(PATH, 0) < len(data)  # the download did not run to its end
            log = (clean_env / "logs" / "daemon.log").read_text()
            assert "cancelled, the daemon is stopping" in log
        finally:
            stop_daemon(d)
