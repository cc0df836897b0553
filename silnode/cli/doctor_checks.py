"""`doctor`'s network and hardware checks: the DHT bootstrap, the Nostr relays and the GPU.

Each check returns ``(status, detail, hint)`` with status ok | warn | fail. Being offline is a warning, never a
failure: a node without the public DHT or a relay still shares by explicit peers and serves on its own API.
The network checks answer within a few seconds (one KRPC ping per bootstrap node, one relay connect), and run
only here, never at any other command's start-up.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta
from typing import Any

Check = tuple[str, str, str | None]

TIMEOUT = 3.0  # seconds one bootstrap ping or relay connect may take


def _split(hostport: str) -> tuple[str, int] | None:
    host, sep, port = hostport.strip().rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


async def _ping(krpc: Any, host: str, port: int) -> bool:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM), TIMEOUT
        )
        addr = infos[0][4][:2]
        await krpc.query(addr, "ping", {}, timeout=TIMEOUT)
        return True
    except Exception:  # unresolvable, unreachable, silent or refusing: all mean "did not answer"
        return False


async def _ping_all(nodes: list[tuple[str, int]], lan_only: bool) -> list[bool]:
    from silnode.discovery.krpc import KrpcClient

    async with KrpcClient(local_only=lan_only) as krpc:
        return list(await asyncio.gather(*(_ping(krpc, h, p) for h, p in nodes)))


def dht_check(config: Any) -> Check:
    """Is a DHT reachable: at least one bootstrap node answers a KRPC ping (a private DHT's or the public one's)."""
    net = config.network
    if not net.dht_enabled:
        return "ok", "off (network.dht_enabled: false; peers come from --peer and magnet hints)", None
    kind = "private DHT" if net.dht_private else "public DHT"
    nodes = [n for n in (_split(b) for b in net.dht_bootstrap) if n is not None]
    if not nodes:
        return (
            "warn",
            f"{kind}: no bootstrap nodes configured",
            "set network.dht_bootstrap (host:port of DHT nodes), or network.dht_enabled: false",
        )
    answered = asyncio.run(_ping_all(nodes, net.lan_only))
    ok = [f"{h}:{p}" for (h, p), a in zip(nodes, answered) if a]
    if ok:
        return "ok", f"{kind}: {len(ok)} of {len(nodes)} bootstrap node(s) answer ({', '.join(ok[:3])})", None
    return (
        "warn",
        f"{kind}: none of {len(nodes)} bootstrap node(s) answered within {TIMEOUT:.0f} s",
        "offline? discovery by DHT stays off until one answers; on a LAN, point network.dht_bootstrap at "
        "another node and set network.dht_private: true",
    )


def relay_check(config: Any, daemon_relays: list[dict[str, Any]] | None) -> Check:
    """The relays the node sells on: as the running daemon sees them, else a connect from here."""
    ns = config.nostr
    if daemon_relays is not None:
        if not daemon_relays:
            return "ok", "the daemon is connected to no relay (not selling: no identity or nostr.sell off)", None
        up = [r for r in daemon_relays if r.get("status") == "connected"]
        names = ", ".join(
            f"{r['url']}{' (embedded)' if r.get('embedded') else ''}: {r['status']}" for r in daemon_relays
        )
        if up:
            return "ok", f"{len(up)} of {len(daemon_relays)} connected: {names}", None
        return "warn", f"none connected: {names}", "check nostr.relays (wss://…) and the network"
    if not ns.relays:
        return ("ok", f"none configured: the daemon runs its embedded relay on 127.0.0.1:{ns.relay_port}", None)
    status = asyncio.run(_connect(list(ns.relays)))
    up = [u for u, s in status.items() if s == "connected"]
    names = ", ".join(f"{u}: {s}" for u, s in status.items())
    if up:
        return "ok", f"{len(up)} of {len(status)} connect: {names}", None
    return (
        "warn",
        f"none connect within {TIMEOUT:.0f} s: {names}",
        "check nostr.relays (wss://…) and the network; with none reachable the daemon runs its embedded relay",
    )


async def _connect(urls: list[str]) -> dict[str, str]:
    from silnode.dvm.relays import new_client, parse_relay, relay_options
    from silnode.errors import NostrError

    out: dict[str, str] = {}
    client = new_client()
    try:
        for url in urls:
            try:
                await client.add_relay(parse_relay(url), opts=relay_options())
            except NostrError:
                out[url] = "not a relay URL"
        await client.connect(timedelta(seconds=TIMEOUT))
        for u, r in (await client.relays()).items():
            st = str(r.status()).rsplit(".", 1)[-1].lower()
            match = next((x for x in urls if x.rstrip("/") == str(u).rstrip("/")), str(u))
            out[match] = st
    finally:
        await client.shutdown()
        await asyncio.sleep(0.05)  # let nostr-sdk's dropped futures call back before the loop closes
    return out


def gpu_check(report: Any) -> Check:
    """What the GPU probes (NVML, AMD sysfs, Apple) found; a probe that failed on a machine with a GPU warns."""
    gpus = report.gpus
    failed = [p for p in report.probes if p.status == "failed"]
    if gpus:
        parts = []
        for d in gpus:
            mem = f"{d.total_bytes / 2**30:.1f} GiB" if d.total_bytes else "memory unknown"
            free = f", {d.free_bytes / 2**30:.1f} GiB free" if d.free_bytes is not None else ""
            parts.append(f"{d.id} {d.name} ({mem}{free}, via {d.source})")
        return "ok", "; ".join(parts), None
    if failed:
        why = "; ".join(f"{p.name}: {p.detail}" for p in failed)
        return "warn", f"no GPU found, and a probe failed ({why})", "check the GPU driver (nvidia-smi / rocm-smi)"
    cpu = report.cpu
    ram = f" ({cpu.total_bytes / 2**30:.1f} GiB RAM)" if cpu is not None and cpu.total_bytes else ""
    return "ok", f"none found: models run on the CPU{ram}", None
