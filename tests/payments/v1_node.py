"""The node the /v1 payment tests sell from: the tiny model's worker, /v1 priced at 2 sats a request and paid
in ecash from the test mint, selling on Nostr off."""

from __future__ import annotations

from pathlib import Path

from silnode.config import Config, load_config


def priced_v1_config(home: Path, mint_url: str, bind: str = "127.0.0.1") -> Config:
    return load_config(
        home,
        overrides={
            "daemon.port": 0,
            "daemon.bind_address": bind,
            "nostr.sell": False,
            "serve.n_threads": 2,
            "serve.n_ctx": 512,
            "payments.require_payment_http": True,
            "payments.mints": [mint_url],
            "payments.price_msats_per_job": 2000,  # 2 sats a request
        },
    )
