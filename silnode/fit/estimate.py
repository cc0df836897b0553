"""How much memory a GGUF needs to run under llama.cpp, from its header alone.

    estimate(model, *, n_ctx=None, n_ubatch=512, n_batch=512, flash_attn=False, gpu=False,
             kv_type_bytes=2, swa_full=True) -> MemoryEstimate
    fits(estimate, free_bytes, *, margin=None) -> (ok, reason)

The model (checked against llama-cpp-python 0.3.36's own "buffer size" log lines and peak RSS in
tests/fit/test_estimate.py; error table in bench/estimate.py):

* **weights** = the sum of the tensor sizes (llama.cpp's "CPU_Mapped model buffer"). On CPU add the
  copies ggml's CPU backend repacks for faster matmuls ("CPU_REPACK model buffer": on x86-64 with AVX2
  the Q4_0 / Q4_K / IQ4_NL / MXFP4 matrices, except token_embd, whose rows are gathered, not multiplied).
  On a GPU `token_embd` stays in host RAM (`host_bytes`), unless the model has no `output.weight`
  (tied embeddings): then llama.cpp also puts a copy of it on the GPU as the output layer.
* **KV cache** = per layer, (K width + V width) x cells x `kv_type_bytes` (2 = f16). Width =
  head_count_kv(layer) x key_length / value_length (default n_embd / n_head). Cells = n_ctx rounded up
  to 256, as llama.cpp does. Sliding-window layers (arch's pattern, or `attention.sliding_window_pattern`)
  keep only min(cells, pad256(n_swa + n_ubatch)) cells when swa_full=False; llama-cpp-python's default
  is swa_full=True (a full-size cache for every layer).
* **compute buffer**: the peak of ggml's graph allocator for the worst-case batch (n_tokens =
  min(n_ubatch, n_ctx), every token an output; see compute_bytes_for). Either the logits (n_vocab x
  n_tokens f32) or, without flash attention, the attention scores (n_head x n_kv x n_tokens f32) plus the
  KQ mask(s) dominate, with a few activations on top. With flash attention there is no score matrix and
  the mask is f16. Matches llama.cpp's "compute buffer size" to within 0.5 % on the test models.
* **overhead** (`overhead_parts`): on CPU, the runtime baseline of a Python process with llama-cpp-python
  loaded (46 MiB), llama.cpp's vocabulary structures (~160 B per token: 40 MiB for a 262k vocabulary), the
  GGUF header pages (the whole file is mmapped and populated) and the CPU backend's matmul work buffer:
  without flash attention the attention scores are converted to f16 for the V product there
  (n_head x n_kv x n_tokens x 2 B; not in llama.cpp's buffer log lines, but real RSS).
  On a GPU: the CUDA context (~520 MiB per process, created by the first allocation) + ~200 MiB of pool
  growth during the first prompts (research/gpu-notes.md), in VRAM; the host parts go to host_bytes.

total_bytes is what the main device needs (RAM on CPU, VRAM on GPU); `per_device` splits it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from silnode.gguf import GGML_TYPES, ArrayInfo, GGUFHeader, read_header

__all__ = [
    "CPU_BASELINE",
    "CUDA_CONTEXT",
    "DEFAULT_N_CTX",
    "ESTIMATE_ERROR",
    "GPU_POOL_HEADROOM",
    "VOCAB_BYTES_PER_TOKEN",
    "GiB",
    "MemoryEstimate",
    "MiB",
    "ModelShape",
    "compute_bytes_for",
    "default_margin",
    "estimate",
    "fits",
    "keep_free",
    "room_for",
    "fmt_gib",
    "fmt_mib",
    "fmt_size",
    "model_shape",
    "portable_shape",
    "shape_from_portable",
]

MiB = 1 << 20
GiB = 1 << 30
CPU_BASELINE = 46 * MiB  # python + libllama + numpy, measured (research/gguf-llama-notes.md §4)
VOCAB_BYTES_PER_TOKEN = 160  # llama.cpp's vocabulary (token strings, maps): fitted, 140-180 B measured
CUDA_CONTEXT = 520 * MiB  # per process, from the first CUDA allocation until exit (research/gpu-notes.md)
GPU_POOL_HEADROOM = 200 * MiB  # CUDA pool growth during the first prompts (+12 to +184 MiB measured)
DEFAULT_N_CTX = 4096  # n_ctx=None: the model's trained context, capped at this
KV_PAD = 256  # llama.cpp pads n_ctx (and the SWA cache size) to a multiple of 256 cells
ESTIMATE_ERROR = 0.05  # the estimate's tested accuracy (tests/fit/test_estimate.py), added to the need by fits()
BIG_VOCAB = 100_000  # tokens
_BLOCK = re.compile(r"blk\.(\d+)\.")  # a repeating layer's tensors: blk.<layer>.<name>

# sliding-window layer pattern per architecture when the GGUF has no attention.sliding_window_pattern:
# (n_pattern, dense_first) as in llama.cpp's load_swa_pattern calls (src/models/*.cpp, 0.3.36's llama.cpp)
SWA_PATTERNS: dict[str, tuple[int, bool]] = {
    "gemma2": (2, False),
    "gemma3": (6, False),
    "gemma3n": (5, False),
    "gemma-embedding": (6, False),
    "cohere2": (4, False),
    "exaone4": (4, False),
    "olmo2": (4, False),
    "llama4": (4, False),
    "afmoe": (4, False),
    "exaone-moe": (4, False),
    "modern-bert": (3, True),
}

# CPU_REPACK: ggml types repacked by the CPU backend, with the row multiple required (repack.cpp)
_REPACK_X86_AVX2 = {"Q4_0": 8, "Q4_K": 8, "IQ4_NL": 8, "MXFP4": 8}
_REPACK_ARM = {"Q4_0": 4, "Q4_K": 8, "Q5_K": 8, "Q6_K": 8, "IQ4_NL": 4, "MXFP4": 4, "Q8_0": 4}


def fmt_gib(n: float) -> str:
    return f"{n / GiB:.1f} GiB"


@dataclass(frozen=True)
class ModelShape:
    """The numbers from a GGUF header that the estimate needs."""

    arch: str | None
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: tuple[int, ...]  # per layer
    head_dim_k: int
    head_dim_v: int
    n_ff: int
    n_vocab: int
    n_ctx_train: int | None
    n_swa: int  # 0: no sliding window
    swa_layers: tuple[bool, ...]  # per layer: sliding-window attention
    tensor_bytes: int
    token_embd_bytes: int
    tied_embeddings: bool  # no output.weight: the output layer reuses token_embd
    repack: dict[str, int] = field(default_factory=dict)  # CPU repack candidates: type -> bytes (see estimate)
    header_bytes: int = 0  # the GGUF header (metadata + tensor infos): mmapped and populated with the weights
    output_bytes: int = 0  # output.weight (0: tied to token_embd, or unknown for a shape from published facts)
    layer_bytes: tuple[int, ...] = ()  # weights of each repeating layer (blk.N.*); () when unknown


@dataclass(frozen=True)
class MemoryEstimate:
    n_ctx: int
    n_ubatch: int
    n_batch: int
    flash_attn: bool
    gpu: bool
    device: str  # the main device's name: "CPU", "CUDA0", ...
    weights_bytes: int  # on the main device (GPU: without token_embd, see host_bytes)
    host_bytes: int  # GPU only: what stays in host RAM (token_embd, host compute buffer, runtime baseline)
    kv_bytes: int
    compute_bytes: int
    overhead_bytes: int  # sum of overhead_parts
    total_bytes: int  # on the main device: weights + kv + compute + overhead
    kv_cells: int  # cells of a full-attention layer
    kv_cells_swa: int | None  # cells of a sliding-window layer (None: no such layers)
    repack_bytes: int  # part of weights_bytes (CPU only): llama.cpp's CPU_REPACK copies
    logits_bytes: int  # part of compute_bytes' worst case: n_vocab x n_tokens f32
    cpu_peak_bytes: int | None  # CPU: the peak RSS to expect: total_bytes less the logits a CPU run never
    #                             touches (only the last token's row is computed); None on GPU
    per_device: dict[str, int] = field(hash=False)
    notes: tuple[str, ...] = ()
    overhead_parts: dict[str, int] = field(default_factory=dict, hash=False)  # what overhead_bytes is made of

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["per_device"] = dict(self.per_device)
        d["overhead_parts"] = dict(self.overhead_parts)
        d["notes"] = list(self.notes)
        return d


# ---- reading the shape -------------------------------------------------------------------------------------


def _int(v: object) -> int | None:
    if isinstance(v, bool):
        return None
    return v if isinstance(v, int) else None


def _per_layer(v: object, n_layer: int, default: int) -> tuple[int, ...]:
    if isinstance(v, list) and v and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        vals = list(v)[:n_layer]
        return tuple(vals + [vals[-1]] * (n_layer - len(vals)))
    i = _int(v)
    return (default if i is None else i,) * n_layer


def _swa_layers(md: Mapping[str, object], a: str, arch: str | None, n_layer: int, n_swa: int) -> tuple[bool, ...]:
    if n_swa <= 0:
        return (False,) * n_layer
    pat = md.get(a + "attention.sliding_window_pattern")
    if isinstance(pat, list) and pat and all(isinstance(x, bool) for x in pat):  # per-layer is_swa array
        return tuple(pat[:n_layer]) + (False,) * max(0, n_layer - len(pat))
    n_pattern, dense_first = SWA_PATTERNS.get(arch or "", (0, False))
    if _int(pat) is not None:
        n_pattern = _int(pat)  # type: ignore[assignment]
    if isinstance(pat, ArrayInfo) or (arch not in SWA_PATTERNS and _int(pat) is None):
        n_pattern = 0  # unknown pattern: llama.cpp's default (0) makes every layer sliding-window
    if dense_first:
        return tuple(n_pattern == 0 or il % n_pattern != 0 for il in range(n_layer))
    return tuple(n_pattern == 0 or il % n_pattern < n_pattern - 1 for il in range(n_layer))


def model_shape(h: GGUFHeader, *, repack_rules: Mapping[str, int] | None = None) -> ModelShape:
    md = h.metadata
    arch = md.get("general.architecture")
    arch = arch if isinstance(arch, str) else None
    a = f"{arch}." if arch else "\0"

    def get(key: str) -> object:
        return md.get(a + key)

    n_layer = _int(get("block_count")) or 0
    n_embd = _int(get("embedding_length")) or 0
    heads = _per_layer(get("attention.head_count"), n_layer, 0) if n_layer else ()
    n_head = max(heads, default=0)
    n_head_kv = _per_layer(get("attention.head_count_kv"), n_layer, n_head) if n_layer else ()
    head_dim = n_embd // n_head if n_head else 0
    head_dim_k = _int(get("attention.key_length")) or head_dim
    head_dim_v = _int(get("attention.value_length")) or head_dim
    n_ff = max(_per_layer(get("feed_forward_length"), n_layer, 0), default=0) if n_layer else 0

    tokens = md.get("tokenizer.ggml.tokens")
    n_vocab = tokens.length if isinstance(tokens, ArrayInfo) else len(tokens) if isinstance(tokens, list) else 0
    by_name = {t.name: t for t in h.tensors}
    emb = by_name.get("token_embd.weight")
    if emb is not None and len(emb.shape) >= 2:
        n_vocab = max(n_vocab, emb.shape[1])
    if not n_vocab:
        n_vocab = _int(get("vocab_size")) or 0
    n_swa = _int(get("attention.sliding_window")) or 0
    if isinstance(get("attention.sliding_window"), list):  # per-layer list: max
        n_swa = max(get("attention.sliding_window"))  # type: ignore[arg-type]

    layer_bytes = [0] * n_layer
    for t in h.tensors:
        m = _BLOCK.match(t.name)
        if m and int(m.group(1)) < n_layer:
            layer_bytes[int(m.group(1))] += t.n_bytes
    out_t = by_name.get("output.weight")

    rules = repack_rules if repack_rules is not None else _repack_rules()
    repack: dict[str, int] = {}
    for t in h.tensors:
        name = GGML_TYPES[t.ggml_type][0]
        mult = rules.get(name)
        if (
            mult
            and len(t.shape) == 2
            and t.shape[1] % mult == 0
            and t.name != "token_embd.weight"
            and t.name.endswith(".weight")
        ):
            repack[name] = repack.get(name, 0) + t.n_bytes

    return ModelShape(
        arch=arch,
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim_k=head_dim_k,
        head_dim_v=head_dim_v,
        n_ff=n_ff,
        n_vocab=n_vocab,
        n_ctx_train=_int(get("context_length")),
        n_swa=n_swa,
        swa_layers=_swa_layers(md, a, arch, n_layer, n_swa),
        tensor_bytes=sum(t.n_bytes for t in h.tensors),
        token_embd_bytes=emb.n_bytes if emb is not None else 0,
        tied_embeddings=emb is not None and "output.weight" not in by_name,
        repack=repack,
        header_bytes=h.data_offset,
        output_bytes=out_t.n_bytes if out_t is not None else 0,
        layer_bytes=tuple(layer_bytes) if any(layer_bytes) else (),
    )


# ---- a shape that travels (in a torrent's metadata) -------------------------------------------------------

# the row multiples any CPU repack rule uses (x86 and ARM): a portable shape lists bytes per type per multiple
_REPACK_MULTS = (4, 8)
_PORTABLE_INTS = (
    "n_layer",
    "n_embd",
    "n_head",
    "head_dim_k",
    "head_dim_v",
    "n_ff",
    "n_vocab",
    "n_swa",
    "tensor_bytes",
    "token_embd_bytes",
    "header_bytes",
)
_MAX_INT = 1 << 50  # bigger than any real model's byte count; bounds what an untrusted peer can send
_MAX_LAYERS = 4096


def portable_shape(h: GGUFHeader) -> dict[str, Any]:
    """The ModelShape facts of a GGUF as plain ints, lists and strings (bencode-able), independent of the
    machine: CPU repack candidates are listed per ggml type and row multiple, and the machine that reads it
    applies its own rules (shape_from_portable). Deterministic: a function of the header only."""
    s = model_shape(h, repack_rules={})
    repack: dict[str, dict[str, int]] = {}
    kinds = set(_REPACK_X86_AVX2) | set(_REPACK_ARM)
    for t in h.tensors:
        name = GGML_TYPES[t.ggml_type][0]
        if name in kinds and len(t.shape) == 2 and t.name != "token_embd.weight" and t.name.endswith(".weight"):
            for mult in _REPACK_MULTS:
                if t.shape[1] % mult == 0:
                    row = repack.setdefault(name, {})
                    row[str(mult)] = row.get(str(mult), 0) + t.n_bytes
    d: dict[str, Any] = {k: getattr(s, k) for k in _PORTABLE_INTS}
    d.update(
        arch=s.arch or "",
        n_head_kv=list(s.n_head_kv),
        swa_layers=[int(x) for x in s.swa_layers],
        tied_embeddings=int(s.tied_embeddings),
        n_ctx_train=s.n_ctx_train or 0,
        repack=repack,
    )
    return d


def shape_from_portable(d: Mapping[str, Any]) -> ModelShape:
    """A ModelShape from portable_shape()'s dict (maybe from an untrusted peer: every value is checked).
    Raises ValueError naming the bad field."""

    def num(key: str, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < _MAX_INT:
            raise ValueError(f"{key} must be an integer from 0 to 2^50")
        return v

    if not isinstance(d, Mapping):
        raise ValueError("expected a dict")
    ints = {k: num(k, d.get(k)) for k in _PORTABLE_INTS}
    n_layer = ints["n_layer"]
    if n_layer > _MAX_LAYERS:
        raise ValueError(f"n_layer {n_layer} is not plausible")
    lists = {}
    for key in ("n_head_kv", "swa_layers"):
        v = d.get(key)
        if not isinstance(v, list) or len(v) != n_layer:
            raise ValueError(f"{key} must list one value per layer")
        lists[key] = [num(key, x) for x in v]
    arch = d.get("arch")
    if not isinstance(arch, str) or len(arch) > 64:
        raise ValueError("arch must be a short string")
    repack_in = d.get("repack")
    if not isinstance(repack_in, Mapping) or len(repack_in) > 32:
        raise ValueError("repack must be a small dict")
    rules = _repack_rules()
    repack = {}
    for name, by_mult in repack_in.items():
        if not isinstance(by_mult, Mapping):
            raise ValueError("repack entries must be dicts")
        mult = rules.get(str(name))
        if mult is not None and str(mult) in by_mult:
            repack[str(name)] = num("repack", by_mult[str(mult)])
    return ModelShape(
        arch=arch or None,
        n_layer=n_layer,
        n_embd=ints["n_embd"],
        n_head=ints["n_head"],
        n_head_kv=tuple(lists["n_head_kv"]),
        head_dim_k=ints["head_dim_k"],
        head_dim_v=ints["head_dim_v"],
        n_ff=ints["n_ff"],
        n_vocab=ints["n_vocab"],
        n_ctx_train=num("n_ctx_train", d.get("n_ctx_train")) or None,
        n_swa=ints["n_swa"],
        swa_layers=tuple(bool(x) for x in lists["swa_layers"]),
        tensor_bytes=ints["tensor_bytes"],
        token_embd_bytes=ints["token_embd_bytes"],
        tied_embeddings=bool(num("tied_embeddings", d.get("tied_embeddings"))),
        repack=repack,
        header_bytes=ints["header_bytes"],
    )


def _repack_rules() -> dict[str, int]:
    m = platform.machine().lower()
    if m in ("x86_64", "amd64"):
        return _REPACK_X86_AVX2  # llama-cpp-python's CPU wheels are built for AVX2
    if m in ("aarch64", "arm64"):
        return _REPACK_ARM
    return {}


# ---- the estimate ------------------------------------------------------------------------------------------


def _pad(n: int, to: int) -> int:
    return -(-n // to) * to


def compute_bytes_for(
    s: ModelShape, *, n_kv: int, n_kv_swa: int | None, n_tokens: int, n_outputs: int, flash_attn: bool
) -> tuple[int, int, int]:
    """(compute buffer bytes, logits bytes, bytes a CPU run touches) for the worst-case graph.

    ggml's allocator reuses freed tensors, so the buffer is the larger of two peaks (fitted to llama.cpp's
    own "compute buffer size" lines for llama and gemma3 graphs, tests/fit/test_estimate.py):
      output:    logits (n_vocab x n_outputs f32) + 2 x n_embd x n_tokens f32 (final norm and its input)
      attention: scores (n_head x n_kv x n_tokens f32, none with flash attention) + the KQ mask(s)
                 (n_kv x n_tokens; f16 with flash attention; one more for sliding-window layers)
                 + 2 x n_ff x n_tokens f32 (FFN activations of an earlier layer still placed below them;
                 with flash attention the FFN phase is the peak: + (2 x n_ff + 7 x n_embd) x n_tokens f32)
    A CPU run computes logits for the last token only, so it touches only the larger of the attention
    peak and one row of logits (+ the output activations).
    The same graph sizes llama.cpp's CUDA compute buffer (research/gpu-notes.md, b1 model: the estimate
    gives the measured 214.5 MiB saved by flash attention to within 1 MiB).
    """
    f32 = 4
    logits = s.n_vocab * n_outputs * f32
    out_peak = logits + 2 * s.n_embd * n_tokens * f32
    masks = [n_kv] + ([n_kv_swa] if n_kv_swa is not None else [])
    if flash_attn:
        attn = sum(m * n_tokens * 2 for m in masks)
        attn_peak = attn + (2 * s.n_ff + 7 * s.n_embd) * n_tokens * f32
    else:
        attn = s.n_head * n_kv * n_tokens * f32 + sum(m * n_tokens * f32 for m in masks)
        attn_peak = attn + 2 * s.n_ff * n_tokens * f32
    touched = max(attn_peak, s.n_vocab * f32 + 2 * s.n_embd * n_tokens * f32)
    return max(out_peak, attn_peak), logits, min(touched, max(out_peak, attn_peak))


def estimate(
    model: GGUFHeader | ModelShape | str | os.PathLike,
    *,
    n_ctx: int | None = None,
    n_ubatch: int = 512,
    n_batch: int = 512,
    flash_attn: bool = False,
    gpu: bool = False,
    kv_type_bytes: float = 2,
    swa_full: bool = True,
    device: str | None = None,
    cpu_repack: bool | None = None,
) -> MemoryEstimate:
    """Memory llama.cpp needs to run the model at `n_ctx` (None: the trained context, capped at
    DEFAULT_N_CTX). gpu=True: all layers offloaded to one GPU (`device`, default "CUDA0").
    kv_type_bytes: bytes per KV element (2 = f16, 34/32 = q8_0). cpu_repack (None: on CPU, by this
    machine's architecture) adds llama.cpp's CPU_REPACK weight copies. `model` may also be a ModelShape
    built from published facts (a catalog entry not yet downloaded)."""
    if cpu_repack is None:
        cpu_repack = not gpu
    if isinstance(model, ModelShape):
        s = model
    else:
        h = model if isinstance(model, GGUFHeader) else read_header(model)
        s = model_shape(h, repack_rules=None if cpu_repack else {})
    if n_ctx is None:
        n_ctx = min(s.n_ctx_train or DEFAULT_N_CTX, DEFAULT_N_CTX)
    if n_ctx <= 0 or n_ubatch <= 0 or n_batch <= 0:
        raise ValueError("n_ctx, n_ubatch and n_batch must be positive")
    n_ubatch = min(n_ubatch, n_batch)  # llama.cpp: n_ubatch <= n_batch
    notes: list[str] = []

    # KV cache
    cells = _pad(n_ctx, KV_PAD)
    has_swa = any(s.swa_layers)
    cells_swa = None
    if has_swa:
        cells_swa = cells if swa_full else min(cells, _pad(s.n_swa + n_ubatch, KV_PAD))
    kv = 0.0
    for il in range(s.n_layer):
        c = cells_swa if s.swa_layers[il] and cells_swa is not None else cells
        kv += s.n_head_kv[il] * (s.head_dim_k + s.head_dim_v) * c * kv_type_bytes
    kv_bytes = round(kv)
    if has_swa and swa_full and cells_swa is not None and _pad(s.n_swa + n_ubatch, KV_PAD) < cells:
        notes.append(
            f"{sum(s.swa_layers)} of {s.n_layer} layers use a {s.n_swa}-token sliding window; "
            f"swa_full=False would shrink their KV cache to {_pad(s.n_swa + n_ubatch, KV_PAD)} cells"
        )
    if s.n_layer and not any(s.n_head_kv):
        notes.append("no attention heads found: KV cache estimated as 0 (recurrent or unknown architecture)")

    # compute buffer
    n_tokens = min(n_ubatch, cells)
    compute, logits, touched = compute_bytes_for(
        s,
        n_kv=cells,
        n_kv_swa=cells_swa if has_swa else None,
        n_tokens=n_tokens,
        n_outputs=n_tokens,
        flash_attn=flash_attn,
    )
    untouched = compute - touched  # a CPU run computes logits for the last token only
    # weights and overhead
    repack = sum(s.repack.values()) if cpu_repack else 0
    runtime = {"runtime": CPU_BASELINE, "vocab": s.n_vocab * VOCAB_BYTES_PER_TOKEN, "gguf_header": s.header_bytes}
    if gpu:
        dev = device or "CUDA0"
        weights = s.tensor_bytes - (0 if s.tied_embeddings else s.token_embd_bytes)
        # host RAM: token_embd, the input embeddings it produces (CUDA_Host compute buffer) and the runtime
        host = s.token_embd_bytes + n_tokens * s.n_embd * 4 + sum(runtime.values())
        parts = {"cuda_context": CUDA_CONTEXT, "cuda_pool": GPU_POOL_HEADROOM}
        if not flash_attn and s.n_head * cells * n_tokens * 4 > logits:
            notes.append("flash_attn=True would drop the attention score matrix from the compute buffer")
    else:
        dev = device or "CPU"
        weights = s.tensor_bytes + repack
        host = 0
        parts = dict(runtime)
        parts["cpu_work"] = 0 if flash_attn else s.n_head * cells * n_tokens * 2
    overhead = sum(parts.values())
    total = weights + kv_bytes + compute + overhead
    if not gpu and untouched > ESTIMATE_ERROR * total:  # the part a CPU run never touches matters
        what = "big vocabulary" if s.n_vocab >= BIG_VOCAB else "logits-dominated compute buffer"
        notes.append(
            f"{what}: {fmt_mib(logits)} of the {fmt_mib(compute)} compute buffer holds logits "
            f"({s.n_vocab} tokens x {n_tokens}); on CPU most of the compute buffer is never touched, "
            f"so peak RSS will be lower (about {fmt_size(total - untouched)})"
        )
    if gpu and s.n_vocab >= BIG_VOCAB and 2 * logits >= compute:
        notes.append(
            f"big vocabulary ({s.n_vocab} tokens): {fmt_mib(logits)} of VRAM for logits; a smaller "
            f"n_batch/n_ubatch shrinks it"
        )

    per_device = {dev: total}
    if gpu:
        per_device["CPU"] = host

    return MemoryEstimate(
        n_ctx=n_ctx,
        n_ubatch=n_ubatch,
        n_batch=n_batch,
        flash_attn=flash_attn,
        gpu=gpu,
        device=dev,
        weights_bytes=weights,
        host_bytes=host,
        kv_bytes=kv_bytes,
        compute_bytes=compute,
        overhead_bytes=overhead,
        total_bytes=total,
        kv_cells=cells,
        kv_cells_swa=cells_swa,
        repack_bytes=repack,
        logits_bytes=logits,
        cpu_peak_bytes=None if gpu else total - untouched,
        per_device=per_device,
        notes=tuple(notes),
        overhead_parts=parts,
    )


def fmt_mib(n: float) -> str:
    return f"{n / MiB:.0f} MiB"


def fmt_size(n: float) -> str:
    return fmt_gib(n) if n >= GiB else fmt_mib(n)


# ---- the fit rule ------------------------------------------------------------------------------------------


def default_margin(free_bytes: int) -> int:
    """Bytes to keep free on a device: min(1 GiB, 15 % of its free memory).

    llama-server's --fit keeps 1 GiB per device; mesh-llm keeps 15 %. 1 GiB is right for real GPUs and
    desktops (drivers, the desktop, other processes growing), but on a small device it would refuse models
    that run fine (1 GiB of a 4 GiB Raspberry Pi), so small devices keep 15 % instead; the 15 % of a
    big device (12 GiB of an 80 GiB H100) would waste memory that is there. The estimate's own ±5 % error
    is covered separately (fits() adds ESTIMATE_ERROR of the need)."""
    return int(min(GiB, 0.15 * max(free_bytes, 0)))


def keep_free(free: int, margin: float | None = None) -> int:
    """Bytes the fit rule keeps free on a device with `free` bytes free (see fits() for `margin`)."""
    if margin is None:
        return default_margin(free)
    if isinstance(margin, float) and margin < 1:
        return int(margin * max(free, 0))
    return int(margin)


def room_for(need: int, free: int, margin: float | None = None) -> bool:
    """The fit rule for one device: need x (1 + ESTIMATE_ERROR) + the margin kept free <= free."""
    return need + math.ceil(need * ESTIMATE_ERROR) + keep_free(free, margin) <= free


def fits(est: MemoryEstimate, free_bytes: int | Mapping[str, int], *, margin: float | None = None) -> tuple[bool, str]:
    """Does the estimate fit into `free_bytes` (one number: the main device's free memory; or a dict
    device name -> free bytes, checked for every device in est.per_device that it names)?

    Rule: need x (1 + ESTIMATE_ERROR) + margin <= free, per device. margin: None = default_margin(free)
    (min(1 GiB, 15 % of free)); an int = bytes; a float < 1 = that fraction of free.
    Returns (ok, reason); a refusal reads "needs 9.8 GiB at ctx 4096; 7.6 GiB free on CUDA0"."""
    if isinstance(free_bytes, Mapping):
        checks = [(d, need, free_bytes[d]) for d, need in est.per_device.items() if d in free_bytes]
        if not checks:
            raise ValueError(f"no free memory given for {sorted(est.per_device)} (got {sorted(free_bytes)})")
    else:
        checks = [(est.device, est.total_bytes, int(free_bytes))]
    reasons = []
    ok = True
    for dev, need, free in checks:
        keep = keep_free(free, margin)
        if not room_for(need, free, margin):
            ok = False
            reasons.append(
                f"needs {fmt_size(need)} at ctx {est.n_ctx}; {fmt_size(free)} free on {dev} "
                f"(keeping {fmt_size(keep)} + {ESTIMATE_ERROR:.0%} spare)"
            )
        else:
            reasons.append(f"fits: needs {fmt_size(need)} at ctx {est.n_ctx}; {fmt_size(free)} free on {dev}")
    bad = [r for r in reasons if not r.startswith("fits")]
    return ok, "; ".join(bad) if bad else "; ".join(reasons)
