"""The typed model manifest: one shape for a model across the store, the seed catalog and (next) signed
catalog entries.

    ModelFile    one file: path (a flat name inside the model's directory), size, sha256, linked
    ModelFacts   what the GGUF header says that a catalog also states: arch, params, quant, context length
    Manifest     the store's record of a model (``models/<org>/<model>/.silnode.json``)

On disk and over the API a manifest is the JSON object ``to_json()`` returns (README, "The manifest");
``from_json`` reads it back and keeps keys it does not know (a newer silnode's), so a rewrite loses nothing.
Fields that are only set by later steps (``infohash_v2``, ``seeding``, ``v1_compat``, ``base_model``,
``advertise``) are written only once set.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from silnode.errors import ManifestError

SCHEMA = 1


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class ModelFile:
    path: str
    size: int
    sha256: str | None = None  # None: not known yet (a foreign torrent before its bytes are hashed)
    linked: bool = False  # hardlinked to the user's original file at import

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256, "linked": self.linked}

    @classmethod
    def from_json(cls, d: Any) -> ModelFile:
        if (
            not isinstance(d, Mapping)
            or not isinstance(d.get("path"), str)
            or isinstance(d.get("size"), bool)
            or not isinstance(d.get("size"), int)
        ):
            raise ManifestError(f"a file record is malformed: {d!r:.120}")
        sha = d.get("sha256")
        return cls(d["path"], d["size"], sha if isinstance(sha, str) else None, bool(d.get("linked", False)))


@dataclass(frozen=True)
class ModelFacts:
    """The facts a catalog publishes about a model before anyone downloads it (None: not known)."""

    arch: str | None = None
    params: int | None = None
    quant: str | None = None
    context_length: int | None = None


# keys written only once they are set (by distribution, the starter import, ...)
_OPTIONAL = ("infohash_v2", "seeding", "web_seeds", "v1_compat", "base_model", "advertise")


@dataclass
class Manifest:
    name: str
    files: list[ModelFile]
    gguf: dict[str, Any] = field(default_factory=dict)  # silnode.gguf.GGUFFacts.to_dict()
    license: str | None = None
    source: dict[str, Any] = field(default_factory=lambda: {"type": "local"})
    imported_at: str = field(default_factory=now)
    verified_at: str | None = field(default_factory=now)
    state: str = "ok"  # ok | damaged | invalid_manifest
    problems: list[str] = field(default_factory=list)
    infohash: str | None = None  # v1 (40 hex) once shared
    magnet: str | None = None
    publisher: str | None = None
    signature: str | None = None
    infohash_v2: str | None = None
    seeding: bool | None = None  # None: the default (on)
    web_seeds: list[str] | None = None  # HTTP origins of the same files (BEP 19), kept for the next share
    v1_compat: dict[str, Any] | None = None  # the v1-only twin torrent (share --v1-compat)
    base_model: bool | None = None  # the starter model: complete text, don't chat
    advertise: bool | None = None  # False: never announced publicly (the starter model)
    schema: int = SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as they are

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def facts(self) -> ModelFacts:
        g = self.gguf
        return ModelFacts(g.get("arch"), g.get("params"), g.get("quant"), g.get("context_length"))

    @property
    def seeded(self) -> bool:
        """Shared (has a torrent) and not switched off."""
        return bool(self.infohash) and self.seeding is not False

    def infohashes(self) -> set[str]:
        """Every infohash that names this model's files: v1, v2 and the v1-only twin's."""
        twin = (self.v1_compat or {}).get("infohash")
        return {h for h in (self.infohash, self.infohash_v2, twin) if h}

    def updated(self, **changes: Any) -> Manifest:
        known = {f.name for f in fields(self)}
        extra = {k: v for k, v in changes.items() if k not in known}
        m = replace(self, **{k: v for k, v in changes.items() if k in known})
        if extra:
            m.extra = {**self.extra, **extra}
        return m

    # ---- JSON
    def file_records(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.files]

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema": self.schema,
            "name": self.name,
            "files": self.file_records(),
            "total_size": self.total_size,
            "gguf": self.gguf,
            "license": self.license,
            "source": self.source,
            "imported_at": self.imported_at,
            "verified_at": self.verified_at,
            "state": self.state,
            "problems": list(self.problems),
            "infohash": self.infohash,
            "magnet": self.magnet,
            "publisher": self.publisher,
            "signature": self.signature,
        }
        for key in _OPTIONAL:
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        d.update(self.extra)
        return d

    @classmethod
    def from_json(cls, d: Any) -> Manifest:
        if not isinstance(d, Mapping):
            raise ManifestError("the manifest is not a JSON object")
        name, files = d.get("name"), d.get("files")
        if not isinstance(name, str) or not isinstance(files, list):
            raise ManifestError("the manifest has no name or no file list")
        known = {f.name for f in fields(cls)} - {"extra", "files"}
        kw = {k: d[k] for k in known if k in d}
        for key, kind in (("gguf", dict), ("source", dict), ("problems", list)):
            if key in kw and not isinstance(kw[key], kind):
                raise ManifestError(f"the manifest's {key!r} is malformed")
        extra = {k: v for k, v in d.items() if k not in known and k not in ("files", "total_size")}
        return cls(files=[ModelFile.from_json(f) for f in files], extra=extra, **kw)

    @classmethod
    def invalid(cls, name: str, problem: str) -> Manifest:
        """What `list` shows for a model whose manifest cannot be read."""
        return cls(name=name, files=[], state="invalid_manifest", problems=[problem], verified_at=None)

    def summary(self) -> dict[str, Any]:
        """The short form `list` shows."""
        g = self.gguf
        return {
            "name": self.name,
            "size": self.total_size,
            "files": len(self.files),
            "arch": g.get("arch"),
            "params": g.get("params"),
            "quant": g.get("quant"),
            "context_length": g.get("context_length"),
            "license": self.license,
            "state": self.state,
            "sha256": "verified" if self.state == "ok" else self.state,
            "verified_at": self.verified_at,
        }
