"""`recommend` and `--auto`: which models fit this machine, best first, and why the others don't.

Candidates are the models in the store (estimated from their GGUF headers) and the seed catalog's entries
(estimated from their published facts before anything is downloaded). Quality proxy: parameters x bits per
weight — more parameters and finer quantisation both help, and the product is the weight size in bits, so a
7B Q4 (≈ 34 Gbit) outranks a 3B Q8 (≈ 26 Gbit). Among the models that fit and are estimated to generate at
least fit.min_tokens_per_s on this machine (fit/speed.py), the best proxy wins; a model on disk wins a tie
with the catalog (the catalog entry of a model already in the store is the same model). Models that fit but
would be slower come next, fastest first: on a small CPU a 27B model fits in RAM yet generates well under one
token per second, and ranking it first would make `--auto` pick it.
Each model is placed as it would be served (fit/offload.py): whole on a GPU, split, partly offloaded, or CPU.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from silnode.config import Config
from silnode.errors import DoesNotFit, SilnodeError
from silnode.fit.estimate import MemoryEstimate, ModelShape, estimate, fits, fmt_size, model_shape, shape_from_portable
from silnode.fit.hardware import fit_device, probe_recent
from silnode.fit.inspect import hardware_overrides, plan_for
from silnode.fit.seed import load_seed_catalog
from silnode.fit.speed import SLOW, speed_class
from silnode.gguf import facts_from_header, read_header
from silnode.store import Store

# llama.cpp's nominal bits per weight per quantisation (tools/quantize/quantize.cpp, its "bpw" column), used
# for a catalog entry whose exact file size is not known
NOMINAL_BPW = {
    "F32": 32.0,
    "BF16": 16.0,
    "F16": 16.0,
    "Q8_0": 8.5,
    "Q6_K": 6.56,
    "Q5_K_M": 5.69,
    "Q5_K_S": 5.54,
    "Q5_0": 5.5,
    "Q4_K_M": 4.89,
    "Q4_K_S": 4.58,
    "Q4_0": 4.5,
    "IQ4_XS": 4.25,
    "Q3_K_L": 4.27,
    "Q3_K_M": 3.91,
    "Q3_K_S": 3.5,
    "Q2_K": 2.96,
}


@dataclass
class Candidate:
    name: str
    source: str  # "store" | "catalog"
    params: int | None
    quant: str | None
    bits_per_weight: float | None
    size_bytes: int | None
    need_bytes: int | None = None
    fits: bool = False
    reason: str = ""
    on_disk: bool = False
    origin_url: str | None = None
    tier: str | None = None
    license: str | None = None
    estimate: dict[str, Any] | None = field(default=None, repr=False)
    offload: dict[str, Any] | None = field(default=None, repr=False)  # fit/offload.py's plan
    tokens_per_s: float | None = None  # estimated generation speed on the device the plan uses
    speed: str | None = None  # "usable" | "slow" (below fit.min_tokens_per_s)

    @property
    def quality(self) -> float:
        """parameters x bits per weight; 0 when unknown (ranks last)."""
        return float(self.params or 0) * float(self.bits_per_weight or 0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["quality"] = self.quality
        return d


# ---- candidates ------------------------------------------------------------------------------------------


def store_candidates(config: Config) -> tuple[list[tuple[Candidate, ModelShape | None]], dict[str, Candidate]]:
    """The store's models with their shapes, and a lookup by name and by "sha256:<first file's hash>" that
    lets a catalog entry find its downloaded twin."""

    store = Store(config.base_dir)
    out = []
    twins: dict[str, Candidate] = {}
    for name in store.names():
        try:
            manifest = store.read_manifest(name)
            size = manifest.total_size
            if manifest.state != "ok":
                out.append(
                    (
                        Candidate(
                            name,
                            "store",
                            None,
                            None,
                            None,
                            size,
                            on_disk=True,
                            reason=f"state {manifest.state}: `silnode verify {name}`",
                        ),
                        None,
                    )
                )
                continue
            header = read_header(store.model_dir(name) / manifest.files[0].path)
        except SilnodeError as exc:
            out.append(
                (Candidate(name, "store", None, None, None, None, on_disk=True, reason=f"unreadable: {exc}"), None)
            )
            continue
        facts = facts_from_header(header)
        bpw = facts.tensor_bytes * 8 / facts.params if facts.params else None
        cand = Candidate(name, "store", facts.params, facts.quant, bpw, size, on_disk=True, license=manifest.license)
        out.append((cand, model_shape(header)))
        twins[name] = twins[f"sha256:{manifest.files[0].sha256}"] = cand
    return out, twins


def shape_from_facts(arch: dict[str, Any], weight_bytes: int, bits_per_weight: float) -> ModelShape | None:
    """A ModelShape from a catalog entry's published architecture facts; None when a needed one is unknown.

    Weights are the file size (the header is a small part of it); token_embd is n_vocab x n_embd at the
    model's average bits per weight. Sliding-window layers don't change the need at llama-cpp-python's
    default full-size SWA cache, so they are not modelled here."""
    need = ("n_layer", "n_embd", "n_head", "n_head_kv", "n_vocab")
    if any(not isinstance(arch.get(k), int) or arch[k] <= 0 for k in need):
        return None
    n_layer, n_embd, n_head = arch["n_layer"], arch["n_embd"], arch["n_head"]
    head_dim = arch.get("head_dim") or n_embd // n_head
    return ModelShape(
        arch=None,
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=(arch["n_head_kv"],) * n_layer,
        head_dim_k=head_dim,
        head_dim_v=head_dim,
        n_ff=arch.get("n_ff") or 4 * n_embd,
        n_vocab=arch["n_vocab"],
        n_ctx_train=arch.get("context_length"),
        n_swa=0,
        swa_layers=(False,) * n_layer,
        tensor_bytes=weight_bytes,
        token_embd_bytes=int(arch["n_vocab"] * n_embd * bits_per_weight / 8),
        tied_embeddings=False,
    )


def catalog_candidates(on_disk: dict[str, Candidate]) -> list[tuple[Candidate, ModelShape | None]]:
    """The seed catalog's entries not already in the store (matched by sha256 or name)."""

    out = []
    for m in load_seed_catalog():
        pinned = m.files[0].sha256
        twin = on_disk.get(m.name) or (on_disk.get(f"sha256:{pinned}") if pinned else None)
        if twin is not None:
            twin.origin_url, twin.tier = twin.origin_url or m.origin_url, twin.tier or m.tier
            continue
        # a model card's "7.61B" is good enough to rank; else count the weights the architecture implies
        facts = m.facts
        params = facts.params or _approx_count(m.params_approx) or params_from_arch(m.arch.to_dict())
        bpw = m.size_bytes * 8 / params if m.size_bytes and params else NOMINAL_BPW.get((facts.quant or "").upper())
        weight_bytes = m.size_bytes or (int(params * bpw / 8) if params and bpw else None)
        cand = Candidate(
            m.name,
            "catalog",
            params,
            m.quant,
            bpw,
            m.size_bytes,
            origin_url=m.origin_url,
            tier=m.tier,
            license=m.license,
        )
        shape = shape_from_facts(m.arch.to_dict(), weight_bytes, bpw) if weight_bytes and bpw else None
        if shape is None:
            cand.reason = "the catalog lacks the facts to estimate its memory need (size or architecture)"
        out.append((cand, shape))
    return out


def params_from_arch(arch: dict[str, Any]) -> int | None:
    """Parameters of a llama-style transformer from its shape: per layer Q, K, V, O and a gated FFN (three
    n_embd x n_ff matrices), plus untied input and output embeddings. None when a needed fact is unknown."""
    need = ("n_layer", "n_embd", "n_head", "n_head_kv", "n_ff", "n_vocab")
    if any(not arch.get(k) for k in need):
        return None
    e, hd = arch["n_embd"], arch.get("head_dim") or arch["n_embd"] // arch["n_head"]
    attn = e * arch["n_head"] * hd * 2 + e * arch["n_head_kv"] * hd * 2
    return arch["n_layer"] * (attn + 3 * e * arch["n_ff"]) + 2 * arch["n_vocab"] * e


def _approx_count(text: str | None) -> int | None:
    """ "7.61B" -> 7_610_000_000; None when absent or not of that form."""

    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMBT])\s*", text or "", re.IGNORECASE)
    if not m:
        return None
    return int(float(m.group(1)) * {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[m.group(2).upper()])


# ---- ranking ---------------------------------------------------------------------------------------------


def _judge(
    cand: Candidate, shape: ModelShape | None, config: Config, report: Any, n_ctx: int | None, minimum: float
) -> None:
    if shape is None:
        return
    plan = plan_for(config, shape, n_ctx=n_ctx, report=report)
    if plan is None:
        cand.reason = cand.reason or "no device with known free memory (see `silnode hardware`)"
        return
    est = estimate(shape, n_ctx=n_ctx, gpu=plan.mode != "cpu")
    cand.estimate = est.to_dict() | {"per_device": dict(plan.per_device)}
    cand.need_bytes = sum(plan.per_device.values()) if plan.mode == "cpu" else max(plan.per_device.values())
    cand.fits, cand.reason = plan.fits, plan.reason
    cand.offload = plan.to_dict()
    cand.tokens_per_s = round(plan.tokens_per_s, 1) if plan.tokens_per_s is not None else None
    cand.speed = speed_class(plan.tokens_per_s, minimum)
    if cand.source == "catalog":
        cand.reason += " (estimated from published facts)"


def rank(
    config: Config,
    *,
    n_ctx: int | None = None,
    catalog: bool = True,
    report: Any = None,
    min_tokens_per_s: float | None = None,
) -> dict[str, Any]:
    """Blocking (reads headers, probes hardware). {device, free_bytes, n_ctx, min_tokens_per_s, fits: [...],
    others: [...]}: `fits` best first — by quality among the models fast enough (fit.min_tokens_per_s, or
    `min_tokens_per_s`), then the slow ones, fastest first; `others` with the reason each is left out."""

    report = report or probe_recent(hardware_overrides(config))
    minimum = config.fit.min_tokens_per_s if min_tokens_per_s is None else min_tokens_per_s
    dev = fit_device(report)
    pairs, twins = store_candidates(config)
    if catalog:
        pairs += catalog_candidates(twins)
    for c, shape in pairs:
        _judge(c, shape, config, report, n_ctx, minimum)
    cands = [c for c, _ in pairs]
    fast = sorted((c for c in cands if c.fits and c.speed != SLOW), key=lambda c: (c.quality, c.on_disk), reverse=True)
    slow = sorted((c for c in cands if c.fits and c.speed == SLOW), key=lambda c: c.tokens_per_s or 0, reverse=True)
    rest = sorted((c for c in cands if not c.fits), key=lambda c: (c.need_bytes is None, c.need_bytes or 0))
    return {
        "device": dev.id if dev else None,
        "free_bytes": dev.free_bytes if dev else None,
        "n_ctx": n_ctx,
        "min_tokens_per_s": minimum,
        "fits": [c.to_dict() for c in fast + slow],
        "others": [c.to_dict() for c in rest],
    }


def pick_auto(ranking: dict[str, Any]) -> dict[str, Any]:
    """The model `--auto` takes: the first that fits. Raises with what the best other needs when none does."""
    if ranking["fits"]:
        return ranking["fits"][0]
    others = [c for c in ranking["others"] if c.get("need_bytes")]
    detail = f"; the smallest, {others[0]['name']}: {others[0]['reason']}" if others else ""
    raise DoesNotFit(f"no model fits on {ranking['device'] or 'this machine'}{detail}")


def metadata_fit_check(config: Config, total_bytes: int, shape: dict[str, Any] | None) -> tuple[bool, str]:
    """Before a download, from the torrent's metadata: (ok, reason). With the shape silnode torrents carry,
    the full estimate at serve.n_ctx (capped at the model's trained context); without one (a foreign
    torrent, or a lying peer's shape), whether the weights alone fit."""

    dev = fit_device(probe_recent(hardware_overrides(config)))
    if dev is None or not dev.free_bytes:
        return True, "free memory unknown; not checked"
    try:
        s = shape_from_portable(shape) if shape is not None else None
    except ValueError:
        s = None
    if s is not None:  # placed as serve would place it: a model a little too big for the GPU runs split
        n_ctx = min(config.serve.n_ctx or s.n_ctx_train or 4096, s.n_ctx_train or 1 << 30)
        plan = plan_for(config, s, n_ctx=n_ctx)
        return (plan.fits, plan.reason) if plan else (True, "free memory unknown; not checked")
    ok, _ = fits(_weights_only(total_bytes, dev), dev.free_bytes)
    return ok, (
        f"needs at least {fmt_size(total_bytes)} for its weights alone; {fmt_size(dev.free_bytes)} free on {dev.id}"
    )


def _weights_only(total: int, dev: Any) -> MemoryEstimate:
    return MemoryEstimate(
        n_ctx=0,
        n_ubatch=0,
        n_batch=0,
        flash_attn=False,
        gpu=dev.is_gpu,
        device=dev.id,
        weights_bytes=total,
        host_bytes=0,
        kv_bytes=0,
        compute_bytes=0,
        overhead_bytes=0,
        total_bytes=total,
        kv_cells=0,
        kv_cells_swa=None,
        repack_bytes=0,
        logits_bytes=0,
        cpu_peak_bytes=None,
        per_device={dev.id: total},
    )
