"""Node-wide Prometheus series next to the per-model ones, so one scrape of /metrics shows the whole node:
transfers (bytes down/up, peers, seeds, rates, errors, by state), the DHT, and the store."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from silnode.node import Node


def _series(name: str, kind: str, text: str, values: list[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP silnode_{name} {text}", f"# TYPE silnode_{name} {kind}"]
    lines += [f"silnode_{name}{labels} {value:g}" for labels, value in values]
    return lines


async def node_metrics(node: Node) -> str:
    transfers: list[dict[str, Any]] = node.distribution.list()
    summary = node.distribution.summary()
    names = await asyncio.to_thread(node.store.names)
    size = await asyncio.to_thread(node.store.total_size)
    free = await asyncio.to_thread(node.store.free_bytes)
    # session-wide counters (a torrent's own all-time counters start again when a finished download is
    # re-added as a seed from the store); none while the engine is down
    counters = await node.engine.session.stats() if node.engine.running else {}
    states = Counter(f'{{kind="{t["kind"]}",state="{t["state"]}"}}' for t in transfers)

    def total(key: str) -> float:
        return float(sum(t.get(key) or 0 for t in transfers))

    lines: list[str] = []
    lines += _series("transfers", "gauge", "transfers by kind and state", sorted(states.items()))
    lines += _series("transfer_errors", "gauge", "transfers in the error state", [("", states_error(transfers))])
    lines += _series(
        "torrent_downloaded_bytes_total",
        "counter",
        "payload bytes received since the daemon started",
        [("", float(counters.get("net.recv_payload_bytes", 0)))],
    )
    lines += _series(
        "torrent_uploaded_bytes_total",
        "counter",
        "payload bytes sent since the daemon started",
        [("", float(counters.get("net.sent_payload_bytes", 0)))],
    )
    lines += _series(
        "torrent_download_rate_bytes", "gauge", "bytes/s down, all torrents", [("", total("download_rate"))]
    )
    lines += _series("torrent_upload_rate_bytes", "gauge", "bytes/s up, all torrents", [("", total("upload_rate"))])
    lines += _series("torrent_peers", "gauge", "connected peers, all torrents", [("", float(summary["peers"]))])
    lines += _series("torrent_seeds", "gauge", "connected peers that are seeds", [("", total("num_seeds"))])
    lines += _series("dht_nodes", "gauge", "nodes in the DHT routing table", [("", float(summary["dht_nodes"] or 0))])
    lines += _series("store_models", "gauge", "models in the store", [("", float(len(names)))])
    lines += _series("store_bytes", "gauge", "bytes of models in the store", [("", float(size))])
    lines += _series("store_free_bytes", "gauge", "free bytes on the store's disk", [("", float(free))])
    return "\n".join(lines) + "\n"


def states_error(transfers: list[dict[str, Any]]) -> float:
    return float(sum(1 for t in transfers if t["state"] in ("error", "failed")))
