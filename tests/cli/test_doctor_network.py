"""`doctor`'s DHT, relay and GPU checks against real parts: a private DHT node (a libtorrent session) and a real
relay (nostr-sdk LocalRelay) on loopback answer; a closed port does not, and that is a warning with a next
step, never a crash; and `silnode doctor --json` in its own process shows all three."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parents[1] / "discovery"))
sys.path.insert(0, str(Path(__file__).parents[1] / "dvm"))

from daemons import run_cli  # noqa: E402
from dht import private_net  # noqa: E402
from dvm_helpers import start_relay  # noqa: E402

from silnode.cli.doctor_checks import dht_check, gpu_check, relay_check  # noqa: E402
from silnode.config import load_config  # noqa: E402
from silnode.fit.devices import Device, HardwareReport, ProbeResult  # noqa: E402
from silnode.torrent.session import TorrentSession  # noqa: E402


def closed_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def dht_node():
    s = TorrentSession(private_net(), private=True)
    await s.start()
    yield f"127.0.0.1:{s.listen_port()}"
    await s.stop(save_resume=False)


@pytest.fixture
async def relay(tmp_path):
    r, url = await start_relay(tmp_path / "relay")
    yield url
    await r.stop()


def config(home: Path, **over):
    return load_config(home, overrides=over)


async def test_dht_check_pings_the_bootstrap_nodes(clean_env, dht_node):
    dead = f"127.0.0.1:{closed_port()}"
    cfg = config(
        clean_env,
        **{"network.dht_enabled": True, "network.dht_private": True, "network.dht_bootstrap": [dead, dht_node]},
    )
    status, detail, hint = await asyncio.to_thread(dht_check, cfg)
    assert (status, detail, hint) == ("ok", f"private DHT: 1 of 2 bootstrap node(s) answer ({dht_node})", None)

    cfg = config(clean_env, **{"network.dht_enabled": True, "network.dht_bootstrap": [dead]})
    status, detail, hint = await asyncio.to_thread(dht_check, cfg)
    assert status == "warn" and detail == "public DHT: none of 1 bootstrap node(s) answered within 3 s"
    assert hint is not None and "network.dht_private" in hint

    cfg = config(clean_env, **{"network.dht_enabled": True, "network.dht_bootstrap": []})
    assert (await asyncio.to_thread(dht_check, cfg))[:2] == ("warn", "public DHT: no bootstrap nodes configured")
    assert (await asyncio.to_thread(dht_check, config(clean_env)))[0] == "ok"  # DHT off (the tests' env)


async def test_relay_check_connects(clean_env, relay):
    dead = f"ws://127.0.0.1:{closed_port(socket.SOCK_STREAM)}"
    status, detail, _ = await asyncio.to_thread(relay_check, config(clean_env, **{"nostr.relays": [relay, dead]}), None)
    assert status == "ok" and detail.startswith("1 of 2 connect: ") and f"{relay}: connected" in detail

    status, detail, hint = await asyncio.to_thread(relay_check, config(clean_env, **{"nostr.relays": [dead]}), None)
    assert status == "warn" and detail.startswith("none connect within 3 s") and dead in detail and hint

    status, detail, _ = await asyncio.to_thread(relay_check, config(clean_env, **{"nostr.relay_port": 7777}), None)
    assert (status, detail) == ("ok", "none configured: the daemon runs its embedded relay on 127.0.0.1:7777")

    seen = [{"url": relay, "status": "connected", "embedded": True}]  # what a running daemon reports
    assert relay_check(config(clean_env), seen) == ("ok", f"1 of 1 connected: {relay} (embedded): connected", None)


def test_gpu_check_names_what_the_probes_found():
    gpu = Device("CUDA0", "NVIDIA H100", "cuda", 80 * 2**30, 79 * 2**30, "nvml")
    assert gpu_check(HardwareReport(devices=[gpu])) == (
        "ok",
        "CUDA0 NVIDIA H100 (80.0 GiB, 79.0 GiB free, via nvml)",
        None,
    )
    cpu = Device("CPU", "cpu", "cpu", 16 * 2**30, 8 * 2**30, "cpu")
    assert gpu_check(HardwareReport(devices=[cpu])) == ("ok", "none found: models run on the CPU (16.0 GiB RAM)", None)
    broken = HardwareReport(devices=[cpu], probes=[ProbeResult("nvml", "failed", "NVML_ERROR_DRIVER_NOT_LOADED")])
    status, detail, hint = gpu_check(broken)
    assert status == "warn" and "nvml: NVML_ERROR_DRIVER_NOT_LOADED" in detail and hint


async def test_doctor_cli_reports_dht_relays_and_gpu(clean_env, dht_node, relay):
    clean_env.mkdir(parents=True)
    (clean_env / "config.yaml").write_text(
        yaml.safe_dump({"network": {"dht_private": True, "dht_bootstrap": [dht_node]}, "nostr": {"relays": [relay]}})
    )
    import os

    os.environ["SILNODE_NETWORK__DHT_ENABLED"] = "true"  # clean_env's monkeypatch restores it
    r = await asyncio.to_thread(run_cli, clean_env, "doctor", "--json", check=False)
    checks = {c["check"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["dht bootstrap"]["status"] == "ok", checks["dht bootstrap"]
    assert checks["dht bootstrap"]["detail"].startswith("private DHT: 1 of 1 bootstrap node(s) answer")
    assert checks["relays"]["status"] == "ok" and f"{relay}: connected" in checks["relays"]["detail"]
    assert checks["gpu"]["status"] in ("ok", "warn") and checks["gpu"]["detail"]
    assert "llama.cpp" in checks
