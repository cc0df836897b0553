#!/usr/bin/env python3
"""Benchmark: the time a payment adds to a job on loopback, per backend (p50 and p90 over N jobs).

    python bench/payments.py [--n 20] [--json]

Starts a real nutshell mint (FakeWallet brr=false) and LNbits (FakeWallet) from their own venvs
(scripts/test_services.py), as the tests do. Per backend:

    invoice   gate.charge -> a bolt11 (the node's side before the payment-required feedback goes out)
    release   the customer's payment done -> charge.wait() returns (the poll: how soon the job may run)
    cashu     gate.charge with a ["cashu", token] prepayment (swap at the mint, ledger commit)

The customer's own paying time (melt / LNbits pay) is not the node's and is reported apart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "payments"))

from services import LNbits, Mint  # noqa: E402
from wallet import Customer  # noqa: E402

from silnode.payments.backends import CashuMintBackend, LNbitsBackend  # noqa: E402
from silnode.payments.ecash import Ecash  # noqa: E402
from silnode.payments.gate import JobTerms, PaymentGate  # noqa: E402
from silnode.payments.ledger import Ledger, ProofBox, proof_key  # noqa: E402
from silnode.payments.pricing import Pricing  # noqa: E402

POLL = 0.1


def stats(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"p50_ms": round(statistics.median(xs) * 1000, 1), "p90_ms": round(xs[int(len(xs) * 0.9) - 1] * 1000, 1)}


def gate(tmp: Path, backend, mints: tuple[str, ...]) -> PaymentGate:
    ledger = Ledger(tmp / f"{backend.name}-{os.urandom(4).hex()}.db", ProofBox(proof_key(os.urandom(32)))).open()
    return PaymentGate(ledger, Pricing(2000, 0), backend, Ecash(mints), poll_interval_s=POLL)


async def bench_invoices(g: PaymentGate, pay, n: int) -> dict[str, dict[str, float]]:
    make, release, paying = [], [], []
    for i in range(n):
        t0 = time.perf_counter()
        charge = await g.charge(JobTerms(f"{i:064x}", 0))
        t1 = time.perf_counter()
        await pay(charge.bolt11)
        t2 = time.perf_counter()
        await charge.wait()
        t3 = time.perf_counter()
        make.append(t1 - t0)
        paying.append(t2 - t1)
        release.append(t3 - t2)
    return {"invoice": stats(make), "release": stats(release), "customer_pays": stats(paying)}


async def run(n: int, tmp: Path) -> dict:
    out: dict = {"n": n, "poll_interval_s": POLL}
    mint = Mint(tmp / "mint", brr=True).start()
    try:
        customer = Customer(mint.url)
        await customer.fund(10 * n + 100)
        await customer.close()
        proofs = customer.proofs
        mint.restart(brr=False)
        customer = Customer(mint.url, proofs)
        g = gate(tmp, CashuMintBackend(mint.url), (mint.url,))
        out["cashu_invoice"] = await bench_invoices(g, customer.pay, n)
        pre = []
        for i in range(n):
            token = await customer.token(3)
            t0 = time.perf_counter()
            await g.charge(JobTerms(f"{i + n:064x}", 0, cashu=token))
            pre.append(time.perf_counter() - t0)
        out["cashu_prepayment"] = stats(pre)
        await g.close()
        g.ledger.close()
        await customer.close()
    finally:
        mint.stop()

    ln = LNbits(tmp / "lnbits").start()
    try:
        bearer = ln.first_install()
        node, cust = ln.new_wallet(bearer, "node"), ln.new_wallet(bearer, "customer")
        ln.credit(bearer, cust["id"], 10 * n + 100)
        g = gate(tmp, LNbitsBackend(ln.url, node["inkey"]), ())

        async def pay(bolt11: str) -> None:
            await asyncio.to_thread(ln.pay, cust["adminkey"], bolt11)

        out["lnbits_invoice"] = await bench_invoices(g, pay, n)
        await g.close()
        g.ledger.close()
    finally:
        ln.stop()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run(args.n, Path(tmp)))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"payments on loopback, n={args.n}, invoice poll every {POLL} s (p50 / p90 ms)")
    for name in ("cashu_invoice", "lnbits_invoice"):
        r = result[name]
        print(f"  {name:16} invoice {r['invoice']['p50_ms']:7.1f} / {r['invoice']['p90_ms']:7.1f}   "
              f"paid->released {r['release']['p50_ms']:7.1f} / {r['release']['p90_ms']:7.1f}   "
              f"(customer pays {r['customer_pays']['p50_ms']:.1f})")  # fmt: skip
    r = result["cashu_prepayment"]
    print(f"  {'cashu_prepayment':16} swap+commit {r['p50_ms']:7.1f} / {r['p90_ms']:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
