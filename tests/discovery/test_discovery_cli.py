"""End to end through the CLI and REST: two daemons on a private DHT of real libtorrent sessions. A shares a
model (its catalog is published by itself), B follows A's catalog magnet, discovers, and `get org/model`
downloads it by name; the OpenAPI document lists the discovery endpoints."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent.parent))

from daemons import run_cli, start_daemon, stop_daemon  # noqa: E402
from nodes import sha256  # noqa: E402

from silnode.identity import FAST_TEST_KDF, Identity, Keystore  # noqa: E402

PW = "discovery test password, long enough 1"


def write_config(home: Path, boot: list[str]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    cfg = {
        "storage": {"min_free_bytes": 0},
        "network": {
            "listen_address": "127.0.0.1",
            "listen_port": 0,
            "dht_enabled": True,
            "dht_bootstrap": boot,
            "dht_private": True,
        },
        "discovery": {"refresh_interval": 1, "fetch_timeout": 30},
    }
    (home / "config.yaml").write_text(yaml.safe_dump(cfg))


def cli_json(home: Path, *args: str) -> dict:
    return json.loads(run_cli(home, *args, "--json").stdout)


async def test_share_publish_follow_discover_get_by_name(tmp_path, dht, tiny_gguf, monkeypatch):
    for key in ("DHT_ENABLED", "LISTEN_ADDRESS", "LISTEN_PORT"):
        monkeypatch.delenv(f"SILNODE_NETWORK__{key}", raising=False)
    boot = [f"127.0.0.1:{s.listen_port()}" for s in dht]
    ha, hb = tmp_path / "a", tmp_path / "b"
    write_config(ha, boot)
    write_config(hb, boot)
    ident = Identity.generate()
    Keystore.for_home(ha, FAST_TEST_KDF).save(ident, PW)
    a = await asyncio.to_thread(start_daemon, ha, env={"SILNODE_PASSWORD": PW})
    b = await asyncio.to_thread(start_daemon, hb)
    try:
        # B has no identity: its catalog commands say so, with the next step
        r = await asyncio.to_thread(run_cli, hb, "catalog", "show", check=False)
        assert r.returncode == 1 and "no unlocked identity" in r.stderr and "identity new" in r.stderr

        await asyncio.to_thread(run_cli, ha, "share", str(tiny_gguf), "--name", "acme/tiny", "--license", "mit")
        deadline = time.monotonic() + 120
        cat = await asyncio.to_thread(cli_json, ha, "catalog", "show")
        while not cat["published"] or cat.get("last_error"):
            assert time.monotonic() < deadline, f"A never published: {cat}"
            await asyncio.sleep(0.2)
            cat = await asyncio.to_thread(cli_json, ha, "catalog", "show")
        assert cat["seq"] == 1 and cat["publisher"] == ident.catalog.public_key_hex
        assert cat["magnet"] == f"magnet:?xs=urn:btpk:{cat['publisher']}&s={b'silnode-catalog-v1'.hex()}"
        assert [e["name"] for e in cat["entries"]] == ["acme/tiny"]

        # B: a bad follow target is a clear 400 with the expected forms
        r = await asyncio.to_thread(run_cli, hb, "follow", "not-a-key", check=False)
        assert r.returncode == 1 and "64 hex" in r.stderr
        # `get` of a catalog magnet follows the publisher and lists its catalog
        followed = await asyncio.to_thread(cli_json, hb, "get", cat["magnet"])
        assert followed["seq"] == 1 and [e["name"] for e in followed["entries"]] == ["acme/tiny"]
        rows = (await asyncio.to_thread(cli_json, hb, "following"))["following"]
        assert [(x["publisher"], x["seq"], x["entries"]) for x in rows] == [(cat["publisher"], 1, 1)]

        found = await asyncio.to_thread(cli_json, hb, "discover", "TIN", "--tag", "llama", "--max-size", "1GB")
        assert [(x["name"], x["publisher"]) for x in found["results"]] == [("acme/tiny", cat["publisher"])]
        fits = await asyncio.to_thread(cli_json, hb, "discover", "tiny", "--fits")
        assert fits["results"][0]["fits"] is True and fits["results"][0]["fit_reason"]
        none = await asyncio.to_thread(cli_json, hb, "discover", "tiny", "--quant", "Q8_0")
        assert none["results"] == []
        text = (await asyncio.to_thread(run_cli, hb, "discover", "tiny")).stdout
        assert "acme/tiny" in text and "(followed)" in text

        got = await asyncio.to_thread(cli_json, hb, "get", "acme/tiny")
        assert got["state"] in ("done", "seeding") and got["name"] == "acme/tiny"
        shown = await asyncio.to_thread(cli_json, hb, "show", "acme/tiny")
        assert shown["files"][0]["sha256"] == sha256(tiny_gguf)

        r = await asyncio.to_thread(run_cli, hb, "get", "acme/nobody-offers-this", check=False)
        assert r.returncode == 1 and "no catalog offers acme/nobody-offers-this" in r.stderr

        from silnode.client import Client
        from silnode.config import load_config

        spec = Client.from_config(load_config(hb)).openapi()["paths"]
        for p in ("/api/v1/discover", "/api/v1/catalog", "/api/v1/catalog/publish", "/api/v1/following"):
            assert p in spec, p

        # A stops sharing the model: its catalog is republished by itself (seq 2, no entries), and B's merge
        # takes the newer catalog of that publisher
        await asyncio.to_thread(run_cli, ha, "seeding", "acme/tiny", "off")
        deadline = time.monotonic() + 120
        while (await asyncio.to_thread(cli_json, ha, "catalog", "show"))["seq"] != 2:
            assert time.monotonic() < deadline, "A never republished after seeding off"
            await asyncio.sleep(0.2)
        while (await asyncio.to_thread(cli_json, hb, "discover"))["results"]:
            assert time.monotonic() < deadline, "B never saw A's seq 2"
            await asyncio.sleep(0.2)
        rows = (await asyncio.to_thread(cli_json, hb, "following"))["following"]
        assert [(x["seq"], x["entries"]) for x in rows] == [(2, 0)]

        gone = await asyncio.to_thread(cli_json, hb, "unfollow", cat["publisher"])
        assert gone["followed"] is False
        assert (await asyncio.to_thread(cli_json, hb, "following"))["following"] == []
    finally:
        await asyncio.to_thread(stop_daemon, a)
        await asyncio.to_thread(stop_daemon, b)


pytestmark = pytest.mark.timeout(300)
