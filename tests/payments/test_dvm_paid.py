"""A priced NIP-90 job end to end: a real relay, a real llama.cpp worker and a real nutshell mint. The
provider answers a kind-5050 job with a payment-required feedback carrying ["amount", msats, bolt11]; the
customer's cashu wallet pays that bolt11 at the mint; only then does the job run, and its result carries the
amount; the earnings ledger shows it paid. A bid under the price is refused with the price named."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "dvm"))

from dvm_helpers import PHRASE, TINY, import_tiny  # noqa: E402
from nostr_sdk import Keys, PublicKey  # noqa: E402

from silnode.config import load_config  # noqa: E402
from silnode.dvm.customer import Customer as NostrCustomer  # noqa: E402
from silnode.errors import JobRejected  # noqa: E402
from silnode.identity import Identity  # noqa: E402
from silnode.node import Node  # noqa: E402

pytestmark = pytest.mark.timeout(240)
PRICE = 2000  # msats per job


async def test_a_priced_job_runs_once_paid_and_the_ledger_says_so(clean_env, tiny_gguf, mint, customer):
    config = load_config(
        clean_env,
        overrides={
            "daemon.port": 0,
            "nostr.relay_port": 0,
            "serve.n_threads": 2,
            "serve.n_ctx": 512,
            "payments.require_payment": True,
            "payments.backend": "cashu",
            "payments.mint_url": mint.url,
            "payments.price_msats_per_job": PRICE,
            "payments.price_msats_per_1k_tokens": 0,
            "payments.invoice_expiry": 120,
        },
    )
    identity = Identity.from_mnemonic(PHRASE)
    node = Node(config, identity=identity)
    await node.start()
    buyer = NostrCustomer(Keys.generate(), [node.dvm.pool.embedded.url])
    await buyer.start()
    try:
        await import_tiny(node, tiny_gguf)
        await node.serving.load(TINY)
        provider = PublicKey.parse(identity.nostr.pubkey_hex)
        params = {"model": TINY, "max_tokens": "4", "temperature": "0"}

        with pytest.raises(JobRejected) as exc:  # the bid is under the price: refused before any invoice
            await buyer.ask("hello", provider=provider, params=params, bid=PRICE - 1000)
        assert str(PRICE) in str(exc.value)

        paid: list[tuple[int, str]] = []

        async def pay(msats: int, bolt11: str) -> None:
            paid.append((msats, bolt11))
            await customer.pay(bolt11)  # the customer's cashu wallet melts ecash into the invoice

        seen: list[str] = []
        reply = await buyer.ask(
            "hello world",
            provider=provider,
            params=params,
            bid=5000,
            on_status=lambda s, extra, content: seen.append(s),
            on_payment=pay,
        )
        assert [m for m, _ in paid] == [PRICE] and paid[0][1].startswith("ln")  # one real bolt11
        assert seen.index("payment-required") < seen.index("processing")  # paid first, then run
        assert reply["amount_msats"] == PRICE and reply["text"]
        job = await node.dvm.job(reply["job"])
        assert job["status"] == "success" and job["amount"] == PRICE
        earned = await node.payments.earnings()
        assert earned["totals"]["paid"]["msats"] == PRICE, earned
    finally:
        await buyer.stop()
        await node.stop()
