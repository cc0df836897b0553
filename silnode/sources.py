"""Find GGUF models already on this disk, in the Hugging Face cache or in Ollama's model store.

``silnode import --from hf|ollama [pattern]`` asks this module *what* there is to import; the store
does the copying or hardlinking. Everything here only reads: nothing in either cache is changed.

Both caches are treated as untrusted input. A path is only ever handed back when its real location
(all symlinks followed) is a regular file inside the place the cache keeps its payloads: the repo's
own ``blobs/`` folder for the HF cache (or huggingface_hub's shared Xet store), ``blobs/`` for Ollama.
Anything else - a snapshot link to ``/etc/passwd``, a blob that is itself a link out of the cache,
a manifest that is not JSON - is skipped with a warning and never raises.

HF cache layout (made by ``huggingface_hub``)::

    <cache>/models--<org>--<name>/blobs/<etag>
    <cache>/models--<org>--<name>/snapshots/<commit>/<path/in/repo>  -> ../../blobs/<etag>
    <cache>/models--<org>--<name>/refs/main                          (holds <commit>)

Ollama layout::

    <models>/manifests/<registry>/<namespace>/<model>/<tag>          (JSON, schemaVersion 2)
    <models>/blobs/sha256-<hex>
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from silnode.errors import BadRequest, NotFound

log = logging.getLogger(__name__)

SOURCES = ("hf", "ollama")

MAX_NAME_PART = 96
HF_CHUNK = 1 << 20  # huggingface_hub download chunk: a progress step and a chance to cancel per MiB
_NAME_BAD = re.compile(r"[^a-z0-9._-]+")

# -- HF ---------------------------------------------------------------------------------------------

_SPLIT_RE = re.compile(r"^(?P<base>.+)-(?P<idx>\d{5})-of-(?P<n>\d{5})\.gguf$", re.IGNORECASE)
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# llama.cpp file types as they appear in GGUF file names (last match in the stem wins).
_QUANT_RE = re.compile(
    r"(?<![a-z0-9])"
    r"((?:ud-)?(?:"
    r"i?q[1-8]_(?:k(?:_(?:xxs|xs|xl|s|m|l))?|[01](?:_[48]_[48])?|xxs|xs|xl|nl|s|m)"
    r"|tq[12]_0|bf16|fp16|fp32|f16|f32|mxfp4(?:_moe)?"
    r"))"
    r"(?![a-z0-9])",
    re.IGNORECASE,
)
_README_MAX = 256 * 1024
_YAML_BLOCK = re.compile(r"^\s*---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|$)", re.DOTALL)

# -- Ollama -----------------------------------------------------------------------------------------

OLLAMA_DEFAULT_REGISTRY = "registry.ollama.ai"
OLLAMA_DEFAULT_NAMESPACE = "library"
OLLAMA_MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
_OLLAMA_DIGEST_RE = re.compile(r"^sha256:([0-9a-f]{64})$")
_OLLAMA_BLOB_RE = re.compile(r"^sha256-[0-9a-f]{64}$")
_MANIFEST_MAX = 1024 * 1024


@dataclass(frozen=True)
class FoundModel:
    """One importable model: the real files, the names to give them, and where they came from."""

    source: str  # "hf" or "ollama"
    suggested_name: str  # a store name "org/model", already sanitised
    files: tuple[Path, ...]  # the real files (symlinks resolved), split parts in index order
    display_names: tuple[str, ...]  # file names to use inside the store, parallel to ``files``
    origin: dict[str, Any] = field(hash=False)  # provenance for the manifest (JSON-able)
    license: str | None = None


# ---------------------------------------------------------------------------------------------------
# locations


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def _expand(path: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(path)))


def hf_cache_dir() -> Path:
    """The HF hub cache, resolved like ``huggingface_hub.constants`` but from the env *now*.

    HF_HUB_CACHE, then the legacy HUGGINGFACE_HUB_CACHE, then HF_HOME/hub, then
    $XDG_CACHE_HOME/huggingface/hub, then ~/.cache/huggingface/hub.
    """
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        value = _env(var)
        if value:
            return _expand(value)
    home = _env("HF_HOME")
    if home:
        return _expand(home) / "hub"
    xdg = _env("XDG_CACHE_HOME")
    base = _expand(xdg) if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def ollama_models_dir() -> Path:
    """Ollama's model folder: $OLLAMA_MODELS, else ~/.ollama/models."""
    value = _env("OLLAMA_MODELS")
    return _expand(value) if value else Path.home() / ".ollama" / "models"


# ---------------------------------------------------------------------------------------------------
# names and patterns


def _sanitize(text: str, fallback: str = "model") -> str:
    """Lowercase, ``[a-z0-9._-]`` only, starting and ending with a letter or digit, <= 96 chars."""
    s = _NAME_BAD.sub("-", text.lower())
    s = re.sub(r"\.{2,}", ".", re.sub(r"-{2,}", "-", s)).strip("._-")
    if not s:
        s = fallback
    return _clip(s)


def _clip(part: str, limit: int = MAX_NAME_PART) -> str:
    """Cut ``part`` to ``limit`` chars, keeping it distinct from other long names with a short hash."""
    if len(part) <= limit:
        return part
    digest = hashlib.sha256(part.encode()).hexdigest()[:8]
    head = part[: limit - len(digest) - 1].rstrip("._-")
    return f"{head}-{digest}"


def _matches(pattern: str | None, candidates: Iterable[str]) -> bool:
    """Case-insensitive fnmatch when the pattern has a wildcard, substring match otherwise."""
    if not pattern:
        return True
    pat = pattern.lower()
    wildcard = any(c in pat for c in "*?[")
    for cand in candidates:
        c = cand.lower()
        if wildcard:
            if fnmatch.fnmatchcase(c, pat):
                return True
        elif pat in c:
            return True
    return False


def _dedupe_names(models: list[FoundModel]) -> list[FoundModel]:
    """Sort by name and make names unique across the list by appending -2, -3, ..."""
    models.sort(key=lambda m: (m.suggested_name, [str(f) for f in m.files]))
    seen: set[str] = set()
    out = []
    for m in models:
        name = m.suggested_name
        if name in seen:
            org, _, model = name.partition("/")
            k = 2
            while True:
                suffix = f"-{k}"
                candidate = f"{org}/{model[: MAX_NAME_PART - len(suffix)].rstrip('._-')}{suffix}"
                if candidate not in seen:
                    break
                k += 1
            m = FoundModel(m.source, candidate, m.files, m.display_names, m.origin, m.license)
            name = candidate
        seen.add(name)
        out.append(m)
    return out


# ---------------------------------------------------------------------------------------------------
# HF


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _safe_hf_blob(file_path: Path, blob_path: Path, repo_path: Path, cache_dir: Path) -> Path | None:
    """The real file behind a snapshot entry, or None (with a warning) if it is not a safe blob.

    Accepted:
      * the usual layout: the snapshot link ends, after every hop, at a regular file directly in
        ``<repo>/blobs/``;
      * huggingface_hub's shared Xet store: ``<repo>/blobs/<etag>`` is a link to
        ``<cache>/blobs/<2 hex>/<64 hex>`` (a marked store), a regular file;
      * a regular file (no symlink anywhere) stored right in the snapshot folder, which is how
        huggingface_hub lays out the cache where symlinks are not supported.
    """
    try:
        real = Path(os.path.realpath(file_path))
        repo_real = Path(os.path.realpath(repo_path))
    except (OSError, ValueError) as exc:
        log.warning("hf: skipping %s: cannot resolve (%s)", file_path, exc)
        return None
    blobs_real = repo_real / "blobs"

    if real.parent == blobs_real and _is_regular(real):
        return real

    # Shared Xet store: repo blob (first hop, lexically in <repo>/blobs) -> <cache>/blobs/xx/<hash>.
    store_real = Path(os.path.realpath(cache_dir)) / "blobs"
    if (
        os.path.abspath(blob_path.parent) == os.path.abspath(repo_path / "blobs")
        and real.parent.parent == store_real
        and _SHA256_RE.match(real.name)
        and real.parent.name == real.name[:2]
        and (store_real / ".huggingface-shared-blobs").is_file()
        and _is_regular(real)
    ):
        return real

    # No-symlink layout: a plain file inside this repo's snapshots (realpath equal to the lexical path).
    if (
        not file_path.is_symlink()
        and os.path.abspath(file_path) == str(real)
        and (repo_real / "snapshots") in real.parents
        and _is_regular(real)
    ):
        return real

    log.warning("hf: skipping %s: it resolves to %s, outside %s", file_path, real, blobs_real)
    return None


def _repo_base(repo_id: str) -> tuple[str, str]:
    """("org", "model") store parts for a repo id, dropping a trailing -GGUF from the repo name."""
    org, _, name = repo_id.rpartition("/")
    stripped = re.sub(r"[-_.]gguf$", "", name, flags=re.IGNORECASE)
    return _sanitize(org or "hf", "hf"), _sanitize(stripped or name)


def _quant_of(stem: str) -> str | None:
    matches = _QUANT_RE.findall(stem)
    return matches[-1].lower() if matches else None


@dataclass
class _HFCandidate:
    key: tuple  # identity of the model inside its repo (same across revisions)
    rel_paths: list[str]  # repo-relative file names, in order
    files: list[Path]
    display_names: list[str]
    stem: str  # file stem (split: the part before -0000k-of-0000N)
    rel_stem: str  # repo-relative path of the stem, '/' kept
    blob_names: list[str]


def _read_license(readme: Path) -> str | None:
    try:
        with open(readme, "rb") as fh:
            raw = fh.read(_README_MAX)
    except OSError:
        return None
    text = raw.decode("utf-8-sig", errors="replace")
    m = _YAML_BLOCK.match(text)
    if not m:
        return None
    block = m.group(1)
    data: Any = None
    try:
        import yaml  # huggingface_hub depends on PyYAML

        data = yaml.safe_load(block)
    except Exception:  # noqa: BLE001 - a broken card is not an error; try the plain line below
        data = None
    if isinstance(data, dict) and "license" in data:
        value = data["license"]
        if isinstance(value, list):
            value = value[0] if value else None
        if value is None:
            return None
        return str(value).strip() or None
    lm = re.search(r"^license:[ \t]*['\"]?([^'\"\r\n#]+?)['\"]?[ \t]*(?:#.*)?$", block, re.MULTILINE)
    return lm.group(1).strip() if lm else None


def _hf_revision_candidates(repo: Any, revision: Any, cache_dir: Path) -> tuple[dict, dict, Path | None]:
    """(complete models by key, incomplete split groups by key, safe README path) of one revision."""
    singles: dict[tuple, _HFCandidate] = {}
    splits: dict[tuple, dict[int, tuple[str, Path, str, str]]] = {}
    split_total: dict[tuple, int] = {}
    readme: Path | None = None
    snapshot = Path(revision.snapshot_path)

    for f in sorted(revision.files, key=lambda x: str(x.file_path)):
        file_path = Path(f.file_path)
        try:
            rel = file_path.relative_to(snapshot).as_posix()
        except ValueError:
            continue
        if rel == "README.md":
            readme = _safe_hf_blob(file_path, Path(f.blob_path), Path(repo.repo_path), cache_dir)
            continue
        if not file_path.name.lower().endswith(".gguf"):
            continue
        real = _safe_hf_blob(file_path, Path(f.blob_path), Path(repo.repo_path), cache_dir)
        if real is None:
            continue
        parent = rel.rpartition("/")[0]
        m = _SPLIT_RE.match(file_path.name)
        if m:
            idx, total = int(m.group("idx")), int(m.group("n"))
            base = m.group("base")
            key = ("split", parent, base.lower(), total)
            if total < 1 or not 1 <= idx <= total:
                log.warning("hf: skipping %s/%s: bad split index %d of %d", repo.repo_id, rel, idx, total)
                continue
            splits.setdefault(key, {})[idx] = (rel, real, file_path.name, Path(f.blob_path).name)
            split_total[key] = total
            continue
        stem = file_path.name[: -len(".gguf")]
        key = ("file", rel)
        singles[key] = _HFCandidate(
            key, [rel], [real], [file_path.name], stem, rel[: -len(".gguf")], [Path(f.blob_path).name]
        )

    incomplete: dict[tuple, list[int]] = {}
    for key, parts in splits.items():
        total = split_total[key]
        missing = [i for i in range(1, total + 1) if i not in parts]
        if missing:
            incomplete[key] = missing
            continue
        ordered = [parts[i] for i in range(1, total + 1)]
        first_rel = ordered[0][0]
        base = _SPLIT_RE.match(ordered[0][2]).group("base")  # type: ignore[union-attr]
        rel_stem = (first_rel.rpartition("/")[0] + "/" + base).lstrip("/")
        singles[key] = _HFCandidate(
            key,
            [p[0] for p in ordered],
            [p[1] for p in ordered],
            [p[2] for p in ordered],
            base,
            rel_stem,
            [p[3] for p in ordered],
        )
    return singles, incomplete, readme


def _hf_names(repo_id: str, cands: list[_HFCandidate]) -> dict[tuple, str]:
    org, base = _repo_base(repo_id)
    if len(cands) == 1:
        return {cands[0].key: f"{org}/{base}"}

    def suffix_of(c: _HFCandidate) -> str:
        quant = _quant_of(c.stem)
        mmproj = "mmproj" in c.stem.lower()
        if quant:
            return f"mmproj-{quant}" if mmproj else quant
        s = _sanitize(c.stem)
        if s.startswith(base) and len(s) > len(base):
            s = s[len(base) :].strip("._-") or s
        return s

    first = {c.key: _sanitize(f"{base}-{suffix_of(c)}") for c in cands}
    counts: dict[str, int] = {}
    for n in first.values():
        counts[n] = counts.get(n, 0) + 1
    names = {}
    for c in cands:
        n = first[c.key]
        if counts[n] > 1:  # e.g. two files with the same quant in different folders: use the path
            n = _sanitize(f"{base}-{c.rel_stem.replace('/', '-')}")
        names[c.key] = f"{org}/{n}"
    return names


def find_hf(pattern: str | None = None, cache_dir: Path | None = None) -> list[FoundModel]:
    """GGUF models in the HF cache (model repos only), one per file or per complete split set."""
    # huggingface_hub is costly to import: only for hf:// and the HF cache
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    cache = Path(cache_dir) if cache_dir is not None else hf_cache_dir()
    if not cache.exists():
        return []
    hub = (_env("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    try:
        info = scan_cache_dir(cache)
    except CacheNotFound:
        return []
    except (ValueError, OSError) as exc:
        log.warning("hf: cannot scan cache %s: %s", cache, exc)
        return []
    for w in info.warnings:
        log.warning("hf: cache problem: %s", w)
    cache_real = Path(info.cache_dir)

    found: list[FoundModel] = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        # newest revision first; ties broken by the one `main` points at, then by commit
        revisions = sorted(
            repo.revisions, key=lambda r: (r.last_modified, "main" in r.refs, r.commit_hash), reverse=True
        )
        chosen: dict[tuple, tuple[_HFCandidate, Any, Path | None]] = {}
        incomplete: dict[tuple, tuple[str, list[int]]] = {}
        readmes: list[Path] = []
        for rev in revisions:
            try:
                complete, partial, readme = _hf_revision_candidates(repo, rev, cache_real)
            except OSError as exc:
                log.warning("hf: skipping revision %s of %s: %s", rev.commit_hash, repo.repo_id, exc)
                continue
            if readme is not None:
                readmes.append(readme)
            for key, cand in complete.items():
                chosen.setdefault(key, (cand, rev, readme))
            for key, missing in partial.items():
                incomplete.setdefault(key, (rev.commit_hash, missing))
        for key, (commit, missing) in incomplete.items():
            if key not in chosen:
                log.warning(
                    "hf: skipping split model %s/%s in %s: parts %s of %d missing",
                    repo.repo_id,
                    key[2],
                    commit[:12],
                    ",".join(str(i) for i in missing),
                    key[3],
                )
        if not chosen:
            continue

        cands = [chosen[k][0] for k in sorted(chosen, key=lambda k: [str(x) for x in k])]
        names = _hf_names(repo.repo_id, cands)
        for cand in cands:
            _, rev, readme = chosen[cand.key]
            candidates = [f"{repo.repo_id}/{rel}" for rel in cand.rel_paths] + [names[cand.key]]
            if not _matches(pattern, candidates):
                continue
            license_ = None
            for path in ([readme] if readme is not None else []) + readmes:
                license_ = _read_license(path)
                if license_:
                    break
            commit = rev.commit_hash
            first = cand.rel_paths[0]
            origin: dict[str, Any] = {
                "type": "hf",
                "repo_id": repo.repo_id,
                "revision": commit,
                "filename": first,
                "url": f"{hub}/{repo.repo_id}/resolve/{quote(commit, safe='')}/{quote(first)}",
                "filenames": list(cand.rel_paths),
            }
            if all(_SHA256_RE.match(b) for b in cand.blob_names):  # LFS etag == sha256 of the content
                if len(cand.blob_names) == 1:
                    origin["expected_sha256"] = cand.blob_names[0]
                else:
                    origin["expected_sha256s"] = list(cand.blob_names)
            found.append(
                FoundModel(
                    source="hf",
                    suggested_name=names[cand.key],
                    files=tuple(cand.files),
                    display_names=tuple(cand.display_names),
                    origin=origin,
                    license=license_,
                )
            )
    return _dedupe_names(found)


# ---------------------------------------------------------------------------------------------------
# Ollama


def _read_manifest(path: Path) -> Any:
    with open(path, "rb") as fh:
        raw = fh.read(_MANIFEST_MAX + 1)
    if len(raw) > _MANIFEST_MAX:
        raise ValueError("manifest too large")
    return json.loads(raw.decode("utf-8"))


def find_ollama(pattern: str | None = None, models_dir: Path | None = None) -> list[FoundModel]:
    """GGUF models pulled by Ollama: one per manifest with a model layer whose blob is present."""
    root = Path(models_dir) if models_dir is not None else ollama_models_dir()
    manifests = root / "manifests"
    blobs = root / "blobs"
    if not manifests.is_dir():
        return []
    try:
        blobs_real = Path(os.path.realpath(blobs))
    except OSError:
        return []

    found: list[FoundModel] = []
    for dirpath, dirnames, filenames in os.walk(manifests, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_parts = Path(dirpath).relative_to(manifests).parts
        if len(rel_parts) > 3:
            dirnames[:] = []
            continue
        if len(rel_parts) != 3:
            continue
        registry, namespace, model = rel_parts
        for tag in sorted(filenames):
            if tag.startswith("."):
                continue
            mpath = Path(dirpath) / tag
            ref = f"{registry}/{namespace}/{model}:{tag}"
            fm = _ollama_one(mpath, ref, registry, namespace, model, tag, blobs, blobs_real)
            if fm is None:
                continue
            if _ollama_matches(pattern, fm, ref, registry, namespace, model, tag):
                found.append(fm)
    return _dedupe_names(found)


def _ollama_matches(
    pattern: str | None, fm: FoundModel, ref: str, registry: str, namespace: str, model: str, tag: str
) -> bool:
    """Match the name the way `ollama list` shows it, and the suggested store name.

    A plain substring is only looked for in the parts a user names ("llama3.2:1b", "llama3.2-1b"),
    never in "registry.ollama.ai" or the "ollama/" prefix, which every model shares (and which
    contain "llama"); a whole reference or store name still matches exactly, wildcards see all forms.
    """
    if not pattern:
        return True
    if registry == OLLAMA_DEFAULT_REGISTRY:
        shown = f"{model}:{tag}" if namespace == OLLAMA_DEFAULT_NAMESPACE else f"{namespace}/{model}:{tag}"
    else:
        shown = ref
    store_model = fm.suggested_name.partition("/")[2]
    everything = [shown, f"{namespace}/{model}:{tag}", ref, fm.suggested_name, store_model]
    if any(c in pattern for c in "*?["):
        return _matches(pattern, everything)
    if pattern.lower() in (c.lower() for c in everything):
        return True
    return _matches(pattern, [shown, store_model])


def _ollama_one(
    mpath: Path, ref: str, registry: str, namespace: str, model: str, tag: str, blobs: Path, blobs_real: Path
) -> FoundModel | None:
    try:
        if mpath.is_symlink() or not mpath.is_file():
            log.warning("ollama: skipping %s: manifest is not a regular file", ref)
            return None
        data = _read_manifest(mpath)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        log.warning("ollama: skipping %s: unreadable manifest (%s)", ref, exc)
        return None
    if not isinstance(data, dict) or data.get("schemaVersion") != 2 or not isinstance(data.get("layers"), list):
        log.warning("ollama: skipping %s: not a schemaVersion 2 manifest with layers", ref)
        return None
    model_layers = [
        layer
        for layer in data["layers"]
        if isinstance(layer, dict) and layer.get("mediaType") == OLLAMA_MODEL_MEDIA_TYPE
    ]
    if not model_layers:
        log.info("ollama: skipping %s: no GGUF model layer", ref)
        return None
    if len(model_layers) > 1:
        log.warning("ollama: skipping %s: %d model layers, expected one", ref, len(model_layers))
        return None
    layer = model_layers[0]
    digest = layer.get("digest")
    m = _OLLAMA_DIGEST_RE.match(digest) if isinstance(digest, str) else None
    if not m:
        log.warning("ollama: skipping %s: bad model layer digest %r", ref, digest)
        return None
    hexdigest = m.group(1)
    blob_name = f"sha256-{hexdigest}"
    if not _OLLAMA_BLOB_RE.match(blob_name):  # by construction; kept as a guard
        return None
    blob = blobs / blob_name
    try:
        real = Path(os.path.realpath(blob))
    except OSError:
        real = blob
    if not blob.exists():
        log.warning("ollama: skipping %s: blob %s is missing", ref, blob_name)
        return None
    if real.parent != blobs_real or not _OLLAMA_BLOB_RE.match(real.name) or not _is_regular(real):
        log.warning("ollama: skipping %s: blob %s resolves to %s, outside %s", ref, blob_name, real, blobs_real)
        return None
    size = layer.get("size")
    if isinstance(size, int) and not isinstance(size, bool):
        try:
            actual = real.stat().st_size
        except OSError:
            actual = -1
        if actual != size:
            log.warning("ollama: skipping %s: blob is %d bytes, manifest says %d", ref, actual, size)
            return None

    default_ns = namespace == OLLAMA_DEFAULT_NAMESPACE
    default_reg = registry == OLLAMA_DEFAULT_REGISTRY
    if default_reg and default_ns:
        model_part = f"{model}-{tag}"
        display_model = model
    elif default_reg:
        model_part = f"{namespace}-{model}-{tag}"
        display_model = f"{namespace}/{model}"
    else:
        model_part = f"{registry}-{namespace}-{model}-{tag}"
        display_model = f"{registry}/{namespace}/{model}"
    origin = {
        "type": "ollama",
        "model": display_model,
        "tag": tag,
        "digest": digest,
        "expected_sha256": hexdigest,
        "registry": registry,
        "namespace": namespace,
    }
    return FoundModel(
        source="ollama",
        suggested_name=f"ollama/{_sanitize(model_part)}",
        files=(real,),
        display_names=(_clip(_sanitize(f"{model}-{tag}"), MAX_NAME_PART - len(".gguf")) + ".gguf",),
        origin=origin,
        license=None,
    )


# ---------------------------------------------------------------------------------------------------


def find(source: str, pattern: str | None = None, *, cache_dir: Path | None = None) -> list[FoundModel]:
    """Dispatch on ``source`` ("hf" or "ollama"); ``cache_dir`` overrides that source's folder."""
    key = (source or "").strip().lower()
    if key in ("hf", "huggingface"):
        return find_hf(pattern, cache_dir=cache_dir)
    if key == "ollama":
        return find_ollama(pattern, models_dir=cache_dir)
    raise BadRequest(
        f"unknown import source {source!r}: use one of {', '.join(SOURCES)}",
        hint="silnode import --from hf|ollama [pattern]",
        valid=list(SOURCES),
    )


__all__ = ["FoundModel", "SOURCES", "find", "find_hf", "find_ollama", "hf_cache_dir", "ollama_models_dir"]


# ---------------------------------------------------------------------------------------------------
# hf:// references: download into the HF cache (resumable), then find the model there

HF_REF_RE = re.compile(
    r"^hf://(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)/"
    r"(?P<file>[A-Za-z0-9][A-Za-z0-9._/-]*\.gguf)(?:@(?P<rev>[A-Za-z0-9._/-]+))?$"
)


def _pinned(found: FoundModel, commit: str, requested: str | None, hub_sha: list) -> FoundModel:
    """``found`` with its origin naming the pinned commit and the Hub's sha256 of each file."""
    origin = dict(found.origin)
    first = origin["filename"]
    hub = origin["url"].split(f"/{origin['repo_id']}/resolve/")[0]
    origin.update(
        revision=commit,
        requested_revision=requested or "main",
        url=f"{hub}/{origin['repo_id']}/resolve/{quote(commit, safe='')}/{quote(first)}",
        hub_sha256=list(hub_sha),
    )
    origin.pop("expected_sha256", None)
    origin.pop("expected_sha256s", None)
    if all(hub_sha):
        if len(hub_sha) == 1:
            origin["expected_sha256"] = hub_sha[0]
        else:
            origin["expected_sha256s"] = list(hub_sha)
    return replace(found, origin=origin)


def parse_hf_ref(ref: str) -> tuple[str, str, str | None]:
    """``hf://org/repo/path/file.gguf[@revision]`` -> (repo_id, filename, revision)."""
    m = HF_REF_RE.fullmatch(ref.strip())
    if not m or ".." in m.group("file").split("/"):
        raise BadRequest(
            f"not an hf:// GGUF reference: {ref[:120]!r}", hint="use hf://ORG/REPO/FILE.gguf, optionally @REVISION"
        )
    return m.group("repo"), m.group("file"), m.group("rev")


def _reporting_tqdm(progress: Callable[[int, int], None], before: int) -> type:
    """A tqdm class for hf_hub_download that draws nothing and hands the bytes to ``progress(done, total)``
    (``before``: bytes of the earlier parts of a split model). ``progress`` may raise (TaskCancelled when the
    daemon stops or the user cancels): the exception leaves hf_hub_download at once. huggingface_hub 2.x then
    deletes its partial file (each try downloads into a file of its own), so the next try starts again."""
    from tqdm.auto import tqdm

    class Reporting(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._done = int(kwargs.get("initial") or 0)
            self._total = int(kwargs.get("total") or 0)
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            progress(before + self._done, before + self._total)

        def update(self, n: float | None = 1) -> bool | None:
            self._done += int(n or 0)
            progress(before + self._done, before + max(self._total, self._done))
            return None

    return Reporting


def _hub_pin(repo_id: str, names: list[str], revision: str | None, endpoint: str | None) -> tuple[str, list]:
    """Resolve ``revision`` (a branch, tag or commit; ``main`` when None) to the commit it names now, and ask
    the Hub for each file's metadata at that commit: (commit, [the Hub's LFS sha256 of each file, or None]).

    The sha256 is the LFS object id the Hub sends as the file's ETag (``X-Linked-Etag`` when the resolve URL
    redirects to storage); a file kept in git itself has its git blob SHA-1 there instead, which is no
    content hash of ours: None. Every later request names the commit, so a branch that moves meanwhile
    cannot mix two revisions into one model."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    def meta(name: str, rev: str) -> Any:
        return get_hf_file_metadata(hf_hub_url(repo_id, name, revision=rev, endpoint=endpoint), endpoint=endpoint)

    first = meta(names[0], revision or "main")
    commit = first.commit_hash
    if not commit:
        raise BadRequest(f"the Hugging Face Hub named no commit for hf://{repo_id}/{names[0]}; cannot pin it")
    metas = [first] + [meta(n, commit) for n in names[1:]]
    hub_sha = [m.etag.lower() if m.etag and _SHA256_RE.fullmatch(m.etag.lower()) else None for m in metas]
    return commit, hub_sha


def fetch_hf(
    ref: str, *, cache_dir: Path | None = None, progress: Callable[[int, int], None] | None = None
) -> FoundModel:
    """Download an hf:// GGUF through huggingface_hub into its cache (an interrupted download resumes), and
    return it as found in the cache. Split GGUFs: give part 1; the other parts are fetched too.

    The revision is pinned first: the branch (``main`` unless the ref names one) is resolved to its commit
    once, and every part and the README are fetched at that commit. The returned origin records the commit
    (``revision``), what was asked for (``requested_revision``) and the Hub's own LFS sha256 of every file
    (``hub_sha256``, a list, None for a file without one); ``expected_sha256``/``expected_sha256s`` are those
    values, so the store's one SHA-256 pass checks the bytes against them.

    ``progress(done_bytes, total_bytes)`` is called as bytes arrive; raising from it cancels the download (the
    task runner raises TaskCancelled when the daemon stops, so `daemon stop` never waits on a big download).
    ``HF_ENDPOINT`` selects the Hub (read at call time); ``HF_TOKEN`` is used by huggingface_hub itself.
    """
    # huggingface_hub is costly to import: only for hf:// and the HF cache
    import huggingface_hub.constants as hf_constants
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id, filename, revision = parse_hf_ref(ref)
    cache = Path(cache_dir) if cache_dir is not None else hf_cache_dir()
    endpoint = _env("HF_ENDPOINT")
    names = [filename]
    m = re.match(r"^(?P<stem>.+)-(?P<i>\d{5})-of-(?P<n>\d{5})\.gguf$", filename)
    if m:
        n = int(m.group("n"))
        names = [f"{m.group('stem')}-{i:05d}-of-{n:05d}.gguf" for i in range(1, n + 1)]
    # huggingface_hub reports (and so lets a cancel land) once per chunk, 10 MiB by default: a minute apart on
    # a slow link; 1 MiB chunks cost nothing and keep the progress bar moving and a cancel prompt
    hf_constants.DOWNLOAD_CHUNK_SIZE = min(hf_constants.DOWNLOAD_CHUNK_SIZE, HF_CHUNK)
    requested = revision
    try:
        try:
            revision, hub_sha = _hub_pin(repo_id, names, revision, endpoint)
        except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError, HfHubHTTPError):
            raise  # answered below
        except Exception as exc:  # offline (HF_HUB_OFFLINE) or the Hub unreachable: the cache decides
            log.info("hf: cannot pin %s (%s); using the cached revision", ref, exc)
            hub_sha = None
        before = 0
        got_paths = []
        for name in names:
            extra: dict[str, Any] = {"tqdm_class": _reporting_tqdm(progress, before)} if progress else {}
            got = hf_hub_download(repo_id, name, revision=revision, cache_dir=cache, endpoint=endpoint, **extra)
            got_paths.append(os.path.realpath(got))
            before += os.path.getsize(got)
        ref_name = requested or "main"
        safe_ref = ".." not in ref_name.split("/") and not ref_name.startswith("/")
        if hub_sha is not None and ref_name != revision and safe_ref:
            # what huggingface_hub records when it fetches by branch: the branch -> commit ref, so the cache
            # (and HF_HUB_OFFLINE) finds this revision by the name the user gave
            ref_file = cache / f"models--{repo_id.replace('/', '--')}" / "refs" / ref_name
            ref_file.parent.mkdir(parents=True, exist_ok=True)
            ref_file.write_text(revision)
        try:  # the license lives in the model card's front matter
            hf_hub_download(repo_id, "README.md", revision=revision, cache_dir=cache, endpoint=endpoint)
        except (EntryNotFoundError, HfHubHTTPError):
            pass
    except LocalEntryNotFoundError as exc:
        raise BadRequest(
            f"cannot reach the Hugging Face Hub for {ref}: {exc}",
            hint="check the network (or HF_ENDPOINT); HF_HUB_OFFLINE=1 allows only cached files",
        ) from exc
    except EntryNotFoundError as exc:
        raise NotFound(f"{ref}: no such file in {repo_id}") from exc
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise NotFound(
            f"{ref}: the Hub has no such repository or revision ({repo_id})",
            hint="check the name; a private or gated repository needs HF_TOKEN",
        ) from exc
    except HfHubHTTPError as exc:
        raise BadRequest(f"Hugging Face Hub refused {ref}: {exc}") from exc
    wanted = f"{repo_id}/{names[0]}".lower()
    for found in find_hf(None, cache):
        if (
            found.origin.get("repo_id", "").lower() == repo_id.lower()
            and found.origin.get("filename", "").lower() == names[0].lower()
        ):
            # the cache may hold several revisions; the one found must be these very files (same blobs)
            if [os.path.realpath(p) for p in found.files] != got_paths:
                continue
            return _pinned(found, revision, requested, hub_sha) if hub_sha is not None else found
    raise NotFound(f"{wanted} was downloaded but is not usable in the cache (see the daemon log)")
