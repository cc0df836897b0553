"""Pricing, bids, the ledger and the payments config: logic only (the money paths run against a real mint in
test_gate_mint.py)."""

from __future__ import annotations

import os
import sqlite3
import time

import pytest

from silnode.config import load_config
from silnode.errors import BadRequest, BidTooLow, ConfigError, PaymentsUnavailable
from silnode.payments.cashu.token import Proof
from silnode.payments.ledger import Ledger, ProofBox, parse_since, proof_key
from silnode.payments.pricing import Pricing, check_bid


def test_quote_is_fixed_plus_per_1k_tokens_rounded_up_to_whole_sats() -> None:
    p = Pricing(per_job_msats=2000, per_1k_tokens_msats=1500)
    assert p.quote(1000) == 3500 + 500  # 2000 + 1500 = 3500 msats -> 4 sats
    assert p.quote(0) == 2000
    assert p.quote(1) == 3000  # 2000 + ceil(1.5) = 2002 -> 3 sats
    assert Pricing(0, 0).free and Pricing(0, 0).quote(500) == 0
    assert Pricing(1, 0).quote(0) == 1000
    with pytest.raises(BadRequest):
        p.quote(-1)
    with pytest.raises(BadRequest):
        Pricing(-1, 0)


def test_bid_below_price_is_refused_naming_the_price_and_never_charged_more_than_the_bid() -> None:
    assert check_bid(4000, None) == 4000
    assert check_bid(4000, 4000) == 4000
    assert check_bid(4000, 10_000) == 4000  # a generous bid pays the price, not the bid
    with pytest.raises(BidTooLow) as err:
        check_bid(4000, 3999)
    assert "4000 msats" in err.value.message and err.value.details["price_msats"] == 4000
    assert err.value.to_json()["code"] == "bid_too_low" and err.value.status == 400
    with pytest.raises(BadRequest):
        check_bid(4000, -5)


def test_parse_since() -> None:
    now = 1_000_000.0
    assert parse_since("7d", now) == now - 7 * 86400
    assert parse_since("12h", now) == now - 12 * 3600
    assert parse_since("90", now) == now - 90
    assert parse_since(None) is None
    for bad in ("7x", "d", "-1d", "1.5h"):
        with pytest.raises(BadRequest, match="since must look like"):
            parse_since(bad, now)


def _proof(amount: int) -> Proof:
    return Proof(amount, "00ad268c4d1f5826", os.urandom(32).hex(), "02" + os.urandom(32).hex())


def test_ledger_states_summary_and_restart(tmp_path) -> None:
    box = ProofBox(proof_key(b"\x01" * 32))
    led = Ledger(tmp_path / "payments.db", box).open()
    a = led.run(lambda: led.create(job_id="j1", kind="invoice", backend="cashu", amount_msats=4000, model="org/a",
                                   max_tokens=100, invoice_id="q1", bolt11="lnbc1...", expires_at=time.time() + 60))  # fmt: skip
    led.run(led.create, job_id="j2", kind="free", backend="none", amount_msats=0, state="free", model="org/a")
    secret_proof = _proof(4)
    led.run(lambda: led.set_state(a.id, "paid", proofs=[secret_proof], note="invoice paid"))
    led.run(lambda: led.set_work("j1", tokens=77, model=None))
    c = led.run(led.create, job_id="j3", kind="invoice", backend="cashu", amount_msats=2000, model="org/b")
    assert [p.job_id for p in led.run(led.pending)] == ["j3"]
    led.close()

    # a restart: the same file, a fresh ledger
    led = Ledger(tmp_path / "payments.db", box).open()
    paid = led.run(led.get, a.id)
    assert (paid.state, paid.tokens, paid.model, paid.amount_msats) == ("paid", 77, "org/a", 4000)
    assert paid.paid_at is not None and paid.paid_at >= paid.created_at
    assert led.run(led.events, a.id) == [("unpaid", None), ("paid", "invoice paid")]
    assert [pr for _, pr in led.run(led.held_proofs)] == [secret_proof]
    assert led.run(led.held_msats) == 4000
    s = led.run(led.summary, None)
    assert s["earned_msats"] == 4000
    assert s["totals"]["paid"] == {"count": 1, "msats": 4000} and s["totals"]["unpaid"] == {"count": 1, "msats": 2000}
    assert s["totals"]["free"]["count"] == 1
    models = {m["model"]: m for m in s["per_model"]}
    assert models["org/a"] == {"model": "org/a", "jobs": 2, "paid_msats": 4000, "unpaid_msats": 0,
                               "refunded_msats": 0, "tokens": 77}  # fmt: skip
    assert models["org/b"]["unpaid_msats"] == 2000
    assert len(s["per_day"]) == 1 and s["per_day"][0]["paid_msats"] == 4000
    assert led.run(led.summary, time.time() + 10)["per_model"] == []
    led.run(led.set_state, c.id, "expired")
    assert led.run(led.pending) == []
    led.close()

    # proofs are encrypted at rest: the secret is nowhere in the file, and only the right key opens them
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("payments.db"))
    assert secret_proof.secret.encode() not in raw and bytes.fromhex(secret_proof.secret) not in raw
    blob = sqlite3.connect(tmp_path / "payments.db").execute("SELECT blob FROM proofs").fetchone()[0]
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidTag
        ProofBox(proof_key(b"\x02" * 32)).open(blob)
    assert oct(os.stat(tmp_path / "payments.db").st_mode & 0o777) == "0o600"


def test_ledger_without_identity_refuses_to_hold_proofs(tmp_path) -> None:
    led = Ledger(tmp_path / "p.db").open()
    try:
        with pytest.raises(PaymentsUnavailable, match="identity unlocked"):
            led.run(lambda: led.create(job_id="j", kind="cashu", backend="cashu", amount_msats=1000, state="paid",
                                       proofs=[_proof(1)]))  # fmt: skip
        assert led.run(led.by_job, "j") == []  # the transaction rolled back: no paid job without its money
    finally:
        led.close()


def test_payments_config(tmp_path) -> None:
    cfg = load_config(tmp_path, environ={})
    assert cfg.payments.require_payment is False and cfg.payments.backend == "cashu"
    cfg = load_config(
        tmp_path,
        environ={
            "SILNODE_PAYMENTS__REQUIRE_PAYMENT": "true",
            "SILNODE_PAYMENTS__MINTS": "http://127.0.0.1:3338,https://mint.example",
            "SILNODE_PAYMENTS__PRICE_MSATS_PER_JOB": "21000",
        },
    )
    assert cfg.payments.mints == ("http://127.0.0.1:3338", "https://mint.example")
    assert cfg.payments.price_msats_per_job == 21000
    bad = [
        ({"SILNODE_PAYMENTS__BACKEND": "paypal"}, "cashu, lnbits or nwc"),
        ({"SILNODE_PAYMENTS__REQUIRE_PAYMENT": "true"}, "needs payments.mint_url"),
        ({"SILNODE_PAYMENTS__REQUIRE_PAYMENT": "true", "SILNODE_PAYMENTS__BACKEND": "lnbits"}, "lnbits_url"),
        ({"SILNODE_PAYMENTS__PRICE_MSATS_PER_JOB": "-1"}, ">= 0"),
        ({"SILNODE_PAYMENTS__MINTS": "ftp://x"}, "not an http"),
        ({"SILNODE_PAYMENTS__LNBITS_KEY": "x"}, "unknown config key payments.lnbits_key"),
    ]
    for env, why in bad:
        with pytest.raises(ConfigError, match=why):
            load_config(tmp_path, environ=env)
