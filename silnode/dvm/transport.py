"""A WebSocket transport for nostr-sdk that sets TCP_NODELAY.

nostr-sdk's own transport leaves Nagle's algorithm on, so each small event (a feedback, an OK) can wait
~40 ms for the peer's delayed ACK (research/nostr-notes.md: 87 ms -> 5 ms per job on LocalRelay). aiohttp's
connector sets TCP_NODELAY on every socket it opens, so this adapter hands nostr-sdk aiohttp WebSockets.
It needs ``uniffi_set_event_loop(loop)`` before the client is built (see :func:`bind_loop`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from nostr_sdk import (
    CustomWebSocketTransport,
    NostrSdkError,
    WebSocketAdapter,
    WebSocketAdapterWrapper,
    WebSocketMessage,
    uniffi_set_event_loop,
)

from silnode.errors import SilnodeError

MAX_MESSAGE = 1 << 20  # relays cap events at 64 KiB; a REQ answer is one event per message


def bind_loop() -> None:
    """Let nostr-sdk call back into this asyncio loop (the transport and LMDB callbacks need it)."""
    uniffi_set_event_loop(asyncio.get_running_loop())


class _Adapter(WebSocketAdapter):
    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.session, self.ws = session, ws

    async def send(self, msg: Any) -> None:
        try:
            if msg.is_TEXT():
                await self.ws.send_str(msg.text)
            elif msg.is_BINARY():
                await self.ws.send_bytes(msg.bytes)
            elif msg.is_PING():
                await self.ws.ping(msg.bytes)
            elif msg.is_PONG():
                await self.ws.pong(msg.bytes)
            elif msg.is_CLOSE():
                await self.ws.close()
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            raise NostrSdkError.Generic(f"websocket send failed: {exc}") from None

    async def recv(self) -> Any:
        try:
            m = await self.ws.receive()
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            return None
        if m.type == aiohttp.WSMsgType.TEXT:
            return WebSocketMessage.TEXT(m.data)
        if m.type == aiohttp.WSMsgType.BINARY:
            return WebSocketMessage.BINARY(m.data)
        return None  # closed or errored: nostr-sdk reconnects

    async def close_connection(self) -> None:
        try:
            await self.ws.close()
        finally:
            await self.session.close()


class NoDelayTransport(CustomWebSocketTransport):
    """aiohttp WebSockets (TCP_NODELAY on) for nostr-sdk's Client."""

    def __init__(self, resolver: Any = None) -> None:
        # a checking resolver (netpolicy) for connections to relays a stranger named (a job's relays tag)
        self.resolver = resolver

    def support_ping(self) -> bool:
        return False  # aiohttp answers pings itself (autoping)

    async def connect(self, url: str, proxy: Any) -> Any:
        if self.resolver is not None:  # no DNS cache: every connection asks the checking resolver
            connector = aiohttp.TCPConnector(force_close=True, resolver=self.resolver, use_dns_cache=False)
        else:
            connector = aiohttp.TCPConnector(force_close=True)
        session = aiohttp.ClientSession(connector=connector)
        try:
            ws = await session.ws_connect(url, max_msg_size=MAX_MESSAGE, autoping=True, heartbeat=None)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, SilnodeError) as exc:
            await session.close()
            raise NostrSdkError.Generic(f"cannot connect to {url}: {exc}") from None
        return WebSocketAdapterWrapper(_Adapter(session, ws))
