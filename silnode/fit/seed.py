"""The seed catalog: curated, real GGUF files per memory tier, shipped with silnode.

The data is ``catalog/models.json`` at the top of the source tree, installed as the data-only package
``silnode.seedcatalog`` (pyproject maps the package to the ``catalog/`` directory) and read with
:mod:`importlib.resources`. Every value in it comes from a cited public source or is ``null``; see
``catalog/README.md`` for the schema and the sourcing rule. :func:`load_seed_catalog` validates the file
strictly and raises :class:`SeedCatalogError` naming the entry and the field at fault.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from silnode.manifest import ModelFacts, ModelFile
from silnode.names import FILE_RE, is_valid_name

__all__ = [
    "ARCH_KEYS",
    "RESOURCE_NAME",
    "RESOURCE_PACKAGE",
    "SCHEMA_VERSION",
    "SOURCED_FIELDS",
    "SeedArch",
    "SeedCatalogError",
    "SeedModel",
    "SeedTier",
    "load_seed_catalog",
    "load_seed_tiers",
    "parse_seed_catalog",
]

SCHEMA_VERSION = 1
RESOURCE_PACKAGE = "silnode.seedcatalog"
RESOURCE_NAME = "models.json"

ARCH_KEYS = (
    "n_layer",
    "n_embd",
    "n_head",
    "n_head_kv",
    "head_dim",
    "n_ff",
    "n_vocab",
    "context_length",
    "sliding_window",
)
_REQUIRED = (
    "name",
    "origin_url",
    "repo",
    "file",
    "size_bytes",
    "sha256",
    "quant",
    "params",
    "license",
    "tier",
    "arch",
    "sources",
)
_OPTIONAL = ("size_approx", "params_approx", "notes")
# Fields whose non-null value must be backed by a source URL ("arch.<key>" for the arch facts). name and tier
# are ours (silnode's naming and tiering), notes is free text, sources is the citation map itself.
SOURCED_FIELDS = (
    "origin_url",
    "repo",
    "file",
    "size_bytes",
    "sha256",
    "quant",
    "params",
    "license",
    "size_approx",
    "params_approx",
    *(f"arch.{k}" for k in ARCH_KEYS),
)

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_LOWER_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$")
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_QUANT_RE = re.compile(r"^[A-Z0-9][A-Z0-9_]*$")
_LICENSE_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
_TIER_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class SeedCatalogError(ValueError):
    """The seed catalog file is malformed; the message names the entry and the field."""


@dataclass(frozen=True)
class SeedTier:
    name: str
    max_memory_gib: float  # the tier holds models that run (weights + KV cache + compute) within this much memory
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {"max_memory_gib": self.max_memory_gib, "description": self.description}


@dataclass(frozen=True)
class SeedArch:
    """Shape facts for estimating KV cache and compute memory before downloading; None = not known/cited."""

    n_layer: int | None = None
    n_embd: int | None = None
    n_head: int | None = None
    n_head_kv: int | None = None
    head_dim: int | None = None
    n_ff: int | None = None
    n_vocab: int | None = None
    context_length: int | None = None
    sliding_window: int | None = None

    def to_dict(self) -> dict[str, int | None]:
        return {k: getattr(self, k) for k in ARCH_KEYS}


@dataclass(frozen=True)
class SeedModel:
    name: str  # silnode store name, org/model, lowercase
    origin_url: str  # https URL of the GGUF file at its origin
    repo: str  # Hugging Face repository id holding the file
    file: str  # file name inside repo
    size_bytes: int | None  # exact byte count, or None
    sha256: str | None  # 64 lowercase hex digits, or None
    quant: str  # Q4_K_M, Q8_0, F16, ...
    params: int | None  # exact parameter count, or None
    license: str | None  # license id as the model card states it (apache-2.0, gemma, llama3.2, ...)
    tier: str  # a key of the catalog's tiers
    arch: SeedArch
    sources: Mapping[str, str] = field(compare=False, hash=False)  # field or "arch.<key>" -> URL
    size_approx: str | None = None  # a rounded size as a page states it ("4.92 GB"); never an estimate
    params_approx: str | None = None  # a rounded parameter count as a page states it ("7.61B")
    notes: str | None = None

    def source_for(self, field_name: str) -> str | None:
        return self.sources.get(field_name)

    # the typed manifest's shapes (silnode.manifest), shared with the store and catalog entries
    @property
    def files(self) -> list[ModelFile]:
        """The one file as the store will record it (size 0 when the catalog does not state it)."""
        return [ModelFile(self.file, self.size_bytes or 0, self.sha256)]

    @property
    def facts(self) -> ModelFacts:
        return ModelFacts(arch=None, params=self.params, quant=self.quant, context_length=self.arch.context_length)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "origin_url": self.origin_url,
            "repo": self.repo,
            "file": self.file,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "quant": self.quant,
            "params": self.params,
            "license": self.license,
            "tier": self.tier,
            "arch": self.arch.to_dict(),
        }
        for opt in _OPTIONAL:
            value = getattr(self, opt)
            if value is not None:
                d[opt] = value
        d["sources"] = dict(self.sources)
        return d


# ---- validation ------------------------------------------------------------------------------------------


def _fail(where: str, msg: str) -> SeedCatalogError:
    return SeedCatalogError(f"seed catalog: {where}: {msg}")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _opt_int(where: str, key: str, v: object, *, minimum: int = 1) -> int | None:
    if v is None:
        return None
    if not _is_int(v) or v < minimum:  # type: ignore[operator]
        raise _fail(where, f"{key} must be an integer >= {minimum} or null, got {v!r}")
    return v  # type: ignore[return-value]


def _str(where: str, key: str, v: object, *, nullable: bool = False) -> str | None:
    if v is None and nullable:
        return None
    if not isinstance(v, str) or not v.strip():
        raise _fail(where, f"{key} must be a non-empty string{' or null' if nullable else ''}, got {v!r}")
    return v


def _https_url(where: str, key: str, v: object) -> str:
    s = _str(where, key, v)
    assert s is not None
    parts = urlsplit(s)
    if parts.scheme != "https" or not parts.netloc or any(c.isspace() for c in s):
        raise _fail(where, f"{key} must be an https URL, got {s!r}")
    return s


def _parse_tiers(raw: object) -> dict[str, SeedTier]:
    if not isinstance(raw, dict) or not raw:
        raise _fail("tiers", "must be a non-empty object of tier name -> {max_memory_gib, description}")
    tiers: dict[str, SeedTier] = {}
    last = 0.0
    for name, spec in raw.items():
        where = f"tier {name!r}"
        if not _TIER_RE.fullmatch(name):
            raise _fail(where, "tier names are lowercase identifiers")
        if not isinstance(spec, dict) or set(spec) != {"max_memory_gib", "description"}:
            raise _fail(where, "must be an object with exactly max_memory_gib and description")
        gib = spec["max_memory_gib"]
        if isinstance(gib, bool) or not isinstance(gib, (int, float)) or gib <= 0:
            raise _fail(where, f"max_memory_gib must be a positive number, got {gib!r}")
        if gib <= last:
            raise _fail(where, "tiers must be listed smallest first with growing max_memory_gib")
        last = float(gib)
        desc = _str(where, "description", spec["description"])
        assert desc is not None
        tiers[name] = SeedTier(name=name, max_memory_gib=gib, description=desc)
    return tiers


def _parse_model(i: int, raw: object, tiers: Mapping[str, SeedTier]) -> SeedModel:
    where = f"models[{i}]"
    if not isinstance(raw, dict):
        raise _fail(where, "must be an object")
    if isinstance(raw.get("name"), str):
        where = f"models[{i}] ({raw['name']})"
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise _fail(where, f"missing field(s): {', '.join(missing)}")
    unknown = sorted(set(raw) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise _fail(where, f"unknown field(s): {', '.join(unknown)}")

    name = _str(where, "name", raw["name"])
    assert name is not None
    if not _LOWER_NAME_RE.fullmatch(name) or not is_valid_name(name):
        raise _fail(where, f"name must be a valid lowercase silnode name org/model, got {name!r}")

    repo = _str(where, "repo", raw["repo"])
    assert repo is not None
    if not _REPO_RE.fullmatch(repo):
        raise _fail(where, f"repo must be a Hugging Face repository id owner/name, got {repo!r}")
    file = _str(where, "file", raw["file"])
    assert file is not None
    if not FILE_RE.fullmatch(file) or ".." in file:
        raise _fail(where, f"file must be a plain .gguf file name, got {file!r}")
    origin_url = _https_url(where, "origin_url", raw["origin_url"])
    if urlsplit(origin_url).netloc == "huggingface.co":
        expected = f"https://huggingface.co/{repo}/resolve/main/{file}"
        if origin_url != expected:
            raise _fail(where, f"origin_url must be {expected} for repo {repo!r} and file {file!r}")

    size_bytes = _opt_int(where, "size_bytes", raw["size_bytes"])
    sha256 = raw["sha256"]
    if sha256 is not None and (not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256)):
        raise _fail(where, f"sha256 must be 64 lowercase hex digits or null, got {sha256!r}")
    quant = _str(where, "quant", raw["quant"])
    assert quant is not None
    if not _QUANT_RE.fullmatch(quant):
        raise _fail(where, f"quant must look like Q4_K_M / Q8_0 / F16, got {quant!r}")
    params = _opt_int(where, "params", raw["params"])
    license_ = _str(where, "license", raw["license"], nullable=True)
    if license_ is not None and not _LICENSE_RE.fullmatch(license_):
        raise _fail(where, f"license must be a lowercase id (apache-2.0, gemma, llama3.2, ...), got {license_!r}")
    tier = _str(where, "tier", raw["tier"])
    if tier not in tiers:
        raise _fail(where, f"tier {tier!r} is not one of the declared tiers ({', '.join(tiers)})")

    raw_arch = raw["arch"]
    if not isinstance(raw_arch, dict) or set(raw_arch) != set(ARCH_KEYS):
        raise _fail(where, f"arch must be an object with exactly the keys {', '.join(ARCH_KEYS)}")
    arch = SeedArch(**{k: _opt_int(where, f"arch.{k}", raw_arch[k]) for k in ARCH_KEYS})

    size_approx = _str(where, "size_approx", raw.get("size_approx"), nullable=True)
    params_approx = _str(where, "params_approx", raw.get("params_approx"), nullable=True)
    notes = _str(where, "notes", raw.get("notes"), nullable=True)

    raw_sources = raw["sources"]
    if not isinstance(raw_sources, dict):
        raise _fail(where, "sources must be an object of field -> URL")
    sources: dict[str, str] = {}
    for key, url in raw_sources.items():
        if key not in SOURCED_FIELDS:
            raise _fail(where, f"sources has {key!r}, which is not a sourced field ({', '.join(SOURCED_FIELDS)})")
        sources[key] = _https_url(where, f"sources[{key!r}]", url)

    values: dict[str, object] = {
        "origin_url": origin_url,
        "repo": repo,
        "file": file,
        "size_bytes": size_bytes,
        "sha256": sha256,
        "quant": quant,
        "params": params,
        "license": license_,
        "size_approx": size_approx,
        "params_approx": params_approx,
        **{f"arch.{k}": getattr(arch, k) for k in ARCH_KEYS},
    }
    for key in SOURCED_FIELDS:
        if values[key] is not None and key not in sources:
            raise _fail(where, f"{key} is set but has no source URL in sources (null it if no public page states it)")
        if values[key] is None and key in sources:
            raise _fail(where, f"sources cites {key}, but {key} is null")

    return SeedModel(
        name=name,
        origin_url=origin_url,
        repo=repo,
        file=file,
        size_bytes=size_bytes,
        sha256=sha256,
        quant=quant,
        params=params,
        license=license_,
        tier=tier,
        arch=arch,
        sources=MappingProxyType(sources),
        size_approx=size_approx,
        params_approx=params_approx,
        notes=notes,
    )


def parse_seed_catalog(doc: object) -> tuple[dict[str, SeedTier], list[SeedModel]]:
    """Validate a decoded seed catalog document; return (tiers smallest first, models in file order)."""
    if not isinstance(doc, dict):
        raise _fail("document", "must be a JSON object")
    if doc.get("schema") != SCHEMA_VERSION or isinstance(doc.get("schema"), bool):
        raise _fail("document", f"schema must be {SCHEMA_VERSION}, got {doc.get('schema')!r}")
    unknown = sorted(set(doc) - {"schema", "tiers", "models"})
    if unknown:
        raise _fail("document", f"unknown top-level field(s): {', '.join(unknown)}")
    tiers = _parse_tiers(doc.get("tiers"))
    raw_models = doc.get("models")
    if not isinstance(raw_models, list) or not raw_models:
        raise _fail("models", "must be a non-empty list")
    models: list[SeedModel] = []
    seen_names: set[str] = set()
    seen_urls: set[str] = set()
    for i, raw in enumerate(raw_models):
        m = _parse_model(i, raw, tiers)
        if m.name in seen_names:
            raise _fail(f"models[{i}] ({m.name})", "duplicate name")
        if m.origin_url in seen_urls:
            raise _fail(f"models[{i}] ({m.name})", f"duplicate origin_url {m.origin_url}")
        seen_names.add(m.name)
        seen_urls.add(m.origin_url)
        models.append(m)
    return tiers, models


# ---- loading ---------------------------------------------------------------------------------------------


def _read_text() -> str:
    """models.json from the installed silnode.seedcatalog package; from the source checkout as a fallback.

    The fallback covers a checkout whose editable install predates the package mapping (no
    silnode.seedcatalog importable yet): catalog/ sits two levels above this file.
    """

    try:
        return resources.files(RESOURCE_PACKAGE).joinpath(RESOURCE_NAME).read_text(encoding="utf-8")
    except ModuleNotFoundError:
        checkout = Path(__file__).resolve().parents[2] / "catalog" / RESOURCE_NAME
        if checkout.is_file():
            return checkout.read_text(encoding="utf-8")
        raise SeedCatalogError(
            f"seed catalog: package {RESOURCE_PACKAGE} is not installed and {checkout} does not exist"
        ) from None


@lru_cache(maxsize=1)
def _load() -> tuple[dict[str, SeedTier], tuple[SeedModel, ...]]:
    text = _read_text()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise SeedCatalogError(f"seed catalog: {RESOURCE_NAME} is not valid JSON: {e}") from None
    tiers, models = parse_seed_catalog(doc)
    return tiers, tuple(models)


def load_seed_catalog() -> list[SeedModel]:
    """The shipped seed catalog's models, in file order (validated; raises SeedCatalogError if malformed)."""
    return list(_load()[1])


def load_seed_tiers() -> dict[str, SeedTier]:
    """The shipped seed catalog's tiers, smallest first."""
    return dict(_load()[0])
