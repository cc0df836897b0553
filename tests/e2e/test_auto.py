"""`get --auto`, `serve --auto` and `get CATALOG-NAME` as a user runs them: a real daemon process, the seed
catalog's Gemma-3-270M entry served by a local fake Hugging Face Hub, and a 2 GiB RAM cap under which Gemma
is the best model that fits. The same requests through REST answer 200/202/409 as documented."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from daemons import run_cli, start_daemon, stop_daemon
from fakehub import serve_hub

from silnode.fit.seed import load_seed_catalog
from silnode.serving import starter

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
GEMMA = starter.NAME
BIG = "qwen/qwen2.5-7b-instruct-q4_k_m"


def rest(d, path: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"{d.url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {d.token}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_auto_and_catalog_names_through_the_cli_and_rest(clean_env, gemma_gguf):
    entry = next(m for m in load_seed_catalog() if m.name == GEMMA)
    with serve_hub() as hub:
        hub.publish(entry.repo, "e" * 40, {entry.file: gemma_gguf.read_bytes(), "README.md": b"license: gemma\n"})
        env = {
            "HF_ENDPOINT": hub.url,
            "HF_HUB_OFFLINE": "0",
            "NO_PROXY": "127.0.0.1,localhost",
            "SILNODE_HARDWARE__RAM_BYTES": str(2 << 30),
            "SILNODE_HARDWARE__CPU_BANDWIDTH": str(10**12),  # speed is not what this test is about
            "SILNODE_SERVE__N_THREADS": "2",
        }
        d = start_daemon(clean_env, env=env)
        try:
            home = clean_env
            # a catalog model that won't fit: refused with numbers, nothing started
            big = run_cli(home, "get", BIG, check=False)
            assert big.returncode == 1 and "won't fit: needs" in big.stderr and "--force" in big.stderr
            status, body = rest(d, "/api/v1/models/download", {"target": BIG})
            assert status == 409 and body["code"] == "does_not_fit"

            got = json.loads(run_cli(home, "get", "--auto", "--json").stdout)  # blocks until verified
            assert got["name"] == GEMMA and got["magnet"].startswith("magnet:?")  # the manifest, now seeding
            shown = json.loads(run_cli(home, "show", GEMMA, "--json").stdout)
            assert shown["files"][0]["sha256"] == entry.sha256 and shown["state"] == "ok"
            assert any(path.endswith(entry.file) for _, path in hub.requests)  # fetched from the origin

            again = run_cli(home, "get", "--auto")
            assert "already in the store and is the best fit" in again.stdout
            status, body = rest(d, "/api/v1/models/download", {"auto": True})
            assert status == 200 and body["model"] == GEMMA and body["on_disk"] is True
            dup = run_cli(home, "get", GEMMA, check=False)  # by catalog name, already here
            assert dup.returncode == 1 and "already" in dup.stderr
            status, body = rest(d, "/api/v1/models/download", {"target": GEMMA})
            assert status == 409 and body["code"] == "conflict"

            served = run_cli(home, "serve", "--auto")
            assert GEMMA in served.stdout and "ready" in served.stdout
            loaded = json.loads(run_cli(home, "models", "loaded", "--json").stdout)["models"]
            assert [(m["name"], m["state"]) for m in loaded] == [(GEMMA, "ready")]
            status, body = rest(d, "/api/v1/models/download", {"target": "x", "auto": True})
            assert status == 400  # a target and auto: one or the other
        finally:
            stop_daemon(d)
