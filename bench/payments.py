#!/usr/bin/env python3
"""Benchmark: the time a payment adds to a job on loopback, per backend (p50 and p90 over N jobs).

    python bench/payments.py [--n 20] [--json] [--no-e2e]

Starts a real nutshell mint (FakeWallet brr=false) and LNbits (FakeWallet) from their own venvs
(scripts/test_services.py), as the tests do. Two parts.

The gate alone, per backend (the anchor: a free job's ledger record):

    free      gate.charge of an unpriced job (one ledger write): what every job pays anyway
    invoice   gate.charge -> a bolt11 (the node's side before the payment-required feedback goes out)
    release   the customer's payment done -> charge.wait() returns (the poll: how soon the job may run)
    cashu     gate.charge with a ["cashu", token] prepayment (swap at the mint, ledger commit)

The whole NIP-90 job (``--no-e2e`` skips it): a customer publishes a kind-5050 job for the tiny generated model
(4 tokens) to a real node selling on its embedded relay, and waits for the 6050 result; free (the anchor), paid
by the cashu mint's invoice, prepaid with ["cashu", token], paid by the LNbits invoice. The paid rounds include
the customer's own paying (melt / LNbits pay) and the payment-required feedback's trip; "adds" is the paid
p50 minus the free p50.
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


async def bench_free(g: PaymentGate, n: int) -> dict[str, float]:
    free = []
    g.require_payment = False
    for i in range(n):
        t0 = time.perf_counter()
        await g.charge(JobTerms(f"free{i:060x}", 0))
        free.append(time.perf_counter() - t0)
    g.require_payment = True
    return stats(free)


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
        out["free"] = await bench_free(g, n)
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


# ---------------------------------------------------------------------------------------------- whole jobs
async def e2e(n: int, tmp: Path) -> dict:
    """Round trips of whole NIP-90 jobs: free, then paid three ways (see the module docstring)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from ggufgen import make_gguf
    from nostr_sdk import Keys, PublicKey

    from silnode.config import load_config
    from silnode.dvm.customer import Customer as NostrCustomer
    from silnode.dvm.customer import build_request
    from silnode.identity import Identity
    from silnode.node import Node

    model, gguf = "bench/tiny", make_gguf(tmp / "tiny.gguf")
    home = tmp / "home"
    identity = Identity.from_mnemonic("leader monkey parrot ring guide accident before fence cannon height naive bean")
    provider = PublicKey.parse(identity.nostr.pubkey_hex)
    params = {"model": model, "max_tokens": "4", "temperature": "0"}
    base = {"daemon.port": 0, "nostr.relay_port": 0, "serve.n_threads": 2, "serve.n_ctx": 512,
            "payments.price_msats_per_job": 2000, "payments.poll_interval": POLL, "payments.invoice_expiry": 120}  # fmt: skip

    async def rounds(overrides: dict, ask_one) -> dict[str, float]:
        node = Node(load_config(home, overrides={**base, **overrides}), identity=identity)
        await node.start()
        buyer = NostrCustomer(Keys.generate(), [node.dvm.pool.embedded.url])
        await buyer.start()
        try:
            if not node.store.exists(model):
                task = node.models.import_file(str(gguf), model, license="mit")
                await node.tasks.wait(task)
            await node.serving.load(model)
            await ask_one(buyer)  # warm-up: the first job pays for connections and caches
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                await ask_one(buyer)
                times.append(time.perf_counter() - t0)
            return stats(times)
        finally:
            await buyer.stop()
            await node.stop()

    out: dict = {}

    async def free(buyer):
        await buyer.ask("hello", provider=provider, params=params)

    out["free"] = await rounds({"payments.require_payment": False}, free)

    mint = Mint(tmp / "e2e-mint", brr=True).start()
    try:
        wallet = Customer(mint.url)
        await wallet.fund(10 * n + 100)
        await wallet.close()
        mint.restart(brr=False)
        wallet = Customer(mint.url, wallet.proofs)
        cashu = {"payments.require_payment": True, "payments.backend": "cashu", "payments.mints": [mint.url]}

        async def by_invoice(buyer):
            await buyer.ask("hello", provider=provider, params=params, on_payment=lambda m, b: wallet.pay(b))

        out["cashu_invoice"] = await rounds(cashu, by_invoice)

        async def prepaid(buyer):
            token = await wallet.token(2)  # the customer cuts the token (its paying time, as a melt is above)
            req = build_request(buyer.keys, "hello", provider=provider, params=params, encryption="nip44", cashu=token)
            await buyer.ask("", request=req, encryption="nip44")

        out["cashu_prepay"] = await rounds(cashu, prepaid)
        await wallet.close()
    finally:
        mint.stop()

    ln = LNbits(tmp / "e2e-lnbits").start()
    try:
        bearer = ln.first_install()
        node_w, cust = ln.new_wallet(bearer, "node"), ln.new_wallet(bearer, "customer")
        ln.credit(bearer, cust["id"], 10 * n + 100)
        identity.set_secret("lnbits_invoice_key", node_w["inkey"])

        async def by_lnbits(buyer):
            async def pay(msats, bolt11):
                await asyncio.to_thread(ln.pay, cust["adminkey"], bolt11)

            await buyer.ask("hello", provider=provider, params=params, on_payment=pay)

        out["lnbits_invoice"] = await rounds(
            {"payments.require_payment": True, "payments.backend": "lnbits", "payments.lnbits_url": ln.url}, by_lnbits
        )
    finally:
        ln.stop()
    for k in ("cashu_invoice", "cashu_prepay", "lnbits_invoice"):
        out[k]["adds_p50_ms"] = round(out[k]["p50_ms"] - out["free"]["p50_ms"], 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-e2e", action="store_true", help="only the gate, not whole NIP-90 jobs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run(args.n, Path(tmp)))
        if not args.no_e2e:
            result["e2e"] = asyncio.run(e2e(args.n, Path(tmp)))
    result["machine"] = {"cpus": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2), "date": time.strftime("%F %H:%M UTC", time.gmtime())}  # fmt: skip
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
    print(f"  {'free (anchor)':16} ledger record {result['free']['p50_ms']:7.1f} / {result['free']['p90_ms']:7.1f}")
    if "e2e" in result:
        print("whole NIP-90 jobs (publish -> result; p50 / p90 ms; adds = p50 - free p50)")
        for name, r in result["e2e"].items():
            adds = f"   adds {r['adds_p50_ms']:7.1f}" if "adds_p50_ms" in r else ""
            print(f"  {name:16} {r['p50_ms']:7.1f} / {r['p90_ms']:7.1f}{adds}")
    print(f"machine: {result['machine']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
