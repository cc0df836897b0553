"""`silnode serve` as a user runs it, against a real daemon process: the first run imports and serves the
starter model, `chat` streams from it, the served set comes back after a daemon restart, and unload ends
the worker."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from daemons import run_cli, start_daemon, stop_daemon

from silnode.serving import starter

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


cli = run_cli


def loaded(home: Path) -> dict[str, dict]:
    return {m["name"]: m for m in json.loads(cli(home, "models", "loaded", "--json").stdout)["models"]}


def test_first_run_serves_the_starter_model_and_the_served_set_survives_a_restart(clean_env):
    home = clean_env
    env = {"SILNODE_SERVE__N_THREADS": "2"}
    d = start_daemon(home, env=env)
    try:
        out = cli(home, "serve")  # empty store: the starter model is imported through the store and served
        assert "first run" in out.stderr and starter.NAME in out.stdout and "ready" in out.stdout
        assert "/v1/completions" in out.stdout  # a base model: pointed at completions
        m = json.loads(cli(home, "show", starter.NAME, "--json").stdout)
        assert m["files"][0]["sha256"] == starter.SHA256 and m["license"] == "gemma"
        assert m["advertise"] is False and m["base_model"] is True
        model_dir = Path(m.get("path") or home / "models" / starter.NAME)
        assert (model_dir / "GEMMA_TERMS.html").is_file()

        reply = cli(home, "chat", starter.NAME, "The capital of France is", "--max-tokens", "12", "--temperature", "0")
        assert "base model" in reply.stderr and sum(c.isalpha() for c in reply.stdout) >= 5, reply.stdout
        pid = loaded(home)[starter.NAME]["pid"]
    finally:
        stop_daemon(d)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the worker ended with its daemon

    d = start_daemon(home, env=env)
    try:
        deadline = time.monotonic() + 120
        while loaded(home).get(starter.NAME, {}).get("state") != "ready":
            assert time.monotonic() < deadline, loaded(home)
            time.sleep(0.2)
        again = cli(home, "chat", starter.NAME, "Once upon a time", "--max-tokens", "4", "--json", check=False)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["model"] == starter.NAME
        new_pid = loaded(home)[starter.NAME]["pid"]
        assert new_pid != pid
        out = cli(home, "models", "unload", starter.NAME)
        assert "unloaded" in out.stdout and loaded(home) == {}
        with pytest.raises(ProcessLookupError):
            os.kill(new_pid, 0)
    finally:
        stop_daemon(d)
    d = start_daemon(home, env=env)
    try:
        assert loaded(home) == {}  # unloaded stays unloaded
        r = cli(home, "chat", starter.NAME, "hi", check=False)
        assert r.returncode != 0 and "not loaded" in r.stderr and f"silnode serve {starter.NAME}" in r.stderr
    finally:
        stop_daemon(d)
