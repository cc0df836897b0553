"""The customer side as a user runs it: `silnode wallet` and `silnode ask --pay cashu --mint URL`, each its own
process, against a real serving node (selling on its embedded relay, payments required, real llama.cpp) and
real nutshell mints. Two ways to pay: a ["cashu", token] prepayment when the provider's NIP-89 announcement
names the price and takes the wallet's mint (the wallet funded by NUT-04 at a FakeWallet brr=true mint), and
the payment-required invoice melted from the wallet (its ecash received as a token, at the brr=false mint the
provider's invoices come from). A refused job's prepayment comes back to the wallet."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "dvm"))
sys.path.insert(0, str(Path(__file__).parents[1]))

from daemons import run_cli  # noqa: E402
from dvm_helpers import PHRASE, TINY, import_tiny, until  # noqa: E402

from silnode.config import load_config  # noqa: E402
from silnode.identity import FAST_TEST_KDF, Identity, Keystore  # noqa: E402
from silnode.node import Node  # noqa: E402

pytestmark = [pytest.mark.timeout(300), pytest.mark.e2e]
PW = "correct horse battery staple"


async def cli(home: Path, *args: str, check: bool = True):
    return await asyncio.to_thread(run_cli, home, *args, check=check)


async def test_ask_pays_from_the_cashu_wallet(tmp_path, clean_env, tiny_gguf, mint, mint_brr, customer, monkeypatch):
    node = Node(
        load_config(
            clean_env,
            overrides={
                "daemon.port": 0,
                "nostr.relay_port": 0,
                "serve.n_threads": 2,
                "serve.n_ctx": 512,
                "payments.require_payment": True,
                "payments.backend": "cashu",
                "payments.mint_url": mint.url,  # invoices: brr=false, paid only by a melt
                "payments.mints": [mint.url, mint_brr.url],  # prepayments from either
                "payments.price_msats_per_job": 1000,
                "payments.price_msats_per_1k_tokens": 250_000,  # 4 tokens: 1 + 1 = 2 sats
                "payments.invoice_expiry": 120,
            },
        ),
        identity=Identity.from_mnemonic(PHRASE),
    )
    await node.start()
    buyer = tmp_path / "buyer"  # the customer's own SILNODE_HOME: its identity encrypts the wallet
    Keystore.for_home(buyer, kdf=FAST_TEST_KDF).save(Identity.generate(), PW)
    monkeypatch.setenv("SILNODE_PASSWORD", PW)
    try:
        await import_tiny(node, tiny_gguf)
        await node.serving.load(TINY)
        relay = node.dvm.pool.embedded.url
        ask = ("ask", "hello", "--model", TINY, "--max-tokens", "4", "--relay", relay, "--json")

        async def announced() -> bool:
            r = await cli(buyer, "providers", "--relay", relay, "--json")
            return bool(json.loads(r.stdout)["providers"])

        await until(announced, 60, "the provider's announcement")

        # no identity, no wallet: a clear error with the next step
        r = await cli(tmp_path / "nobody", "wallet", "balance", check=False)
        assert r.returncode == 1 and "silnode identity new" in r.stderr

        # 1. fund 20 sats by NUT-04 at the brr mint, then prepay (price from NIP-89: 2 sats) with the job
        r = await cli(buyer, "wallet", "fund", "20", "--mint", mint_brr.url, "--json")
        assert json.loads(r.stdout)["balance_sats"] == 20 and "pay this invoice (20 sats): lnbc" in r.stderr
        r = await cli(buyer, *ask, "--pay", "cashu", "--mint", mint_brr.url)
        reply = json.loads(r.stdout)
        assert reply["text"] and reply["amount_msats"] == 2000
        assert reply["payment"] == {"how": "prepay", "paid_sats": 2, "back_sats": 0, "mint": mint_brr.url,
                                    "wallet_sats": 18}  # fmt: skip
        assert "payment-required" not in reply["statuses"]
        wallet_file = buyer / "wallet" / "cashu.enc"
        assert wallet_file.stat().st_mode & 0o777 == 0o600
        assert b"secret" not in wallet_file.read_bytes() and b"amount" not in wallet_file.read_bytes()

        # 2. a job the provider refuses (a model it does not serve): the prepayment comes back to the wallet
        r = await cli(buyer, *ask, "--pay", "cashu", "--mint", mint_brr.url, "--provider", node.identity.npub,
                      "--model", "org/none", check=False)  # fmt: skip
        assert r.returncode == 1 and "not served here" in r.stderr, r.stderr
        assert "took back the unspent prepayment (2 sats)" in r.stderr
        r = await cli(buyer, "wallet", "balance", "--json")
        assert json.loads(r.stdout)["balances"] == {mint_brr.url: 18}

        # 3. the invoice way: ecash of the invoice mint received as a token, then --no-prepay melts the bolt11
        r = await cli(buyer, "wallet", "receive", await customer.token(10), "--json")
        assert json.loads(r.stdout)["received_sats"] == 10
        r = await cli(buyer, *ask, "--pay", "cashu", "--mint", mint.url, "--no-prepay")
        reply = json.loads(r.stdout)
        assert reply["text"] and reply["amount_msats"] == 2000
        assert reply["statuses"].index("payment-required") < reply["statuses"].index("processing")
        assert reply["payment"]["how"] == "invoice" and reply["payment"]["wallet_sats"] == 8
        assert "paid the invoice: 2 sats" in r.stderr

        # a bid under the invoice: the wallet pays nothing
        r = await cli(buyer, *ask, "--pay", "cashu", "--mint", mint.url, "--no-prepay", "--bid", "1000", check=False)
        assert r.returncode == 1 and "2000 msats" in r.stderr
        r = await cli(buyer, "wallet", "balance", "--json")
        assert json.loads(r.stdout)["balances"] == {mint_brr.url: 18, mint.url: 8}

        # the seller's ledger: two jobs paid, 2 sats each
        earned = await node.payments.earnings()
        assert earned["totals"]["paid"] == {"count": 2, "msats": 4000}, earned
    finally:
        await node.stop()
