"""Search over the merged index, sizes, and the lan_only rule of the KRPC socket."""

from __future__ import annotations

import asyncio

import pytest
from test_document import entry

from silnode.discovery.document import Catalog
from silnode.discovery.index import Index, parse_size
from silnode.discovery.krpc import KrpcClient, KrpcFailed
from silnode.errors import BadRequest


def test_parse_size():
    assert parse_size("8GB") == 8_000_000_000
    assert parse_size("4GiB") == 4 << 30
    assert parse_size("500M") == 500_000_000
    assert parse_size("1234") == 1234
    assert parse_size(None) is None
    with pytest.raises(BadRequest, match="not a size") as err:
        parse_size("lots")
    assert "8GB" in err.value.hint


def test_merge_keeps_every_publisher_and_filters():
    a = Catalog("aa" * 32, 1, "t", (entry("org/llama-7b", "11" * 20, size=7000),))
    b = Catalog(
        "bb" * 32,
        1,
        "t",
        (
            entry("org/llama-7b", "22" * 20, size=7000),
            replace_quant(entry("org/qwen-1b", "33" * 20, size=1000), "Q8_0"),
        ),
    )
    idx = Index([replace_pub(a), replace_pub(b)])
    assert len(idx) == 3
    assert [(e.name, e.publisher[:2]) for e in idx.search("LLAMA")] == [("org/llama-7b", "aa"), ("org/llama-7b", "bb")]
    assert [e.name for e in idx.search(quant="q8_0")] == ["org/qwen-1b"]
    assert [e.name for e in idx.search(max_size=5000)] == ["org/qwen-1b"]
    assert [e.name for e in idx.search(tag="tiny", max_size=1000)] == ["org/qwen-1b"]
    assert idx.search(tag="nope") == []
    assert len(idx.named("org/llama-7b")) == 2


def replace_quant(e, q):
    from dataclasses import replace

    return replace(e, quant=q)


def replace_pub(cat: Catalog) -> Catalog:
    from dataclasses import replace

    return replace(cat, entries=tuple(replace(e, publisher=cat.publisher) for e in cat.entries))


async def test_lan_only_socket_never_contacts_a_public_address():
    """Under network.lan_only the discovery's own UDP socket refuses public addresses, and a lookup drops
    public nodes a peer returns (libtorrent's address filter does not cover this socket)."""
    sent: list[tuple[str, int]] = []
    async with KrpcClient(bind="127.0.0.1", local_only=True) as krpc:
        real_sendto = krpc._transport.sendto
        krpc._transport.sendto = lambda data, addr: (sent.append(addr), real_sendto(data, addr))
        with pytest.raises(KrpcFailed, match="outside the local network"):
            await krpc.query(("8.8.8.8", 6881), "ping", {})
        found = await krpc.lookup(b"\x00" * 20, [("8.8.8.8", 6881), ("1.1.1.1", 6881)])
        assert found == [] and sent == []
        # a local address is tried (nobody answers there: a timeout, not a refusal)
        with pytest.raises(asyncio.TimeoutError):
            await krpc.query(("127.0.0.1", 9), "ping", {}, timeout=0.2)
        assert sent == [("127.0.0.1", 9)]
