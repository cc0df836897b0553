"""A small KRPC client (BEP 5 / 43 / 44) for what libtorrent's Python bindings cannot do: put a BEP 46
dict value (``{"ih": …}``) and re-put somebody else's signed item as it is (libtorrent-notes §6b).

* Every query carries ``ro=1`` (BEP 43, read-only): nodes should not add this socket to their routing tables
  (without it libtorrent's lookups stalled for 5-30 s, notes §6b). libtorrent still adds the sender of a
  ``put``, so we also answer queries, with no nodes (:meth:`KrpcClient._answer`).
* ``get`` is an iterative lookup: query the known nodes, learn closer ones from their ``nodes``, until the
  8 closest (XOR distance to the target) have answered; their write tokens and stored items come back.
* ``put`` sends the signed item with each of those nodes' tokens; anyone may re-put a signed item.
* name hints: ``announce`` puts this socket under a name's target (BEP 5 ``announce_peer``), ``get_peers``
  finds such sockets, and ``ask_catalog`` asks one which catalog it publishes (our one extra query,
  ``silnode_catalog``, answered with the catalog key and salt; nothing secret).
* ``local_only`` (network.lan_only): nodes outside private/loopback/link-local ranges are never contacted,
  whatever a peer returns — libtorrent's address filter does not cover this socket.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from silnode.discovery.bencode import BencodeError, bdecode, bencode
from silnode.discovery.bep44 import MutableItem

log = logging.getLogger(__name__)

K = 8  # nodes that store an item (BEP 44: the 8 closest)
ALPHA = 4  # queries in flight per round
QUERY_TIMEOUT = 1.0
CATALOG_QUERY = "silnode_catalog"  # our one extra query: "which catalog do you publish?" (name hints)


@dataclass
class Responder:
    addr: tuple[str, int]
    node_id: bytes
    token: bytes | None = None
    item: MutableItem | None = None
    peers: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class PutResult:
    stored: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    item: MutableItem | None = None  # the item put
    latest: MutableItem | None = None  # the newest valid item the lookup saw (may be newer than ours)


def _xor(a: bytes, b: bytes) -> int:
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def _is_local(host: str) -> bool:
    from silnode.torrent.settings import is_local_address

    return is_local_address(host)


def _compact_peer(blob: bytes) -> tuple[str, int]:
    return socket.inet_ntoa(blob[:4]), int.from_bytes(blob[4:6], "big")


def _compact_nodes(blob: bytes) -> list[tuple[bytes, tuple[str, int]]]:
    out = []
    for i in range(0, len(blob) - len(blob) % 26, 26):
        nid, ip, port = blob[i : i + 20], blob[i + 20 : i + 24], blob[i + 24 : i + 26]
        out.append((nid, (socket.inet_ntoa(ip), int.from_bytes(port, "big"))))
    return out


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, client: KrpcClient) -> None:
        self.client = client

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.client._received(data, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable etc: the query times out
        log.debug("krpc socket error: %s", exc)


class KrpcClient:
    """One UDP socket on ``bind`` (port 0: any). ``async with KrpcClient(...)`` or start()/close()."""

    def __init__(self, *, bind: str = "0.0.0.0", local_only: bool = False) -> None:
        self.bind = bind
        self.local_only = local_only
        self.node_id = os.urandom(20)
        self.catalog: tuple[bytes, bytes] | None = None  # (public key, salt) answered to CATALOG_QUERY
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: dict[bytes, asyncio.Future] = {}
        self._tid = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: _Proto(self), local_addr=(self.bind, 0))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        for fut in self._pending.values():
            fut.cancel()
        self._pending.clear()

    async def __aenter__(self) -> KrpcClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ transport
    def _allowed(self, addr: tuple[str, int]) -> bool:
        return 0 < addr[1] < 65536 and (not self.local_only or _is_local(addr[0]))

    def _received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            msg = bdecode(data)
        except BencodeError:
            return
        if not isinstance(msg, dict):
            return
        if msg.get(b"y") == b"q":
            self._answer(msg, addr)
            return
        fut = self._pending.pop(msg.get(b"t", b""), None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def _answer(self, msg: dict[bytes, Any], addr: tuple[str, int]) -> None:
        """Answer a query with an empty node list. libtorrent 2.x still adds a ``put``'s sender to its routing
        table despite ``ro=1`` (measured: 4 -> 5 nodes after one put), then waits up to 15 s on it in every
        later lookup unless it answers. An empty answer keeps those lookups fast and tells nobody anything."""
        if self._transport is None or not self._allowed(addr) or not isinstance(msg.get(b"t"), bytes):
            return
        r: dict[bytes, Any] = {b"id": self.node_id, b"nodes": b""}
        if msg.get(b"q") == CATALOG_QUERY.encode():
            if self.catalog is None:
                self._transport.sendto(bencode({b"t": msg[b"t"], b"y": b"e", b"e": [204, b"no catalog"]}), addr)
                return
            r[b"k"], r[b"salt"] = self.catalog
        elif msg.get(b"q") in (b"get", b"get_peers"):
            r[b"token"] = b"ro"
        elif msg.get(b"q") in (b"put", b"announce_peer"):  # we store nothing
            self._transport.sendto(bencode({b"t": msg[b"t"], b"y": b"e", b"e": [204, b"read-only node"]}), addr)
            return
        self._transport.sendto(bencode({b"t": msg[b"t"], b"y": b"r", b"r": r}), addr)

    async def query(self, addr: tuple[str, int], q: str, args: dict[bytes, Any], timeout: float = QUERY_TIMEOUT) -> Any:
        """One query; the reply dict (``r``), or raises KrpcFailed(code, message) / asyncio.TimeoutError."""
        if self._transport is None:
            raise RuntimeError("KRPC client not started")
        if not self._allowed(addr):
            raise KrpcFailed(0, f"{addr[0]} is outside the local network (network.lan_only)")
        self._tid = (self._tid + 1) & 0xFFFF
        tid = self._tid.to_bytes(2, "big")
        fut = asyncio.get_running_loop().create_future()
        self._pending[tid] = fut
        msg = {b"t": tid, b"y": b"q", b"q": q.encode(), b"ro": 1, b"a": {b"id": self.node_id, **args}}
        self._transport.sendto(bencode(msg), addr)
        try:
            reply = await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(tid, None)
        if reply.get(b"y") == b"e":
            err = reply.get(b"e")
            code = err[0] if isinstance(err, list) and err and isinstance(err[0], int) else 0
            text = err[1].decode("utf-8", "replace") if isinstance(err, list) and len(err) > 1 else "error"
            raise KrpcFailed(code, text)
        r = reply.get(b"r")
        if not isinstance(r, dict):
            raise KrpcFailed(0, "malformed reply")
        return r

    # ------------------------------------------------------------------------------------------ lookups
    async def lookup(
        self,
        target: bytes,
        bootstrap: list[tuple[str, int]],
        *,
        public_key: bytes | None = None,
        salt: bytes = b"",
        q: str = "get",
    ) -> list[Responder]:
        """Iterative BEP 44 ``get`` (or BEP 5 ``get_peers`` with ``q``): the (up to) K closest nodes that
        answered, closest first, each with its write token, the peers it lists (``get_peers``) and, when
        ``public_key`` is given, the verified item it stores (forgeries are ignored)."""
        key = b"info_hash" if q == "get_peers" else b"target"
        known: dict[tuple[str, int], bytes | None] = {a: None for a in bootstrap if self._allowed(a)}
        queried: set[tuple[str, int]] = set()
        answered: dict[tuple[str, int], Responder] = {}

        def dist(a: tuple[str, int]) -> int:
            nid = known.get(a)
            return _xor(nid, target) if nid else 1 << 161  # unknown ids (bootstrap) first in line to ask

        while True:
            ranked = sorted(known, key=dist)
            closest_answered = sorted(answered.values(), key=lambda r: _xor(r.node_id, target))[:K]
            bound = _xor(closest_answered[-1].node_id, target) if len(closest_answered) >= K else 1 << 162
            todo = [a for a in ranked if a not in queried and dist(a) <= bound][:ALPHA]
            if not todo:
                break
            queried.update(todo)
            replies = await asyncio.gather(*(self.query(a, q, {key: target}) for a in todo), return_exceptions=True)
            for addr, r in zip(todo, replies):
                if isinstance(r, BaseException) or not isinstance(r.get(b"id"), bytes) or len(r[b"id"]) != 20:
                    continue
                resp = Responder(addr, r[b"id"], r.get(b"token") if isinstance(r.get(b"token"), bytes) else None)
                known[addr] = r[b"id"]
                if public_key is not None:
                    resp.item = _item_from(r, public_key, salt)
                values = r.get(b"values")
                if isinstance(values, list):
                    resp.peers = [_compact_peer(v) for v in values if isinstance(v, bytes) and len(v) == 6]
                answered[addr] = resp
                nodes = r.get(b"nodes")
                if isinstance(nodes, bytes):
                    for nid, naddr in _compact_nodes(nodes):
                        # libtorrent may list this very socket (see _answer): never count ourselves
                        if naddr not in known and nid != self.node_id and self._allowed(naddr):
                            known[naddr] = nid
        return sorted(answered.values(), key=lambda r: _xor(r.node_id, target))[:K]

    async def put(self, item: MutableItem, bootstrap: list[tuple[str, int]], *, cas: int | None = None) -> PutResult:
        """Store a signed item on the K closest nodes. ``cas``: only where the stored seq equals it (BEP 44
        compare-and-swap; a node holding another seq answers error 301)."""
        if not item.verify():
            raise ValueError("refusing to put an item whose signature does not verify")
        found = await self.lookup(item.target, bootstrap, public_key=item.public_key, salt=item.salt)
        result = PutResult(item=item)
        seen = [r.item for r in found if r.item is not None]
        result.latest = max(seen, key=lambda i: i.seq, default=None)
        args: dict[bytes, Any] = {b"k": item.public_key, b"seq": item.seq, b"sig": item.signature, b"v": item.value}
        if item.salt:
            args[b"salt"] = item.salt
        if cas is not None:
            args[b"cas"] = cas
        targets = [r for r in found if r.token]
        replies = await asyncio.gather(
            *(self.query(r.addr, "put", {**args, b"token": r.token}) for r in targets), return_exceptions=True
        )
        for rep in replies:
            if isinstance(rep, KrpcFailed):
                result.errors.append((rep.code, rep.message))
            elif isinstance(rep, BaseException):
                result.errors.append((0, "timeout"))
            else:
                result.stored += 1
        return result

    @property
    def port(self) -> int:
        if self._transport is None:
            raise RuntimeError("KRPC client not started")
        return int(self._transport.get_extra_info("sockname")[1])

    async def announce(self, target: bytes, bootstrap: list[tuple[str, int]]) -> int:
        """BEP 5 ``announce_peer`` of this socket (its own port) under ``target`` on the K closest nodes;
        how many accepted. Used for name hints: a reader finds this socket and asks it for our catalog key."""
        found = await self.lookup(target, bootstrap, q="get_peers")
        replies = await asyncio.gather(
            *(
                self.query(r.addr, "announce_peer", {b"info_hash": target, b"port": self.port, b"token": r.token})
                for r in found
                if r.token
            ),
            return_exceptions=True,
        )
        return sum(1 for rep in replies if not isinstance(rep, BaseException))

    async def get_peers(self, target: bytes, bootstrap: list[tuple[str, int]]) -> list[tuple[str, int]]:
        found = await self.lookup(target, bootstrap, q="get_peers")
        peers = [p for r in found for p in r.peers if self._allowed(p)]
        return list(dict.fromkeys(peers))

    async def ask_catalog(self, addr: tuple[str, int]) -> tuple[bytes, bytes] | None:
        """Ask another silnode's KRPC socket which catalog it publishes: (public key, salt), or None."""
        try:
            r = await self.query(addr, CATALOG_QUERY, {})
        except (KrpcFailed, asyncio.TimeoutError):
            return None
        k, salt = r.get(b"k"), r.get(b"salt", b"")
        if not isinstance(k, bytes) or len(k) != 32 or not isinstance(salt, bytes) or len(salt) > 64:
            return None
        return k, salt

    async def get(self, public_key: bytes, salt: bytes, bootstrap: list[tuple[str, int]]) -> MutableItem | None:
        """The newest verified item under (key, salt) that the closest nodes hold, or None."""
        from silnode.discovery.bep44 import target

        found = await self.lookup(target(public_key, salt), bootstrap, public_key=public_key, salt=salt)
        items = [r.item for r in found if r.item is not None]
        return max(items, key=lambda i: i.seq, default=None)


class KrpcFailed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


def _item_from(r: dict[bytes, Any], public_key: bytes, salt: bytes) -> MutableItem | None:
    """The item in a ``get`` reply, only when it is for our key and its signature verifies."""
    if b"v" not in r or r.get(b"k") != public_key:
        return None
    seq, sig = r.get(b"seq"), r.get(b"sig")
    if not isinstance(seq, int) or not isinstance(sig, bytes):
        return None
    item = MutableItem(public_key, salt, seq, r[b"v"], sig)
    return item if item.verify() else None
