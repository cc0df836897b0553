"""The relay pool: the configured relays, or the node's own embedded relay when none is configured or none
answers, behind one nostr-sdk Client with a TCP_NODELAY transport and fast reconnects.

    pool = RelayPool(["wss://relay.example"], embedded=EmbeddedRelay(home / "nostr" / "relay", port=7447))
    await pool.start()            # connects; falls back to the embedded relay (and says so)
    out = await pool.publish(ev)  # retried while no relay takes it (a relay restarting mid-job)
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from nostr_sdk import (
    Client,
    ClientBuilder,
    Event,
    Filter,
    LocalRelayBuilder,
    NostrLmdb,
    RateLimit,
    RelayOptions,
    RelayStatus,
    RelayUrl,
    ReqTarget,
)

from silnode.dvm.transport import NoDelayTransport, bind_loop
from silnode.errors import NostrError

log = logging.getLogger(__name__)

# The embedded relay limits events per *connection*. The provider's one connection carries at least three
# events per job (processing, result, success) plus partials. The fastest job rate measured through a
# LocalRelay is 217 jobs/s (20 customers, idle machine: research/nostr-notes.md; bench/dvm.py measured 22 on
# a busy 2-core one), ~650 provider events/s or 39k/min; 200k/min is 5x that, room for partials (2/s per
# streaming job) on top.
EMBEDDED_NOTES_PER_MINUTE = 200_000
EMBEDDED_MAX_REQS = 20_000
CONNECT_TIMEOUT = timedelta(seconds=3)


def relay_options() -> Any:
    # default backoff waits ~10 s after a relay comes back; a job in flight should not wait that long
    return RelayOptions().reconnect(True).retry_interval(timedelta(seconds=1)).adjust_retry_interval(False)


def new_client() -> Client:
    bind_loop()
    return ClientBuilder().websocket_transport(NoDelayTransport()).build()


class EmbeddedRelay:
    """nostr-sdk's LocalRelay on LMDB (events survive a restart), bound to loopback."""

    def __init__(self, path: Path, *, host: str = "127.0.0.1", port: int = 7447) -> None:
        self.path, self.host, self.port = path, host, port
        self._relay: Any = None
        self.url: str | None = None

    async def start(self) -> str:
        bind_loop()  # LMDB's callbacks need the running loop
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            db = await NostrLmdb.open(str(self.path))
            builder = (
                LocalRelayBuilder()
                .addr(self.host)
                .rate_limit(RateLimit(max_reqs=EMBEDDED_MAX_REQS, notes_per_minute=EMBEDDED_NOTES_PER_MINUTE))
                .max_connections(10_000)
                .database(db)
            )
            if self.port:
                builder = builder.port(self.port)
            self._relay = builder.build()
            await self._relay.run()
            self.url = str(await self._relay.url())
        except Exception as exc:  # nostr-sdk raises its own NostrSdkError (port in use, LMDB locked, ...)
            self._relay = None
            raise NostrError(
                f"cannot start the embedded relay on {self.host}:{self.port}: {exc}",
                hint="another program uses the port: set nostr.relay_port (0 picks a free one)",
            ) from exc
        return self.url

    async def stop(self) -> None:
        if self._relay is not None:
            self._relay.shutdown()
            self._relay = None
            await asyncio.sleep(0.2)  # let its tasks end before the loop does (it crashes at exit otherwise)

    @property
    def running(self) -> bool:
        return self._relay is not None


def parse_relay(url: str) -> Any:
    try:
        return RelayUrl.parse(url)
    except Exception as exc:
        raise NostrError(f"not a relay URL: {url!r}", hint="relays look like wss://relay.example.com") from exc


class RelayPool:
    def __init__(self, urls: list[str] | tuple[str, ...], *, embedded: EmbeddedRelay | None = None) -> None:
        self.urls = list(urls)
        self.embedded = embedded
        self.client: Client | None = None
        self.using_embedded = False

    async def start(self) -> None:
        self.client = new_client()
        for url in self.urls:
            await self.client.add_relay(parse_relay(url), opts=relay_options())
        if self.urls:
            await self.client.connect(CONNECT_TIMEOUT)
            if await self.connected():
                return
            log.warning("none of the configured relays answered (%s)", ", ".join(self.urls))
        if self.embedded is None:
            raise NostrError("no relay answered", hint="check nostr.relays, or run `silnode relay`")
        await self._use_embedded()

    async def _use_embedded(self) -> None:
        assert self.client is not None and self.embedded is not None
        # a relay of ours may already listen there (`silnode relay`, another node): use it rather than fight
        url = f"ws://{self.embedded.host}:{self.embedded.port}" if self.embedded.port else None
        if url and await self._try(url):
            log.info("using the local relay already running at %s", url)
        else:
            url = await self.embedded.start()
            log.info(
                "no relay %s: started the embedded relay at %s (LMDB under %s); customers on this machine reach it",
                "configured" if not self.urls else "answered",
                url,
                self.embedded.path,
            )
            await self.client.add_relay(parse_relay(url), opts=relay_options())
            await self.client.connect(CONNECT_TIMEOUT)
        self.using_embedded = True
        self.urls.append(url)

    async def _try(self, url: str) -> bool:
        assert self.client is not None
        await self.client.add_relay(parse_relay(url), opts=relay_options())
        await self.client.connect(timedelta(seconds=1))
        if url.rstrip("/") in [u.rstrip("/") for u in await self.connected()]:
            return True
        await self.client.remove_relay(parse_relay(url))
        return False

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.shutdown()
            self.client = None
        if self.embedded is not None:
            await self.embedded.stop()

    # ------------------------------------------------------------------ state
    async def connected(self) -> list[str]:
        """The relays connected now (their URLs as nostr-sdk writes them)."""
        return [d["url"] for d in await self.describe() if d["status"] == "connected"]

    async def describe(self) -> list[dict[str, Any]]:
        if self.client is None:
            return []
        relays = await self.client.relays()
        emb = self.embedded.url.rstrip("/") if self.embedded is not None and self.embedded.url else None
        return [
            {
                "url": str(u),
                "status": "connected"
                if r.status() == RelayStatus.CONNECTED
                else str(r.status()).rsplit(".", 1)[-1].lower(),
                "embedded": emb is not None and str(u).rstrip("/") == emb,
            }
            for u, r in relays.items()
        ]

    # ------------------------------------------------------------------ I/O
    async def publish(self, event: Event, *, attempts: int = 40, delay: float = 0.5) -> list[str]:
        """Send ``event`` to the pool until at least one relay takes it. ``send_event`` never raises and a
        relay that is down fails at once; re-sending the same signed event is safe (same id)."""
        assert self.client is not None
        last: Any = None
        for _ in range(attempts):
            try:
                out = await self.client.send_event(event)
            except Exception as exc:  # nostr-sdk: no relays at all, or every one errored
                last = exc
            else:
                if out.success:
                    return [str(u) for u in out.success]
                last = "; ".join(f"{u}: {m}" for u, m in out.failed.items()) or "no relay"
            await asyncio.sleep(delay)
        raise NostrError(f"no relay accepted event {event.id().to_hex()[:16]}: {last}")

    async def fetch(self, filt: Filter, timeout: float = 3.0) -> list[Event]:
        assert self.client is not None
        try:
            return list(await self.client.fetch_events(ReqTarget.auto([filt]), timedelta(seconds=timeout)))
        except Exception as exc:
            raise NostrError(f"fetching from the relays failed: {exc}") from exc
