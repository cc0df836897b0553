"""Discovery's files under ``SILNODE_HOME/state/discovery`` (every write: tmp -> fsync -> rename).

follows.json                     the trust list: [{publisher, salt, added}]
mine.json                        this node's own catalog state: {seq}
catalogs/<publisher>/catalog.json  the newest verified catalog of each known publisher (also what we seed)
catalogs/<publisher>/pointer.json  the newest signed BEP 44 item seen for it ({seq, sig, ih, salt}, hex)
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from silnode.discovery.bep44 import MutableItem
from silnode.discovery.document import Catalog, parse_catalog
from silnode.errors import CatalogInvalid
from silnode.fsutil import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)


class DiscoveryState:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.catalogs_dir = root / "catalogs"

    def ensure(self) -> None:
        self.catalogs_dir.mkdir(parents=True, exist_ok=True)

    # ---- follows
    def read_follows(self) -> list[dict[str, Any]]:
        data = self._json(self.root / "follows.json", {"follows": []})
        follows = data.get("follows") if isinstance(data, dict) else None
        return [f for f in follows or [] if isinstance(f, dict) and isinstance(f.get("publisher"), str)]

    def write_follows(self, follows: list[dict[str, Any]]) -> None:
        atomic_write_json(self.root / "follows.json", {"follows": follows})

    def read_mine(self) -> dict[str, Any]:
        data = self._json(self.root / "mine.json", {})
        return data if isinstance(data, dict) else {}

    def write_mine(self, data: dict[str, Any]) -> None:
        atomic_write_json(self.root / "mine.json", data)

    # ---- catalogs
    def dir(self, publisher: str) -> Path:
        return self.catalogs_dir / publisher

    def catalog_path(self, publisher: str) -> Path:
        return self.dir(publisher) / "catalog.json"

    def write_catalog(self, publisher: str, data: bytes) -> None:
        self.dir(publisher).mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.catalog_path(publisher), data)

    def load_catalogs(self) -> dict[str, tuple[Catalog, bytes]]:
        """Every cached catalog that still verifies (a damaged file is logged and left out, not deleted)."""
        out: dict[str, tuple[Catalog, bytes]] = {}
        if not self.catalogs_dir.is_dir():
            return out
        for d in sorted(self.catalogs_dir.iterdir()):
            p = d / "catalog.json"
            if not p.is_file():
                continue
            try:
                data = p.read_bytes()
                cat, _ = parse_catalog(data, expected_publisher=d.name)
            except (OSError, CatalogInvalid) as exc:
                log.warning("cached catalog %s is unusable: %s", p, exc)
                continue
            out[cat.publisher] = (cat, data)
        return out

    def drop(self, publisher: str) -> None:
        shutil.rmtree(self.dir(publisher), ignore_errors=True)

    # ---- pointers
    def write_pointer(self, item: MutableItem) -> None:
        pub = item.public_key.hex()
        self.dir(pub).mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            self.dir(pub) / "pointer.json",
            {"seq": item.seq, "sig": item.signature.hex(), "ih": item.infohash, "salt": item.salt.hex()},
        )

    def read_pointer(self, publisher: str) -> MutableItem | None:
        d = self._json(self.dir(publisher) / "pointer.json", None)
        try:
            item = MutableItem(
                bytes.fromhex(publisher),
                bytes.fromhex(d["salt"]),
                int(d["seq"]),
                {b"ih": bytes.fromhex(d["ih"])},
                bytes.fromhex(d["sig"]),
            )
        except (TypeError, KeyError, ValueError):
            return None
        return item if item.verify() else None

    @staticmethod
    def _json(path: Path, default: Any) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return default
        except (OSError, ValueError) as exc:
            log.warning("%s is unreadable (%s); using defaults", path, exc)
            return default
