"""The Node: owns the services, starts them in dependency order and stops them in reverse.

    store -> tasks -> torrent engine -> distribution -> serving -> models

It only wires services and answers node-wide questions (health, status, hardware, identity); what a user
does with models lives in the models service. The API layer reaches every service through the Node
(``node.models``, ``node.distribution``, ``node.serving``, ``node.tasks``); the Node never imports the API,
the CLI, the client or the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, Protocol

from silnode import __version__
from silnode.config import Config
from silnode.discovery.service import DiscoveryService
from silnode.distribution import DistributionService
from silnode.dvm.payment import LedgerGate
from silnode.dvm.service import DvmService
from silnode.errors import IdentityNotFound
from silnode.fit.hardware import probe
from silnode.fit.inspect import hardware_overrides
from silnode.identity import Identity, Keystore
from silnode.models import ModelsService
from silnode.netpolicy import Policy
from silnode.payments.service import PaymentsService
from silnode.serving.service import ServingService
from silnode.store import Store
from silnode.tasks import Tasks
from silnode.torrent.engine import TorrentEngine
from silnode.webseed_gate import WebSeedGate

log = logging.getLogger(__name__)


class Service(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class StoreService:
    name = "store"

    def __init__(self, store: Store) -> None:
        self.store = store

    async def start(self) -> None:
        await asyncio.to_thread(self.store.ensure_dirs)

    async def stop(self) -> None:
        pass


class Node:
    def __init__(self, config: Config, *, identity: Identity | None = None) -> None:
        self.config = config
        self.identity = identity  # silnode.identity.Identity (unlocked, in memory only) or None
        self.started_at = time.time()
        self.store = Store(config.base_dir, min_free_bytes=config.storage.min_free_bytes)
        self.tasks = Tasks()
        self.engine = TorrentEngine(config)
        self.distribution = DistributionService(config, self.store, self.engine)
        self.discovery = DiscoveryService(config, self.store, self.engine, identity)
        self.serving = ServingService(config, self.store)
        self.models = ModelsService(config, self.store, self.tasks, self.distribution, self.serving)
        self.payments = PaymentsService(config, identity)  # the ledger and the PaymentGate the DVM calls
        # web seeds from elsewhere (a magnet's ws=) reach libtorrent only as URLs of this gate (webseed_gate.py)
        self.webseed_gate = WebSeedGate(
            Policy(lan_only=config.network.lan_only), timeout=config.network.web_seed_timeout
        )
        # sells the served models on Nostr (NIP-90), priced and paid through the payments service
        self.dvm = DvmService(config, self.serving, identity, gate=LedgerGate(self.payments))
        self.distribution.route_web_seed = self.webseed_gate.route  # a magnet's ws= URLs: through the gate
        self.dvm.catalog_magnet = lambda: self.discovery.catalog_magnet  # announced in NIP-89 content
        self.dvm.on_catalog = lambda key: self.discovery.learn_publisher(key, "nip89")  # and learned from it
        # dependency order: the store first, then what uses it (discovery joins after distribution, the DVM
        # after serving); stopped in reverse
        self.services: list[Service] = [
            StoreService(self.store),
            self.tasks,
            self.webseed_gate,
            self.engine,
            self.distribution,
            self.discovery,
            self.serving,
            self.models,
            self.payments,
            self.dvm,
        ]
        self._started: list[Service] = []
        self.shutdown_requested = asyncio.Event()

    async def start(self) -> None:
        for svc in self.services:
            log.info("starting %s", svc.name)
            await svc.start()
            self._started.append(svc)

    async def stop(self) -> None:
        while self._started:
            svc = self._started.pop()
            log.info("stopping %s", svc.name)
            try:
                await svc.stop()
            except Exception:  # keep stopping the rest
                log.exception("error while stopping %s", svc.name)

    def request_shutdown(self) -> None:
        self.shutdown_requested.set()

    # ------------------------------------------------------------------ queries
    def identity_info(self) -> dict[str, Any]:
        """Public parts only: from the unlocked identity, else from the keystore's clear header."""
        if self.identity is not None:
            return {**self.identity.public_info(), "unlocked": True}
        ks = Keystore.for_config(self.config)
        if not ks.exists():
            raise IdentityNotFound("this node has no identity yet", hint="run `silnode identity new`")
        return {**ks.read_public_info(), "unlocked": False}

    def health(self) -> dict[str, Any]:
        return {"ok": True, "version": __version__, "pid": os.getpid()}

    async def status(self) -> dict[str, Any]:
        names = await asyncio.to_thread(self.store.names)
        size = await asyncio.to_thread(self.store.total_size)
        free = await asyncio.to_thread(self.store.free_bytes)
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started_at, 3),
            "home": str(self.config.home),
            "bind": self.config.daemon.bind_address,
            "services": [s.name for s in self._started],
            "store": {"path": str(self.store.base_dir), "models": len(names), "bytes": size, "free_bytes": free},
            "tasks": {"running": self.tasks.running()},
            "torrents": self.distribution.summary(),
            "serving": self.serving.summary(),
            "discovery": self.discovery.summary(),
            "dvm": await self.dvm.status(),
            "payments": self.payments.summary(),
        }

    async def hardware(self) -> dict[str, Any]:
        """What the probes see (NVML, AMD sysfs, Apple, RAM; ggml only in a child process), with the
        config caps applied. Probing runs off the loop: NVML's first init takes ~20 ms."""
        report = await asyncio.to_thread(probe, hardware_overrides(self.config))
        return report.to_dict()
