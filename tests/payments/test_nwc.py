"""The NWC backend end to end: a priced NIP-90 job whose payment-required invoice comes from the node's NWC wallet
(NIP-47 make_invoice / lookup_invoice through nostr-sdk's NostrWalletConnect) and is paid by the customer's own
NWC wallet (pay_invoice). Both wallets are LNbits wallets (FakeWallet) behind @getalby/sdk's NWCWalletService
(tests/payments/nwc_bridge.mjs: the one adapter that is test code), all on one loopback relay that also carries
the job. The node's connection URI is a keystore secret (nwc_uri)."""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "dvm"))

from dvm_helpers import PHRASE, TINY, import_tiny, start_relay  # noqa: E402
from nostr_sdk import Keys, NostrWalletConnect, NostrWalletConnectUri, PayInvoiceRequest, PublicKey  # noqa: E402
from services import LNbits, NWCBridge  # noqa: E402

from silnode.config import load_config  # noqa: E402
from silnode.dvm.customer import Customer as NostrCustomer  # noqa: E402
from silnode.identity import Identity  # noqa: E402
from silnode.node import Node  # noqa: E402

pytestmark = pytest.mark.timeout(300)
PRICE = 2000


def wallet_sats(ln: LNbits, key: str) -> int:
    req = urllib.request.Request(ln.url + "/api/v1/wallet", headers={"X-Api-Key": key})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["balance"] // 1000


async def test_a_job_paid_over_nwc_on_both_sides(tmp_path, clean_env, tiny_gguf):
    relay, url = await start_relay(tmp_path / "relay")
    ln = LNbits(tmp_path / "lnbits").start()
    bridge = None
    node = None
    buyer = NostrCustomer(Keys.generate(), [url])
    try:
        bearer = ln.first_install()
        seller_w, buyer_w = ln.new_wallet(bearer, "seller"), ln.new_wallet(bearer, "buyer")
        ln.credit(bearer, buyer_w["id"], 100)
        bridge = NWCBridge(tmp_path / "nwc", url, ln.url)
        seller_uri = bridge.connect(seller_w["inkey"])  # the invoice key: the node's wallet cannot spend
        buyer_uri = bridge.connect(buyer_w["adminkey"])
        await asyncio.to_thread(bridge.start)

        identity = Identity.from_mnemonic(PHRASE)
        identity.set_secret("nwc_uri", seller_uri)
        config = load_config(
            clean_env,
            overrides={
                "daemon.port": 0,
                "nostr.relay_port": 0,
                "nostr.relays": (url,),
                "serve.n_threads": 2,
                "serve.n_ctx": 512,
                "payments.require_payment": True,
                "payments.backend": "nwc",
                "payments.price_msats_per_job": PRICE,
                "payments.invoice_expiry": 120,
                "payments.poll_interval": 0.3,
            },
        )
        node = Node(config, identity=identity)
        await node.start()
        await import_tiny(node, tiny_gguf)
        await node.serving.load(TINY)
        await buyer.start()
        wallet = NostrWalletConnect(NostrWalletConnectUri.parse(buyer_uri))

        paid: list[tuple[int, str]] = []

        async def pay(msats: int, bolt11: str) -> None:
            paid.append((msats, bolt11))
            await wallet.pay_invoice(PayInvoiceRequest(id=None, invoice=bolt11, amount=None))

        seen: list[str] = []
        reply = await buyer.ask(
            "hello",
            provider=PublicKey.parse(identity.nostr.pubkey_hex),
            params={"model": TINY, "max_tokens": "4", "temperature": "0"},
            on_payment=pay,
            on_status=lambda s, *_: seen.append(s),
        )
        assert [m for m, _ in paid] == [PRICE] and paid[0][1].startswith("lnbc")  # LNbits' bolt11, via NIP-47
        assert seen.index("payment-required") < seen.index("processing")
        assert reply["text"] and reply["amount_msats"] == PRICE and node.dvm.inferences == 1
        assert wallet_sats(ln, seller_w["inkey"]) == 2 and wallet_sats(ln, buyer_w["inkey"]) == 98
        earned = await node.payments.earnings()
        assert earned["totals"]["paid"] == {"count": 1, "msats": PRICE}, earned
        ledger = node.payments.ledger
        (p,) = await ledger.call(ledger.by_job, reply["job"])
        assert p.backend == "nwc" and p.state == "paid"
    finally:
        await buyer.stop()
        if node is not None:
            await node.stop()
        if bridge is not None:
            bridge.stop()
        ln.stop()
        await relay.stop()
