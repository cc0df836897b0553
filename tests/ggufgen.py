"""Deterministic generators of small, valid llama-architecture GGUF files for tests and benchmarks.

    make_gguf(path, preset="tiny", dtype="f32", seed=0, chat_template=True, vocab_size=None) -> Path
        (chat_template: True = ChatML, False = none, or a template string, e.g. HERMES_TOOLS)
    make_split_gguf(dir, stem, n_splits, ...) -> [dir/stem-00001-of-0000N.gguf, ...]
    make_big_vocab_gguf(path, n_vocab=262144) -> Path       (big token list, tiny tensors: header benchmarks)
    raw_gguf(kvs, tensors, ...) -> bytes                      (hand-built GGUF bytes, for corrupt-input tests)

Adapted from the verified recipe in shared/research/gguf-llama-notes.md §1: a SentencePiece ("llama")
vocabulary with 256 byte-fallback tokens and a ChatML template; models from `make_gguf` load in
llama.cpp and produce (gibberish) text. The same arguments always give byte-identical files.
Needs `gguf` and numpy (test/bench dependencies only; silnode itself reads GGUF with the stdlib).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import gguf
import numpy as np

PRESETS = {  # n_vocab is a *minimum*: real words + byte tokens come first, then padding
    "tiny": {"n_vocab": 512, "n_embd": 64, "n_layer": 2, "n_head": 4, "n_head_kv": 2, "n_ff": 192, "n_ctx": 2048},
    "large": {
        "n_vocab": 32000,
        "n_embd": 1024,
        "n_layer": 12,
        "n_head": 16,
        "n_head_kv": 4,
        "n_ff": 2816,
        "n_ctx": 4096,
    },
}
WORDS = (
    "the a an and of to in is it you that he was for on are with as I his they be at one have "
    "this from or had by hot word but what some we can out other were all there when up use your "
    "how said each she which do their time if will way about many then them write would like so "
    "these her long make thing see him two has look more day could go come did number sound no most "
    "people my over know water than call first who may down side been now find hello world model "
    "llama token test answer question user assistant system"
).split()
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Qwen 2.5's template (Hermes-style tools): it renders `tools` into the system turn, assistant tool_calls as
# <tool_call> blocks and role "tool" turns as <tool_response> blocks; the worker's tool path "template"
HERMES_TOOLS = "".join(
    (
        r"{%- if tools %}{{- '<|im_start|>system\n' }}{%- if messages[0]['role'] == 'system' %}",
        r"{{- messages[0]['content'] }}{%- else %}{{- 'You are a helpful assistant.' }}{%- endif %}",
        r'{{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n',
        r'You are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}',
        r'{%- for tool in tools %}{{- "\n" }}{{- tool | tojson }}{%- endfor %}',
        r'{{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments ',
        r"within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": ",
        r'<args-json-object>}\n</tool_call><|im_end|>\n" }}',
        r"{%- else %}{%- if messages[0]['role'] == 'system' %}",
        r"{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}{%- endif %}{%- endif %}",
        r"{%- for message in messages %}",
        r'{%- if (message.role == "user") or (message.role == "system" and not loop.first) or ',
        r'(message.role == "assistant" and not message.tool_calls) %}',
        r"{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}",
        r"{%- elif message.role == 'assistant' %}{{- '<|im_start|>' + message.role }}",
        r"{%- if message.content %}{{- '\n' + message.content }}{%- endif %}",
        r"{%- for tool_call in message.tool_calls %}",
        r"{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}",
        r"""{{- '\n<tool_call>\n{"name": "' }}{{- tool_call.name }}{{- '", "arguments": ' }}""",
        r"{{- tool_call.arguments | tojson }}{{- '}\n</tool_call>' }}{%- endfor %}{{- '<|im_end|>\n' }}",
        r"{%- elif message.role == 'tool' %}",
        r"{%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != 'tool') %}{{- '<|im_start|>user' }}",
        r"{%- endif %}{{- '\n<tool_response>\n' }}{{- message.content }}{{- '\n</tool_response>' }}",
        r"{%- if loop.last or (messages[loop.index0 + 1].role != 'tool') %}{{- '<|im_end|>\n' }}{%- endif %}",
        r"{%- endif %}{%- endfor %}",
        r"{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}",
    )
)
TT = gguf.TokenType
FILE_TYPES = {
    "f32": gguf.LlamaFileType.ALL_F32,
    "f16": gguf.LlamaFileType.MOSTLY_F16,
    "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
}
N_SPECIAL = 3 + 256 + 2  # <unk> <s> </s>, byte tokens, <|im_start|> <|im_end|>


def build_vocab(n_min: int, rng: np.random.Generator) -> list[tuple[str, float, int]]:
    toks = [("<unk>", 0.0, TT.UNKNOWN), ("<s>", 0.0, TT.CONTROL), ("</s>", 0.0, TT.CONTROL)]
    toks += [(f"<0x{b:02X}>", 0.0, TT.BYTE) for b in range(256)]  # byte fallback (also gives '\n' = <0x0A>)
    toks += [("<|im_start|>", 0.0, TT.CONTROL), ("<|im_end|>", 0.0, TT.CONTROL)]
    seen = {t[0] for t in toks}

    def add(piece: str) -> None:
        if piece not in seen:
            seen.add(piece)
            toks.append((piece, -float(len(toks)), TT.NORMAL))  # SPM: higher score = merged first

    for p in ["\u2581"] + [chr(c) for c in range(33, 127)]:  # '▁' (= space) + printable ASCII
        add(p)
    for w in WORDS:  # every prefix, so SPM merges reach the word
        for i in range(1, len(w) + 1):
            add("\u2581" + w[:i])
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    while len(toks) < n_min:  # pad with random pseudo-words
        add("\u2581" + "".join(rng.choice(letters, rng.integers(2, 9))))
    return toks


def _add_model_kvs(w: gguf.GGUFWriter, p: dict, n_vocab: int, name: str, dtype: str) -> None:
    E, H = p["n_embd"], p["n_head"]
    w.add_name(name)
    w.add_file_type(FILE_TYPES[dtype])
    w.add_vocab_size(n_vocab)
    w.add_context_length(p["n_ctx"])
    w.add_embedding_length(E)
    w.add_block_count(p["n_layer"])
    w.add_feed_forward_length(p["n_ff"])
    w.add_head_count(H)
    w.add_head_count_kv(p["n_head_kv"])
    w.add_rope_dimension_count(E // H)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)


def _add_tokenizer_kvs(w: gguf.GGUFWriter, vocab: Sequence[tuple[str, float, int]], chat_template: bool | str) -> None:
    w.add_tokenizer_model("llama")  # SentencePiece-style
    w.add_token_list([t[0] for t in vocab])
    w.add_token_scores([t[1] for t in vocab])
    w.add_token_types([int(t[2]) for t in vocab])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    if chat_template:
        w.add_chat_template(CHATML if chat_template is True else chat_template)


def _model_tensors(
    p: dict, vocab: Sequence[tuple[str, float, int]], dtype: str, rng: np.random.Generator
) -> list[tuple[str, np.ndarray, Any]]:
    """(name, array, raw_dtype) for a llama model, in the order (and rng order) of the recipe."""
    n_vocab, E, H, HKV = len(vocab), p["n_embd"], p["n_head"], p["n_head_kv"]
    hd = E // H
    out: list[tuple[str, np.ndarray, Any]] = []

    def mat(name: str, rows: int, cols: int, std: float = 0.02, zero_rows: Any = None) -> None:
        x = rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(std)  # numpy shape = (out, in)
        if zero_rows is not None:
            x[zero_rows] = 0.0
        if dtype == "f16":
            out.append((name, x.astype(np.float16), None))
        elif dtype == "q8_0":
            q8 = gguf.GGMLQuantizationType.Q8_0
            out.append((name, gguf.quants.quantize(x, q8), q8))
        else:
            out.append((name, x, None))

    def norm(name: str) -> None:  # 1-D tensors must stay F32
        out.append((name, np.ones(E, dtype=np.float32), None))

    mat("token_embd.weight", n_vocab, E, 1.0)
    for i in range(p["n_layer"]):
        norm(f"blk.{i}.attn_norm.weight")
        mat(f"blk.{i}.attn_q.weight", H * hd, E)
        mat(f"blk.{i}.attn_k.weight", HKV * hd, E)
        mat(f"blk.{i}.attn_v.weight", HKV * hd, E)
        mat(f"blk.{i}.attn_output.weight", E, H * hd)
        norm(f"blk.{i}.ffn_norm.weight")
        mat(f"blk.{i}.ffn_gate.weight", p["n_ff"], E)
        mat(f"blk.{i}.ffn_up.weight", p["n_ff"], E)
        mat(f"blk.{i}.ffn_down.weight", E, p["n_ff"])
    norm("output_norm.weight")
    # byte/control tokens (incl. EOS) get logit 0 so they are (almost) never sampled
    special = np.array([t[2] != TT.NORMAL for t in vocab])
    mat("output.weight", n_vocab, E, 4.0 / np.sqrt(E), zero_rows=special)
    return out


def _vocab(preset: str, seed: int, vocab_size: int | None) -> tuple[dict, np.random.Generator, list]:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (choose from {sorted(PRESETS)})")
    p = PRESETS[preset]
    rng = np.random.default_rng(seed)
    if vocab_size is not None and vocab_size < N_SPECIAL:
        raise ValueError(f"vocab_size must be at least {N_SPECIAL} (special + byte tokens)")
    vocab = build_vocab(vocab_size or p["n_vocab"], rng)
    if vocab_size is not None:
        vocab = vocab[:vocab_size]  # exact size: drop the last word prefixes if asked for fewer
    return p, rng, vocab


def make_gguf(
    path: str | os.PathLike,
    *,
    preset: str = "tiny",
    dtype: str = "f32",
    seed: int = 0,
    chat_template: bool | str = True,
    vocab_size: int | None = None,
) -> Path:
    """Write a deterministic llama GGUF with random weights to `path`; return the path.

    preset "tiny" (default; ~0.7 MB f32, vocab 614, 2 layers) or "large" (~200M params, seconds to write);
    dtype "f32", "f16" or "q8_0"; `vocab_size` makes the vocabulary exactly that many tokens."""
    if dtype not in FILE_TYPES:
        raise ValueError(f"unknown dtype {dtype!r} (choose from {sorted(FILE_TYPES)})")
    path = Path(path)
    p, rng, vocab = _vocab(preset, seed, vocab_size)
    w = gguf.GGUFWriter(str(path), "llama")
    _add_model_kvs(w, p, len(vocab), f"gguf-test-{preset}-{dtype}", dtype)
    _add_tokenizer_kvs(w, vocab, chat_template)
    for name, arr, raw in _model_tensors(p, vocab, dtype, rng):
        w.add_tensor(name, arr, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def make_split_gguf(
    dir: str | os.PathLike,
    stem: str,
    n_splits: int,
    *,
    preset: str = "tiny",
    dtype: str = "f32",
    seed: int = 0,
    chat_template: bool = True,
) -> list[Path]:
    """Write one model split over `n_splits` files dir/stem-0000i-of-0000N.gguf, as llama.cpp's gguf-split does.

    Every part has split.no (0-based), split.count and split.tensors.count; the model and tokenizer
    metadata live in part 1; tensors are spread evenly (each part gets at least one)."""
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    p, rng, vocab = _vocab(preset, seed, None)
    tensors = _model_tensors(p, vocab, dtype, rng)
    if not 1 <= n_splits <= len(tensors):
        raise ValueError(f"n_splits must be between 1 and {len(tensors)} (tensors in the model)")
    w = gguf.GGUFWriter(str(dir / f"{stem}.gguf"), "llama")
    _add_model_kvs(w, p, len(vocab), f"gguf-test-{preset}-{dtype}-split", dtype)
    _add_tokenizer_kvs(w, vocab, chat_template)
    bounds = [round(i * len(tensors) / n_splits) for i in range(n_splits + 1)]
    for part in range(n_splits):
        if part > 0:
            w.tensors.append({})  # start the next shard (what split_max_tensors does, but exactly n parts)
        for name, arr, raw in tensors[bounds[part] : bounds[part + 1]]:
            w.add_tensor(name, arr, raw_dtype=raw)
    if n_splits == 1:  # GGUFWriter only writes split keys and shard names for 2+ shards
        w.add_uint16(gguf.Keys.Split.LLM_KV_SPLIT_NO, 0)
        w.add_uint16(gguf.Keys.Split.LLM_KV_SPLIT_COUNT, 1)
        w.add_int32(gguf.Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT, len(tensors))
        w.path = dir / f"{stem}-00001-of-00001.gguf"
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    paths = [dir / f"{stem}-{i + 1:05d}-of-{n_splits:05d}.gguf" for i in range(n_splits)]
    missing = [str(x) for x in paths if not x.is_file()]
    if missing:
        raise RuntimeError(f"gguf.GGUFWriter did not write {missing}")
    return paths


def make_big_vocab_gguf(path: str | os.PathLike, n_vocab: int = 262144, *, seed: int = 0) -> Path:
    """A llama GGUF whose header holds an `n_vocab`-token SPM vocabulary (tokens, scores, types), like
    Gemma 3's 262k; the tensors are tiny placeholders, so the file is about the size of its header
    (~6 MB for 262k). Written with struct directly (GGUFWriter packs a big vocabulary slowly)."""
    if n_vocab < N_SPECIAL:
        raise ValueError(f"n_vocab must be at least {N_SPECIAL}")
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
    n_words = n_vocab - N_SPECIAL
    lens = rng.integers(1, 9, n_words)
    chars = letters[rng.integers(0, 26, int(lens.sum()))].tobytes()
    tokens = [b"<unk>", b"<s>", b"</s>"] + [f"<0x{b:02X}>".encode() for b in range(256)]
    tokens += [b"<|im_start|>", b"<|im_end|>"]
    pos = 0
    for i, n in enumerate(lens.tolist()):  # unique: a random stem plus the index in base 36
        tokens.append("\u2581".encode() + chars[pos : pos + n] + np.base_repr(i, 36).lower().encode())
        pos += n
    types = [int(TT.UNKNOWN), int(TT.CONTROL), int(TT.CONTROL)] + [int(TT.BYTE)] * 256
    types += [int(TT.CONTROL)] * 2 + [int(TT.NORMAL)] * n_words
    scores = [0.0] * N_SPECIAL + [-float(i) for i in range(N_SPECIAL, n_vocab)]
    S, A = gguf.GGUFValueType.STRING, gguf.GGUFValueType.ARRAY
    U32, F32 = gguf.GGUFValueType.UINT32, gguf.GGUFValueType.FLOAT32
    kvs = [
        ("general.architecture", S, "llama"),
        ("general.name", S, f"big-vocab-{n_vocab}"),
        ("general.file_type", U32, int(gguf.LlamaFileType.ALL_F32)),
        ("llama.vocab_size", U32, n_vocab),
        ("llama.context_length", U32, 8192),
        ("llama.embedding_length", U32, 32),
        ("llama.block_count", U32, 1),
        ("llama.feed_forward_length", U32, 64),
        ("llama.attention.head_count", U32, 4),
        ("llama.attention.head_count_kv", U32, 1),
        ("tokenizer.ggml.model", S, "llama"),
        ("tokenizer.ggml.tokens", A, (S, tokens)),
        ("tokenizer.ggml.scores", A, (F32, scores)),
        ("tokenizer.ggml.token_type", A, (gguf.GGUFValueType.INT32, types)),
        ("tokenizer.ggml.bos_token_id", U32, 1),
        ("tokenizer.ggml.eos_token_id", U32, 2),
        ("tokenizer.chat_template", S, CHATML),
    ]
    tensors = [
        ("token_embd.weight", (32, 8), gguf.GGMLQuantizationType.F32),
        ("output_norm.weight", (32,), gguf.GGMLQuantizationType.F32),
    ]
    path = Path(path)
    path.write_bytes(raw_gguf(kvs, tensors))
    return path


# ---- hand-built GGUF bytes ------------------------------------------------------------------------------

_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def pack_string(s: str | bytes) -> bytes:
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return struct.pack("<Q", len(b)) + b


def pack_value(vtype: int, value: Any) -> bytes:
    """The bytes of one value (without its type). ARRAY values are (item_type, items)."""
    vtype = int(vtype)
    if vtype == 8:
        return pack_string(value)
    if vtype == 9:
        item_type, items = value
        item_type = int(item_type)
        head = struct.pack("<IQ", item_type, len(items))
        if item_type in _SCALAR:
            return head + struct.pack(f"<{len(items)}{_SCALAR[item_type]}", *items)
        return head + b"".join(pack_value(item_type, x) for x in items)
    return struct.pack("<" + _SCALAR[vtype], value)


def pack_kv(key: str | bytes, vtype: int, value: Any) -> bytes:
    return pack_string(key) + struct.pack("<I", int(vtype)) + pack_value(vtype, value)


def tensor_nbytes(dims: Sequence[int], ggml_type: int) -> int:
    block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(int(ggml_type))]
    n = 1
    for d in dims:
        n *= d
    return n // block * size


def raw_gguf(
    kvs: Iterable[tuple[str | bytes, int, Any]],
    tensors: Iterable[tuple],
    *,
    version: int = 3,
    alignment: int = 32,
    magic: bytes = b"GGUF",
    n_kv: int | None = None,
    n_tensors: int | None = None,
    data: bool = True,
) -> bytes:
    """GGUF bytes from parts. `tensors` are (name, dims in GGUF order (ne0 first), ggml_type[, offset]);
    offsets default to aligned and back to back. n_kv / n_tensors override the counts (to make liars);
    `alignment` is only the layout used here (add a general.alignment KV yourself to declare another);
    data=False stops after the tensor infos (no padding, no data)."""
    kvs, tensors = list(kvs), list(tensors)
    out = bytearray(
        magic
        + struct.pack(
            "<IQQ", version, len(tensors) if n_tensors is None else n_tensors, len(kvs) if n_kv is None else n_kv
        )
    )
    for key, vtype, value in kvs:
        out += pack_kv(key, vtype, value)
    offset, end = 0, 0
    for t in tensors:
        name, dims, ggml_type = t[0], t[1], int(t[2])
        nbytes = tensor_nbytes(dims, ggml_type) if ggml_type in gguf.GGML_QUANT_SIZES else 0
        off = t[3] if len(t) > 3 else offset
        out += pack_string(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        out += struct.pack("<IQ", ggml_type, off)
        offset = -(-(off + nbytes) // alignment) * alignment
        end = max(end, off + nbytes)
    if data and tensors:
        out += bytes(-len(out) % alignment)
        out += bytes(end)
    return bytes(out)


def make_sized_gguf(path: Path, size: int, seed: int = 0) -> Path:
    """A valid GGUF of ``size`` bytes: one big F32 tensor of pseudo-random bytes (fast to write)."""
    import random

    n = size // 4
    head = raw_gguf([("general.architecture", 8, "llama")], [("blob.weight", [n], 0)], data=False)
    rng = random.Random(seed)
    block = rng.randbytes(1 << 20)
    with open(path, "wb") as fh:
        fh.write(head + bytes(-len(head) % 32))
        left, i = n * 4, 0
        while left:
            chunk = block[: min(left, len(block))]
            # vary every MiB so pieces differ (identical pieces would hide ordering bugs)
            chunk = i.to_bytes(8, "little") + chunk[8:]
            fh.write(chunk)
            left -= len(chunk)
            i += 1
    return path
