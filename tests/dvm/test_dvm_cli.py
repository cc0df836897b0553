"""The Nostr commands as a user runs them, against a real daemon subprocess selling on its embedded relay:
`serve` (sells; --no-sell stops), `providers`, `ask` (plain and --encrypt, with the customer key from the
identity), `jobs`, and `relay` standing alone."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from daemons import ROOT, run_cli, start_daemon, stop_daemon
from dvm_helpers import TINY, import_model, node_config, write_config

from silnode.identity import FAST_TEST_KDF, Keystore
from silnode.node import Node

pytestmark = [pytest.mark.timeout(300), pytest.mark.e2e]
PW = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_serve_providers_ask_jobs(clean_env, tiny_gguf, identity, monkeypatch):
    home = clean_env
    port = free_port()
    write_config(home, relay_port=port)
    Keystore.for_home(home, kdf=FAST_TEST_KDF).save(identity, PW)
    prep = Node(node_config(home))
    await prep.start()
    await import_model(prep, tiny_gguf, TINY)
    await prep.stop()
    monkeypatch.setenv("SILNODE_PASSWORD", PW)
    d = start_daemon(home, timeout=60)
    try:
        out = run_cli(home, "serve", TINY)
        assert f"selling on Nostr as {identity.npub} via ws://127.0.0.1:{port}" in out.stderr

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            provs = json.loads(run_cli(home, "providers", "--json").stdout)["providers"]
            if provs:
                break
            time.sleep(0.5)
        assert [p["npub"] for p in provs] == [identity.npub] and provs[0]["topics"] == [TINY]

        reply = json.loads(run_cli(home, "ask", "hello", "--model", TINY, "--max-tokens", "4", "--json").stdout)
        assert reply["text"] and reply["provider"] == identity.npub and reply["statuses"][0] == "processing"
        enc = json.loads(
            run_cli(home, "ask", "secret", "--model", TINY, "--max-tokens", "4", "--encrypt", "--json").stdout
        )
        assert enc["encrypted"] and enc["text"]

        jobs = json.loads(run_cli(home, "jobs", "--json").stdout)["jobs"]
        assert [j["id"] for j in jobs] == [enc["job"], reply["job"]]
        assert {j["status"] for j in jobs} == {"success"} and jobs[0]["encryption"] == "nip44"
        # both jobs came from the identity's customer key: NIP-06 account 1, not the seller's key
        from silnode.dvm.customer import customer_keys

        assert {j["customer"] for j in jobs} == {customer_keys(identity).public_key().to_hex()}
        human = run_cli(home, "jobs").stdout
        assert "success" in human and TINY in human

        bad = run_cli(home, "ask", "hello", "--model", "org/none", "--json", check=False)
        assert bad.returncode == 1 and "no provider announces org/none" in bad.stderr

        out = run_cli(home, "serve", TINY, "--no-sell")
        assert "not selling on Nostr: selling turned off" in out.stderr
        status = json.loads(run_cli(home, "daemon", "status", "--json").stdout)
        assert status["dvm"]["state"] == "off"
    finally:
        stop_daemon(d)


def test_relay_command_stands_alone_and_ask_without_a_seller_says_so(clean_env):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "silnode", "relay", "--port", str(port)],
        env=dict(os.environ, SILNODE_HOME=str(clean_env)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout.readline().startswith(f"relay listening at ws://127.0.0.1:{port}")
        r = run_cli(clean_env, "providers", "--relay", f"ws://127.0.0.1:{port}", "--json")
        assert json.loads(r.stdout) == {"providers": []}
        r = run_cli(clean_env, "ask", "hi", "--relay", f"ws://127.0.0.1:{port}", check=False)
        assert r.returncode == 1 and "no provider announces kind-5050 text generation" in r.stderr
        assert "asking as npub1" in r.stderr and "one-off key" in r.stderr  # no identity: a fresh key
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert (clean_env / "nostr" / "relay").is_dir()  # LMDB under SILNODE_HOME
