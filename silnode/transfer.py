"""A transfer: one download (or seed) as distribution tracks it and the API shows it."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from silnode.torrent.create import parse_peer

ACTIVE = ("metadata", "downloading", "verifying")


@dataclass
class Transfer:
    """One download (persisted) or one seed (derived from the store; not persisted)."""

    id: str  # v1 infohash hex (or v2 hex until the metadata says otherwise)
    kind: str  # "download" | "seed"
    name: str | None  # the store name it will get / has
    target: str  # magnet (downloads) or "" (seeds)
    state: str = "metadata"  # metadata, downloading, verifying, seeding, paused, error, done
    error: str | None = None
    peers: list[str] = field(default_factory=list)
    web_seeds: list[str] = field(default_factory=list)
    # those of web_seeds that came from elsewhere (a magnet's ws=), not typed by the user: each reaches
    # libtorrent only through the web-seed gate (webseed_gate.py), which checks every address it connects to
    untrusted_web_seeds: list[str] = field(default_factory=list)
    license: str | None = None
    added: float = field(default_factory=time.time)
    finished: float | None = None
    work_id: str = ""
    files: list[dict[str, Any]] | None = None  # {path, size, sha256} from our key, once known
    hash_failures: int = 0
    banned_peers: list[str] = field(default_factory=list)
    paused_by_user: bool = False
    force: bool = False  # download even when the model won't fit this machine's memory
    # times libtorrent stopped it with "v1 and v2 hashes do not describe the same data" (a hostile peer's
    # bytes in the merkle tree) and it was added again to go on (DistributionService._recover)
    recovered: int = 0

    def public(self, status: Any | None) -> dict[str, Any]:
        d = asdict(self)
        d.pop("work_id")
        d.pop("paused_by_user")
        if status is not None:
            total = status.total_wanted or status.total_size
            d.update(
                # held at the metadata nothing is wanted yet, and libtorrent calls that 100 % done
                progress=1.0
                if self.state == "done"
                else 0.0
                if self.state == "metadata"
                else round(status.progress, 4),
                total_bytes=total,
                done_bytes=status.total_done,
                download_rate=status.download_rate,
                upload_rate=status.upload_rate,
                num_peers=status.num_peers,
                num_seeds=status.num_seeds,
                downloaded=status.all_time_download,
                uploaded=status.all_time_upload,
                ratio=round(status.all_time_upload / total, 3) if total else 0.0,
                eta_s=int((total - status.total_done) / status.download_rate)
                if status.download_rate and total > status.total_done
                else None,
            )
        else:
            size = sum(f["size"] for f in self.files or [])
            d.update(
                progress=1.0 if self.state in ("done", "seeding") else 0.0,
                total_bytes=size,
                done_bytes=0,
                download_rate=0,
                upload_rate=0,
                num_peers=0,
                num_seeds=0,
                downloaded=0,
                uploaded=0,
                ratio=0.0,
                eta_s=None,
            )
        return d


def same_id(full: str, given: str) -> bool:
    """Transfers are named by infohash or by a prefix of at least 8 hex digits."""
    return full == given or (len(given) >= 8 and full.startswith(given))


def parse_peers(values: list[str] | None) -> tuple[str, ...]:
    """``host:port`` strings, each checked and normalised."""
    out = []
    for v in values or []:
        host, port = parse_peer(v)
        out.append(f"{host}:{port}")
    return tuple(out)
