"""A foreground daemon keeps SILNODE_PASSWORD (and other secrets) in its environment; the llama.cpp workers it
starts must not inherit them. And a worker's log rotates at daemon.log_max_bytes like the daemon's own.
A real daemon process, a real worker on the tiny generated GGUF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from daemons import run_cli, start_daemon, stop_daemon

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PASSWORD = "correct-horse-battery-staple-7f3a"
HF_TOKEN = "hf_secretTokenNeverInWorkers9c1e"
LOG_MAX = 4096


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def test_workers_get_no_secret_and_their_log_rotates(clean_env, tiny_gguf):
    d = start_daemon(
        clean_env,
        env={
            "SILNODE_PASSWORD": PASSWORD,
            "HF_TOKEN": HF_TOKEN,
            "OMP_NUM_THREADS": "1",
            "SILNODE_SERVE__N_THREADS": "1",
            "SILNODE_DAEMON__LOG_MAX_BYTES": str(LOG_MAX),
            "SILNODE_DAEMON__LOG_BACKUPS": "2",
        },
    )
    try:
        run_cli(clean_env, "import", str(tiny_gguf), "--name", "test/tiny", "--license", "mit")
        run_cli(clean_env, "serve", "test/tiny")
        models = json.loads(run_cli(clean_env, "models", "loaded", "--json").stdout)["models"]
        pid = next(m for m in models if m["name"] == "test/tiny")["pid"]

        # the test can fail: the daemon itself does hold both secrets
        daemon_env = environ(d.pid)
        assert daemon_env["SILNODE_PASSWORD"] == PASSWORD and daemon_env["HF_TOKEN"] == HF_TOKEN
        worker_env = environ(pid)
        raw = Path(f"/proc/{pid}/environ").read_bytes()
        # (messages name the variable, never dump the environment: a failure must not print the machine's secrets)
        assert PASSWORD.encode() not in raw, "SILNODE_PASSWORD's value reached the worker's environment"
        assert HF_TOKEN.encode() not in raw, "HF_TOKEN's value reached the worker's environment"
        leaked = [k for k in worker_env if k.startswith("SILNODE_") or k == "HF_TOKEN"]
        assert not leaked, f"the worker inherited {leaked}"
        # what llama.cpp and Python need is kept
        assert worker_env["PATH"] == daemon_env["PATH"] and worker_env["OMP_NUM_THREADS"] == "1"

        # llama.cpp's verbose load output is far more than 4 KiB: the worker's log rotated, two old files kept
        log = clean_env / "logs" / "worker-test--tiny.log"
        rotated = [log.with_name(f"{log.name}.{i}") for i in (1, 2)]
        assert log.exists() and all(p.exists() for p in rotated)
        assert not log.with_name(f"{log.name}.3").exists()
        for p in (log, *rotated):
            assert 0 < p.stat().st_size <= LOG_MAX
        text = b"".join(p.read_bytes() for p in (*reversed(rotated), log))
        assert b"llama" in text  # they hold the worker's output
    finally:
        stop_daemon(d)
