"""Earnings through GET /api/v1/earnings (the real app and node), `silnode earnings` against a live daemon,
and the same command with no daemon (it reads the ledger file)."""

from __future__ import annotations

import json

from daemons import run_cli, start_daemon, stop_daemon

from silnode.config import load_config
from silnode.payments.gate import JobTerms
from silnode.payments.ledger import Ledger
from silnode.payments.service import ledger_path


async def test_earnings_endpoint(node, api) -> None:
    gate = node.payments.gate
    assert (await gate.charge(JobTerms("1" * 64, 10, model="org/free"))).status == "free"
    led = node.payments.ledger
    await led.call(led.create, job_id="2" * 64, kind="invoice", backend="lnbits", amount_msats=21_000,
                   state="paid", model="org/paid")  # fmt: skip
    await gate.finish("2" * 64, tokens=64)
    await led.call(led.create, job_id="3" * 64, kind="invoice", backend="lnbits", amount_msats=5000, model="org/paid")

    r = await api.get("/api/v1/earnings?since=7d")
    assert r.status == 200
    e = (await r.json())["earnings"]
    assert e["earned_msats"] == 21_000
    assert e["totals"]["paid"] == {"count": 1, "msats": 21_000} and e["totals"]["free"]["count"] == 1
    per_model = {m["model"]: m for m in e["per_model"]}
    assert per_model["org/paid"] == {"model": "org/paid", "jobs": 2, "paid_msats": 21_000, "unpaid_msats": 5000,
                                     "refunded_msats": 0, "tokens": 64}  # fmt: skip
    assert per_model["org/free"]["jobs"] == 1 and per_model["org/free"]["paid_msats"] == 0
    assert [d["paid_msats"] for d in e["per_day"]] == [21_000]

    bad = await api.get("/api/v1/earnings?since=soon")
    assert bad.status == 400 and (await bad.json())["code"] == "bad_request"
    status = await (await api.get("/api/v1/status")).json()
    assert status["payments"] == {"require_payment": False, "backend": None,
                                  "pricing": {"unit": "msats", "per_job": 0, "per_1k_tokens": 0}}  # fmt: skip


def test_earnings_cli_with_and_without_a_daemon(clean_env) -> None:
    config = load_config(clean_env, environ={})
    led = Ledger(ledger_path(config)).open()
    led.run(led.create, job_id="4" * 64, kind="cashu", backend="cashu", amount_msats=3000, state="paid",
            model="org/m")  # fmt: skip
    led.close()

    offline = run_cli(clean_env, "earnings", "--json")
    assert json.loads(offline.stdout)["earned_msats"] == 3000
    human = run_cli(clean_env, "earnings", "--since", "1d")
    assert "earned 3 sat since 1d" in human.stdout and "org/m" in human.stdout
    assert "no daemon running" in human.stderr

    bad = run_cli(clean_env, "earnings", "--since", "yesterday", check=False)
    assert bad.returncode == 1 and "since must look like 7d" in bad.stderr

    d = start_daemon(clean_env)
    try:
        live = run_cli(clean_env, "earnings", "--json", "--since", "7d")
        data = json.loads(live.stdout)
        assert data["earned_msats"] == 3000 and data["per_model"][0]["model"] == "org/m"
        assert "no daemon running" not in live.stderr
    finally:
        stop_daemon(d)
