"""NIP-90's ``relays`` tag: the relays a customer wants the answers on. Feedback and results go there too,
besides the node's own relays, within bounds and the address rules of :mod:`silnode.netpolicy`.

A job's ``relays`` tag is a URL from a stranger, so it gets the web-seed treatment: ``ws://``/``wss://``
only, at most ``nostr.reply_relays`` of them per job, and every address the host resolves to must be public
(private and link-local too with ``network.lan_only``; loopback, private and link-local with
``nostr.reply_relays_local``, for one-machine setups and tests). The check is made before the first
connection and again by the resolver of every connection (a DNS answer that changes in between is caught).
Publishing there is a courtesy on top of the node's own relays: it is retried a little, then given up on,
and it never fails a job.

    replies = ReplyRelays(RelayPolicy(local=False), per_job=3)
    urls = await replies.targets(job.relays, own=pool.urls)   # checked and bounded; refusals are logged
    await replies.publish(event, urls)                         # best effort
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from nostr_sdk import ClientBuilder, RelayUrl, SendEventTarget

from silnode.dvm.relays import relay_options
from silnode.dvm.transport import NoDelayTransport, bind_loop
from silnode.errors import AddressRefused
from silnode.netpolicy import LINK_LOCAL, LOOPBACK, PRIVATE, Policy, checking_resolver, literal_ip, resolve

log = logging.getLogger(__name__)

SCHEMES = ("ws", "wss")
MAX_OPEN = 32  # reply relays held connected at once; the least recently used is dropped beyond that
DEAD_FOR = 60.0  # seconds a reply relay that took nothing is skipped (a dead relay must not slow every job)
ATTEMPTS, DELAY = 6, 0.5  # per event, once connected (a relay restarting, a slow OK)
CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class RelayPolicy(Policy):
    """netpolicy's rule for relay URLs; ``local`` (nostr.reply_relays_local) also lets loopback through."""

    local: bool = False

    @property
    def allowed(self) -> frozenset[str]:
        return super().allowed | ({LOOPBACK, PRIVATE, LINK_LOCAL} if self.local else frozenset())


def normal(url: str) -> str:
    return url.strip().rstrip("/")


def check_shape(url: str) -> tuple[str, int]:
    """(host, port) of a ws(s) relay URL, or AddressRefused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise AddressRefused(f"not a relay URL: {url[:120]!r} ({exc})") from None
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise AddressRefused(f"only ws:// and wss:// relays are used, not {url[:120]!r}")
    return parts.hostname, port or (443 if parts.scheme.lower() == "wss" else 80)


def check_relay(policy: Policy, url: str) -> None:
    """Resolve ``url``'s host now and check every address (blocking: DNS)."""
    host, port = check_shape(url)
    for ip in [literal_ip(host)] if literal_ip(host) is not None else resolve(host, port):
        policy.check_address(ip, what=url[:120])


class ReplyRelays:
    def __init__(self, policy: Policy, *, per_job: int) -> None:
        self.policy, self.per_job = policy, per_job
        self._client: Any = None
        self._open: OrderedDict[str, None] = OrderedDict()  # url -> (LRU order)
        self._dead: dict[str, float] = {}  # url -> monotonic time until which it is skipped
        self._checked: OrderedDict[str, str | None] = OrderedDict()  # url -> refusal reason (None: fine)

    async def targets(self, urls: list[str], *, own: list[str]) -> list[str]:
        """The job's relays worth publishing to: not the node's own, checked, at most ``per_job``."""
        mine = {normal(u) for u in own}
        out: list[str] = []
        for url in dict.fromkeys(normal(u) for u in urls):
            if len(out) >= self.per_job:
                log.info("a job names more than %d reply relays; the rest are not used", self.per_job)
                break
            if url in mine or not url:
                continue
            if url not in self._checked:
                try:
                    await asyncio.to_thread(check_relay, self.policy, url)
                    self._checked[url] = None
                except AddressRefused as exc:
                    self._checked[url] = str(exc)
                while len(self._checked) > 256:
                    self._checked.popitem(last=False)
            reason = self._checked[url]
            if reason is not None:
                log.info("not replying on a job's relay: %s", reason)
                continue
            out.append(url)
        return out

    def _client_now(self) -> Any:
        if self._client is None:
            bind_loop()
            # the resolver checks every address each connection is made to (checked above for literals)
            transport = NoDelayTransport(resolver=checking_resolver(self.policy))
            self._client = ClientBuilder().websocket_transport(transport).build()
        return self._client

    async def _ensure(self, url: str) -> None:
        client = self._client_now()
        if url in self._open:
            self._open.move_to_end(url)
            return
        await client.add_relay(RelayUrl.parse(url), opts=relay_options())
        self._open[url] = None
        relay = await client.relay(RelayUrl.parse(url))
        # the first connection is awaited (a busy machine may need seconds); a relay that cannot be reached is
        # not left behind to be retried forever
        await relay.try_connect(timedelta(seconds=CONNECT_TIMEOUT))
        while len(self._open) > MAX_OPEN:
            await self._drop(next(iter(self._open)))

    async def _drop(self, url: str) -> None:
        """Disconnect (a relay left in the client would be reconnected to forever)."""
        self._open.pop(url, None)
        if self._client is None:
            return
        try:
            await self._client.remove_relay(RelayUrl.parse(url), force=True)
        except Exception as exc:  # nostr-sdk: already gone
            log.debug("removing reply relay %s: %s", url, exc)

    async def publish(self, event: Any, urls: list[str]) -> list[str]:
        """Send ``event`` to ``urls`` (a few tries each); returns those that took it. Never raises."""
        now = time.monotonic()
        pending = [u for u in urls if self._dead.get(u, 0) <= now]
        took: list[str] = []
        if not pending:
            return took
        for url in list(pending):
            try:
                await self._ensure(url)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # nostr-sdk: cannot connect (refused, timeout, the resolver's refusal)
                log.info("reply relay %s: %s", url, exc)
                pending.remove(url)
                self._dead[url] = time.monotonic() + DEAD_FOR
                await self._drop(url)
        try:
            for _ in range(ATTEMPTS if pending else 0):
                out = await self._client.send_event(
                    event, target=SendEventTarget.to([RelayUrl.parse(u) for u in pending])
                )
                ok = {normal(str(u)) for u in out.success}
                took += [u for u in pending if u in ok]
                pending = [u for u in pending if u not in ok]
                if not pending:
                    break
                await asyncio.sleep(DELAY)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # nostr-sdk errors (a relay URL it will not take, no relay connected, ...)
            log.info("reply relays %s: %s", ", ".join(pending), exc)
        for url in pending:
            log.info("reply relay %s took nothing; skipping it for %.0f s", url, DEAD_FOR)
            self._dead[url] = time.monotonic() + DEAD_FOR
            await self._drop(url)
        while len(self._dead) > 256:
            self._dead.pop(next(iter(self._dead)))
        return took

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.shutdown()
            self._client = None
            self._open.clear()
