"""Resolving a job's inputs to the prompt text: ``text``/``prompt`` as given, ``event`` (a note's content,
fetched from the relays), ``job`` (the content of another job's result: NIP-90 chaining) and ``url`` (an HTTP
fetch with a size cap and a timeout, never to a loopback, link-local or private address, judged on the
resolved address of every connection, redirects included)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import aiohttp
from nostr_sdk import EventId, Filter, Kind

from silnode.dvm.jobs import Job
from silnode.errors import JobRejected, NostrError

MAX_REDIRECTS = 3
URL_TIMEOUT = 10.0


def public_address(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


class PublicOnlyResolver(aiohttp.abc.AbstractResolver):
    """Resolves like the system does, then drops every address that is not public: the check happens on the
    address aiohttp connects to, so a DNS answer that changes between check and use cannot slip through."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        found = await self._inner.resolve(host, port, family)
        ok = [r for r in found if public_address(r["host"])]
        if not ok:
            raise OSError(f"{host} resolves only to private, loopback or link-local addresses")
        return ok

    async def close(self) -> None:
        await self._inner.close()


async def check_host(url: str) -> None:
    """A clear refusal before connecting: aiohttp connects to an IP-literal host without asking the resolver,
    and hides the resolver's reason for a name. (The resolver still judges the address actually used.)"""
    host = (aiohttp.client.URL(url).host or "").strip("[]")
    try:
        ipaddress.ip_address(host)
        addrs = [host]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise JobRejected(f"cannot resolve the url input's host {host}: {exc}") from None
        addrs = [i[4][0] for i in infos]
    if not any(public_address(a) for a in addrs):
        raise JobRejected(f"the url input's host {host} resolves only to private, loopback or link-local addresses")


async def fetch_url(url: str, max_bytes: int, *, resolver: aiohttp.abc.AbstractResolver | None = None) -> str:
    if not url.startswith(("http://", "https://")):
        raise JobRejected("a url input must be http:// or https://")
    connector = aiohttp.TCPConnector(resolver=resolver or PublicOnlyResolver(), force_close=True)
    timeout = aiohttp.ClientTimeout(total=URL_TIMEOUT)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            for _ in range(MAX_REDIRECTS + 1):
                await check_host(url)
                async with session.get(url, allow_redirects=False) as resp:
                    if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                        url = str(resp.url.join(aiohttp.client.URL(resp.headers["Location"])))
                        if not url.startswith(("http://", "https://")):
                            raise JobRejected("the url input redirects off http(s)")
                        continue
                    if resp.status != 200:
                        raise JobRejected(f"the url input answered HTTP {resp.status}")
                    body = await resp.content.read(max_bytes + 1)
                    if len(body) > max_bytes:
                        raise JobRejected(f"the url input is over this provider's limit of {max_bytes} bytes")
                    return body.decode("utf-8", errors="replace")
            raise JobRejected(f"the url input redirects more than {MAX_REDIRECTS} times")
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        raise JobRejected(f"cannot fetch the url input: {exc}") from None


async def resolve(job: Job, pool: Any, max_bytes: int) -> str:
    """The prompt: every input resolved to text, joined by blank lines (most jobs have one input)."""
    parts = []
    for data, typ, *_ in job.inputs:
        if typ in ("text", "prompt"):
            parts.append(data)
        elif typ == "url":
            parts.append(await fetch_url(data, max_bytes))
        else:
            try:
                eid = EventId.parse(data)
            except Exception:
                raise JobRejected(f"{typ} input {data[:80]!r} is not an event id") from None
            filt = (
                Filter().id(eid)
                if typ == "event"
                else Filter().event(eid).kinds([Kind(k) for k in range(6000, 6010)] + [Kind(6050)])
            )
            try:
                found = await pool.fetch(filt, timeout=3.0)
            except NostrError as exc:
                raise JobRejected(f"cannot fetch {typ} input {data[:16]}: {exc}") from None
            if not found:
                raise JobRejected(f"{typ} input {data[:16]}… is not on this provider's relays")
            parts.append(found[0].content())
    text = "\n\n".join(parts)
    if len(text.encode()) > max_bytes:
        raise JobRejected(f"the input is {len(text.encode())} bytes; this provider takes at most {max_bytes}")
    if not text.strip():
        raise JobRejected("the input is empty")
    return text
