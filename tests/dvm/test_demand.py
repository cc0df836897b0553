"""Demand: requests per minute per model, by channel (HTTP /v1 and NIP-90), in `silnode status`, in the NIP-89
announcement (with the provider's uptime and prices), and `silnode providers` ranking by model, uptime, price.

The end-to-end test runs a real daemon selling the tiny model on its embedded relay; the counting window and the
ranking rules are also checked as plain logic on fixed times and rows."""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest
from daemons import run_cli, start_daemon, stop_daemon
from dvm_helpers import TINY, import_model, node_config, write_config

from silnode.dvm.announce import rank
from silnode.identity import FAST_TEST_KDF, Keystore
from silnode.node import Node
from silnode.serving.demand import Demand, channel_of

PW = "correct horse battery staple"


def test_demand_counts_each_channel_over_a_five_minute_window():
    d = Demand()
    for t in (1000.0, 1100.0, 1250.0):
        d.record("http", now=t)
    d.record("nip90", now=1290.0)
    assert d.per_minute(now=1300.0) == {"http": 0.6, "nip90": 0.2, "total": 0.8}
    # 1000 falls out of the window at 1300+; the 1100 one at 1400+
    assert d.per_minute(now=1350.0) == {"http": 0.4, "nip90": 0.2, "total": 0.6}
    assert d.per_minute(now=1600.0) == {"http": 0.0, "nip90": 0.0, "total": 0.0}
    assert d.totals == {"http": 3, "nip90": 1}
    d.record("http", now=1000.0 + 3600 * 2)  # anything older than an hour is dropped on the next record
    assert len(d._seen["http"]) == 1
    assert channel_of("nostr:ab12") == "nip90" and channel_of("127.0.0.1") == "http"


def row(name, since, created, price=None, models=("org/a",), rpm=0.0):
    pricing = {"msats_per_job": price, "msats_per_1k_tokens": 0, "required": True} if price else {"required": False}
    return {
        "name": name,
        "topics": list(models),
        "models": [{"name": m, "requests_per_minute": rpm} for m in models],
        "online_since": since,
        "created_at": created,
        "pricing": pricing,
    }


def test_demand_moves_on_a_rush_or_a_lull_not_on_jitter():
    from silnode.dvm.announce import demand_moved

    assert demand_moved({}, {"m": 0.2})  # the first request of a quiet model
    assert demand_moved({"m": 0.6}, {"m": 0.0})  # a lull
    assert demand_moved({"m": 4.0}, {"m": 6.0})  # +50 %
    assert not demand_moved({"m": 4.0}, {"m": 5.6})  # +40 %: jitter of a steady rate
    assert not demand_moved({"m": 0.0}, {"m": 0.0}) and not demand_moved({}, {})
    assert demand_moved({"a": 1.0}, {"a": 1.0, "b": 0.4})  # a model newly in demand


def test_rank_by_model_then_uptime_steps_then_price():
    now = 100_000.0
    rows = [
        row("young-free", now - 60, now - 10),  # up 1 min
        row("day-dear", now - 90_000, now - 10, price=5000),  # up > 1 day, 5 sat
        row("day-cheap", now - 87_000, now - 10, price=1000, rpm=2.5),  # up > 1 day, 1 sat
        row("other-model", now - 200_000, now - 10, models=("org/b",)),
        row("liar", now + 5000, now - 10),  # claims to start after it announced: uptime unknown
    ]
    ranked = rank(rows, "org/a", now=now)
    assert [r["name"] for r in ranked] == ["day-cheap", "day-dear", "young-free", "liar", "other-model"]
    assert ranked[0]["uptime_s"] == 87_000 and ranked[0]["price_msats"] == 1000
    assert ranked[0]["requests_per_minute"] == 2.5 and ranked[3]["uptime_s"] is None
    assert ranked[2]["price_msats"] == 0.0  # free
    # without a model, only uptime and price count
    assert rank(rows, now=now)[0]["name"] == "other-model"


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


@pytest.mark.e2e
@pytest.mark.timeout(300)
async def test_demand_in_status_announcement_and_providers(clean_env, tiny_gguf, identity, monkeypatch):
    home = clean_env
    with socket.socket() as s:  # the CLI's `ask` and `providers` find the embedded relay at nostr.relay_port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # the hourly re-announcement stays hourly: only demand that moved announces again (after a second here)
    write_config(home, relay_port=port, announce_interval=3600, demand_reannounce=1)
    Keystore.for_home(home, kdf=FAST_TEST_KDF).save(identity, PW)
    prep = Node(node_config(home))
    await prep.start()
    await import_model(prep, tiny_gguf, TINY)
    await prep.stop()
    monkeypatch.setenv("SILNODE_PASSWORD", PW)
    d = start_daemon(home, timeout=60)
    try:
        run_cli(home, "serve", TINY)
        for _ in range(2):  # two HTTP requests
            post(f"{d.url}/v1/completions", {"model": TINY, "prompt": "hello", "max_tokens": 2})
        deadline = time.monotonic() + 60
        while not json.loads(run_cli(home, "providers", "--json").stdout)["providers"]:  # announced: ask finds it
            assert time.monotonic() < deadline, "no announcement"
            time.sleep(0.5)
        reply = json.loads(run_cli(home, "ask", "hi", "--model", TINY, "--max-tokens", "2", "--json").stdout)
        assert reply["text"]  # one NIP-90 job

        st = json.loads(run_cli(home, "status", "--json").stdout)["status"]
        demand = st["serving"][TINY]["demand"]
        assert demand["totals"] == {"http": 2, "nip90": 1}
        assert demand["per_minute"] == {"http": 0.4, "nip90": 0.2, "total": 0.6}  # 3 requests in 5 minutes
        screen = run_cli(home, "status").stdout
        assert f"serving    {TINY}: ready, 3 request(s)" in screen
        assert "demand 0.6/min (HTTP 0.4, NIP-90 0.2, last 5 min)" in screen
        assert f"dashboard  {d.url}/ (read-only; `silnode dashboard login`" in screen

        deadline = time.monotonic() + 60
        while True:  # the next announcement carries the demand
            provs = json.loads(run_cli(home, "providers", "--model", TINY, "--json").stdout)["providers"]
            if provs and provs[0]["requests_per_minute"] == 0.6:
                break
            assert time.monotonic() < deadline, provs
            time.sleep(0.5)
        (p,) = provs
        assert p["npub"] == identity.npub and p["models"][0]["requests_per_minute"] == 0.6
        assert p["pricing"] == {"msats_per_job": 0, "msats_per_1k_tokens": 0, "required": False}
        assert p["price_msats"] == 0 and p["uptime_s"] is not None and p["uptime_s"] >= 0
        assert p["online_since"] <= p["created_at"]
        human = run_cli(home, "providers", "--model", TINY).stdout
        assert "REQ/MIN" in human and "UPTIME" in human and "free" in human
    finally:
        stop_daemon(d)
