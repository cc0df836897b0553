"""silnode.gguf: our GGUF header reader, checked against gguf.GGUFReader and on corrupt input."""

from __future__ import annotations

import json
import os
import random
import struct
import sys
import tracemalloc
from pathlib import Path

import gguf
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ggufgen  # noqa: E402  (tests/ggufgen.py)
from ggufgen import pack_string, raw_gguf  # noqa: E402

from silnode.errors import InvalidGGUF  # noqa: E402
from silnode.gguf import (  # noqa: E402
    FILE_TYPE_NAMES,
    GGML_TYPES,
    SPLIT_RE,
    ArrayInfo,
    GGUFFacts,
    GGUFHeader,
    TensorInfo,
    facts_from_header,
    merge_split_facts,
    read_facts,
    read_header,
)

VT = gguf.GGUFValueType
QT = gguf.GGMLQuantizationType
pytestmark = pytest.mark.timeout(10)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("gguf")
    out = {}
    for dtype in ("f32", "f16", "q8_0"):
        out[dtype] = ggufgen.make_gguf(d / f"tiny-{dtype}.gguf", dtype=dtype)
    out["f16-notemplate"] = ggufgen.make_gguf(d / "tiny-f16-nt.gguf", dtype="f16", chat_template=False)
    out["small"] = ggufgen.make_gguf(d / "small-q8_0.gguf", dtype="q8_0", vocab_size=300)
    return out


@pytest.fixture(scope="module")
def big_vocab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ggufgen.make_big_vocab_gguf(tmp_path_factory.mktemp("big") / "big.gguf")


def write(tmp_path: Path, data: bytes, name: str = "x.gguf") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


def expect_invalid(path: Path, *words: str) -> InvalidGGUF:
    with pytest.raises(InvalidGGUF) as ei:
        read_header(path)
    prefix = f"{path}: "
    assert str(ei.value).startswith(prefix)
    msg = str(ei.value)[len(prefix) :]  # (the path may contain the test's name)
    for w in words:
        assert w.lower() in msg.lower(), f"{w!r} not in {msg!r}"
    return ei.value


# ---- agreement with gguf.GGUFReader ------------------------------------------------------------------------


def assert_same_as_reader(path: Path) -> GGUFHeader:
    r = gguf.GGUFReader(path)
    h = read_header(path)
    assert h.path == str(path)
    assert h.version == r.fields["GGUF.version"].contents()
    assert h.file_size == path.stat().st_size
    assert h.data_offset == r.data_offset
    assert h.alignment == r.alignment
    keys = [k for k in r.fields if not k.startswith("GGUF.")]
    assert list(h.metadata) == keys
    for k in keys:
        f, v = r.fields[k], h.metadata[k]
        if f.types[0] == VT.ARRAY:
            if isinstance(v, ArrayInfo):
                assert len(f.data) > 64
                assert v == ArrayInfo(int(f.types[-1]), len(f.data))
            else:
                assert v == f.contents()
        else:
            assert v == f.contents(), k
            assert type(v) is type(f.contents()), k
    assert len(h.tensors) == len(r.tensors)
    for t, rt in zip(h.tensors, r.tensors):
        assert t.name == rt.name
        assert t.shape == tuple(int(x) for x in rt.shape)
        assert t.ggml_type == int(rt.tensor_type)
        assert h.data_offset + t.offset == rt.data_offset
        assert t.n_elements == rt.n_elements
        assert t.n_bytes == rt.n_bytes
        assert t.type_name == rt.tensor_type.name
    return h


@pytest.mark.parametrize("kind", ["f32", "f16", "q8_0", "f16-notemplate", "small"])
def test_matches_gguf_reader(models: dict[str, Path], kind: str) -> None:
    assert_same_as_reader(models[kind])


@pytest.mark.parametrize("dtype, quant, file_type", [("f32", "F32", 0), ("f16", "F16", 1), ("q8_0", "Q8_0", 7)])
def test_facts(models: dict[str, Path], dtype: str, quant: str, file_type: int) -> None:
    path = models[dtype]
    r = gguf.GGUFReader(path)
    f = read_facts(path)
    assert f == facts_from_header(read_header(path))
    assert f.arch == "llama"
    assert f.name == f"gguf-test-tiny-{dtype}"
    assert f.params == sum(int(t.n_elements) for t in r.tensors) == 177216
    assert f.tensor_bytes == sum(int(t.n_bytes) for t in r.tensors)
    assert sum(f.tensor_types.values()) == f.tensor_bytes
    assert next(iter(f.tensor_types)) == quant  # the dominant type
    assert (f.quant, f.file_type) == (quant, file_type)
    assert f.vocab_size == len(r.fields["tokenizer.ggml.tokens"].data) == 614
    p = ggufgen.PRESETS["tiny"]
    assert (f.context_length, f.layers, f.heads, f.heads_kv) == (p["n_ctx"], p["n_layer"], p["n_head"], p["n_head_kv"])
    assert (f.embedding_length, f.feed_forward_length) == (p["n_embd"], p["n_ff"])
    assert (f.key_length, f.value_length, f.sliding_window) == (None, None, None)
    assert f.has_chat_template is True
    assert f.tokenizer_model == "llama"
    assert (f.split_no, f.split_count) == (None, None)
    d = f.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert set(d) == {x.name for x in GGUFFacts.__dataclass_fields__.values()}


def test_no_chat_template(models: dict[str, Path]) -> None:
    f = read_facts(models["f16-notemplate"])
    assert f.has_chat_template is False
    assert "tokenizer.chat_template" not in read_header(models["f16-notemplate"]).metadata


def test_vocab_size_option(models: dict[str, Path]) -> None:
    assert read_facts(models["small"]).vocab_size == 300


def test_generator_is_deterministic(tmp_path: Path, models: dict[str, Path]) -> None:
    again = ggufgen.make_gguf(tmp_path / "again.gguf", dtype="q8_0")
    assert again.read_bytes() == models["q8_0"].read_bytes()


def test_tables_match_gguf() -> None:
    assert {int(t): (t.name, *gguf.GGML_QUANT_SIZES[t]) for t in QT} == GGML_TYPES
    expected = {
        int(t): t.name.removeprefix("MOSTLY_").removeprefix("ALL_") for t in gguf.LlamaFileType if t.name != "GUESSED"
    }
    assert FILE_TYPE_NAMES == expected


def test_headers_are_frozen_and_hashable(models: dict[str, Path]) -> None:
    h = read_header(models["f32"])
    with pytest.raises(AttributeError):
        h.version = 2  # type: ignore[misc]
    assert isinstance(h.tensors[0], TensorInfo)
    hash(h), hash(read_facts(models["f32"]))


# ---- split files -------------------------------------------------------------------------------------------


def test_split_files(tmp_path: Path, models: dict[str, Path]) -> None:
    paths = ggufgen.make_split_gguf(tmp_path, "model", 3)
    assert [p.name for p in paths] == [f"model-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    parts = []
    for i, p in enumerate(paths):
        m = SPLIT_RE.match(p.name)
        assert m and (m["stem"], int(m["index"]), int(m["count"])) == ("model", i + 1, 3)
        h = assert_same_as_reader(p)
        assert (h.metadata["split.no"], h.metadata["split.count"], h.metadata["split.tensors.count"]) == (i, 3, 21)
        parts.append(facts_from_header(h))
        assert (parts[-1].split_no, parts[-1].split_count) == (i, 3)
    whole = read_facts(models["f32"])  # the same model, unsplit
    merged = merge_split_facts(list(reversed(parts)))  # order of the list does not matter
    assert merged.params == whole.params == sum(p.params for p in parts)
    assert merged.tensor_bytes == whole.tensor_bytes
    assert merged.tensor_types == whole.tensor_types
    assert merged.name == "gguf-test-tiny-f32-split"
    skip = {"name", "split_no", "split_count"}
    assert {k: v for k, v in merged.to_dict().items() if k not in skip} == {
        k: v for k, v in whole.to_dict().items() if k not in skip
    }
    assert (merged.split_no, merged.split_count) == (0, 3)
    assert parts[1].arch is None and parts[1].vocab_size is None  # metadata only in part 1

    with pytest.raises(InvalidGGUF, match="complete"):
        merge_split_facts(parts[:2])
    with pytest.raises(InvalidGGUF, match="complete"):
        merge_split_facts([parts[0], parts[1], parts[1]])
    with pytest.raises(InvalidGGUF, match="split.no"):
        merge_split_facts([whole, parts[0]])
    assert merge_split_facts([whole]) == whole
    with pytest.raises(ValueError):
        merge_split_facts([])


@pytest.mark.parametrize("n", [1, 2, 5])
def test_split_counts(tmp_path: Path, n: int) -> None:
    paths = ggufgen.make_split_gguf(tmp_path, "m", n)
    assert len(paths) == n
    facts = [read_facts(p) for p in paths]
    assert [f.split_no for f in facts] == list(range(n))
    assert merge_split_facts(facts).params == 177216


def test_split_re() -> None:
    m = SPLIT_RE.match("Qwen3-30B-A3B-Q4_K_M-00002-of-00017.gguf")
    assert m and m.group("stem", "index", "count") == ("Qwen3-30B-A3B-Q4_K_M", "00002", "00017")
    for name in ("model.gguf", "model-1-of-3.gguf", "model-00001-of-00003.bin", "-00001-of-00003.gguf"):
        assert not SPLIT_RE.match(name), name


# ---- metadata details --------------------------------------------------------------------------------------


def base_kvs() -> list:
    return [("general.architecture", VT.STRING, "llama"), ("general.name", VT.STRING, "raw")]


def test_arrays_and_per_layer_values(tmp_path: Path) -> None:
    heads = [32] * 40 + [0, 64] * 20  # 80 layers: longer than 64, still materialised
    kvs = base_kvs() + [
        ("llama.attention.head_count", VT.ARRAY, (VT.INT32, heads)),
        ("llama.attention.head_count_kv", VT.ARRAY, (VT.UINT32, [8, 0, 4])),
        ("llama.attention.sliding_window", VT.UINT32, 4096),
        ("llama.attention.key_length", VT.UINT32, 128),
        ("llama.block_count", VT.UINT64, 80),
        ("some.long_numbers", VT.ARRAY, (VT.FLOAT32, [0.5] * 100)),
        ("some.short_strings", VT.ARRAY, (VT.STRING, ["a", "b\u00e9", ""])),
        ("some.bools", VT.ARRAY, (VT.BOOL, [True, False])),
        ("tokenizer.ggml.tokens", VT.ARRAY, (VT.STRING, [f"t{i}" for i in range(65)])),
        ("some.f64", VT.FLOAT64, 1.25),
        ("some.i8", VT.INT8, -3),
        ("some.bool", VT.BOOL, True),
        ("some.bad_utf8_value", VT.STRING, b"ok\xff"),
    ]
    p = write(tmp_path, raw_gguf(kvs, [("w", (64, 2), QT.Q8_0), ("n", (3,), QT.F32)]))
    h = read_header(p)
    md = h.metadata
    assert md["llama.attention.head_count"] == heads
    assert md["some.long_numbers"] == ArrayInfo(int(VT.FLOAT32), 100)
    assert md["some.short_strings"] == ["a", "b\u00e9", ""]
    assert md["some.bools"] == [True, False]
    assert md["tokenizer.ggml.tokens"] == ArrayInfo(int(VT.STRING), 65)
    assert (md["some.f64"], md["some.i8"], md["some.bool"]) == (1.25, -3, True)
    assert md["some.bad_utf8_value"] == "ok\ufffd"  # values are tolerant, keys and tensor names are not
    f = facts_from_header(h)
    assert (f.heads, f.heads_kv, f.sliding_window, f.key_length, f.layers) == (64, 8, 4096, 128, 80)
    assert f.vocab_size == 65
    assert f.file_type is None and f.quant == "Q8_0"  # no general.file_type: dominant tensor type
    assert f.tensor_types == {"Q8_0": 136, "F32": 12}
    assert f.params == 131


def test_quant_from_file_type(tmp_path: Path) -> None:
    def facts(ft: int) -> GGUFFacts:
        kvs = base_kvs() + [("general.file_type", VT.UINT32, ft)]
        return read_facts(write(tmp_path, raw_gguf(kvs, [("w", (256,), QT.Q4_K)])))

    assert facts(15).quant == "Q4_K_M"
    assert facts(32).quant == "BF16"
    assert facts(1024).quant == "Q4_K"  # GUESSED / unknown: the dominant tensor type
    assert facts(1024).file_type == 1024


def test_version_2_and_alignment(tmp_path: Path) -> None:
    kvs = base_kvs() + [("general.alignment", VT.UINT32, 64)]
    data = raw_gguf(kvs, [("a", (3,), QT.F32), ("b", (5, 2), QT.F16)], version=2, alignment=64)
    p = write(tmp_path, data)
    h = assert_same_as_reader(p)
    assert (h.version, h.alignment, h.data_offset % 64) == (2, 64, 0)
    assert [t.offset for t in h.tensors] == [0, 64]


def test_no_tensors(tmp_path: Path) -> None:
    h = read_header(write(tmp_path, raw_gguf(base_kvs(), [])))  # vocab-only files have no tensors
    assert h.tensors == () and read_facts(h.path).params == 0 and read_facts(h.path).quant is None


def test_big_vocab(big_vocab: Path) -> None:
    h = read_header(big_vocab)
    assert h.metadata["tokenizer.ggml.tokens"] == ArrayInfo(int(VT.STRING), 262144)
    assert h.metadata["tokenizer.ggml.scores"] == ArrayInfo(int(VT.FLOAT32), 262144)
    assert h.metadata["tokenizer.chat_template"] == ggufgen.CHATML  # after the big arrays
    f = facts_from_header(h)
    assert f.vocab_size == 262144 and f.has_chat_template
    assert h.data_offset > 1 << 20  # bigger than the first read: the buffer had to grow


def test_big_vocab_corrupt(tmp_path: Path, big_vocab: Path) -> None:
    data = big_vocab.read_bytes()
    h = read_header(big_vocab)
    expect_invalid(write(tmp_path, data[: h.data_offset // 2]), "tokenizer.ggml.tokens", "truncated")
    # the length of token 1000 (found by walking the array) lies
    key = b"tokenizer.ggml.tokens"
    off = data.index(pack_string(key)) + 8 + len(key) + 4 + 12
    for _ in range(1000):
        off += 8 + struct.unpack_from("<Q", data, off)[0]
    for lie in (2**40, 2**64 - 1):
        expect_invalid(write(tmp_path, patch(data, off, "<Q", lie)), "string 1000", "length")


# ---- corrupt input -----------------------------------------------------------------------------------------


def kv_value_offset(r: gguf.GGUFReader, key: str) -> int:
    """Offset of the value (after the type) of `key`."""
    return r.fields[key].offset + 8 + len(key.encode()) + 4


def tensor_info_offset(r: gguf.GGUFReader, i: int) -> tuple[int, int]:
    """(offset of n_dims, n_dims) of tensor i."""
    t = r.tensors[i]
    return t.field.offset + 8 + len(t.name.encode()), len(t.shape)


def corrupt_cases(src: Path) -> list[tuple[str, bytes, tuple[str, ...]]]:
    data = src.read_bytes()
    r = gguf.GGUFReader(src)
    name_off = kv_value_offset(r, "general.name")
    tok_off = kv_value_offset(r, "tokenizer.ggml.tokens")
    scores_off = kv_value_offset(r, "tokenizer.ggml.scores")
    nd_off, nd = tensor_info_offset(r, 1)
    nd0_off, nd0 = tensor_info_offset(r, 0)
    assert nd0 == 2  # token_embd.weight
    type_off = nd_off + 4 + 8 * nd
    last = max(range(len(r.tensors)), key=lambda i: r.tensors[i].data_offset)
    last_nd_off, last_nd = tensor_info_offset(r, last)
    last_toff = last_nd_off + 4 + 8 * last_nd + 4
    t1 = r.tensors[1]
    t0 = r.tensors[0]
    a = VT.ARRAY
    return [
        ("magic", b"GGML" + data[4:], ("not a GGUF file", "magic")),
        ("text", b"hello world, not a model\n", ("not a GGUF file",)),
        ("too short", b"GG", ("not a GGUF file",)),
        ("version 99", patch(data, 4, "<I", 99), ("unsupported", "version 99")),
        ("version 1", patch(data, 4, "<I", 1), ("unsupported", "version 1")),
        ("big-endian", patch(data, 4, ">I", 3), ("big-endian",)),
        ("string length 2**62", patch(data, name_off, "<Q", 2**62), ("general.name", "length")),
        ("string length 2**64-1", patch(data, name_off, "<Q", 2**64 - 1), ("general.name", "length")),
        ("string array length 2**62", patch(data, tok_off + 4, "<Q", 2**62), ("tokenizer.ggml.tokens", "length")),
        ("float array length 2**62", patch(data, scores_off + 4, "<Q", 2**62), ("tokenizer.ggml.scores", "length")),
        ("array item type 99", patch(data, scores_off, "<I", 99), ("unknown item type",)),
        ("value type 99", patch(data, name_off - 4, "<I", 99), ("unknown value type 99",)),
        ("n_kv 2**60", patch(data, 16, "<Q", 2**60), ("n_kv",)),
        ("n_kv 2**64-1", patch(data, 16, "<Q", 2**64 - 1), ("n_kv",)),
        ("n_tensors 2**60", patch(data, 8, "<Q", 2**60), ("n_tensors",)),
        ("n_tensors huge", patch(data, 8, "<Q", len(data)), ("n_tensors",)),
        ("n_dims 200", patch(data, nd_off, "<I", 200), ("n_dims 200",)),
        ("n_dims 9", patch(data, nd_off, "<I", 9), ("n_dims 9",)),
        ("zero dimension", patch(data, nd_off + 4, "<Q", 0), ("dimension 0 is 0",)),
        ("overflowing dims", patch(patch(data, nd0_off + 4, "<Q", 2**40), nd0_off + 12, "<Q", 2**40), ("overflows",)),
        ("unknown ggml type", patch(data, type_off, "<I", 99), ("ggml type 99",)),
        ("tensor offset beyond file", patch(data, last_toff, "<Q", len(data) // 32 * 32 + 64), ("beyond",)),
        ("tensor offset 2**63", patch(data, last_toff, "<Q", 2**63), ("beyond",)),
        ("misaligned offset", patch(data, type_off + 4, "<Q", t1.data_offset - r.data_offset + 4), ("aligned",)),
        ("overlapping tensors", patch(data, type_off + 4, "<Q", t0.data_offset - r.data_offset), ("overlaps",)),
        ("truncated data", data[: r.tensors[last].data_offset + 10], ("truncated",)),
        ("tensor name length 2**62", patch(data, t1.field.offset, "<Q", 2**62), ("tensor 1", "length")),
        # hand-built ones
        (
            "alignment 3",
            raw_gguf(base_kvs() + [("general.alignment", VT.UINT32, 3)], [("w", (4,), QT.F32)]),
            ("alignment 3", "power of two"),
        ),
        ("alignment 0", raw_gguf(base_kvs() + [("general.alignment", VT.UINT32, 0)], []), ("power of two",)),
        ("alignment uint64", raw_gguf(base_kvs() + [("general.alignment", VT.UINT64, 32)], []), ("UINT32",)),
        (
            "duplicate tensor",
            raw_gguf(base_kvs(), [("w", (4,), QT.F32), ("w", (4,), QT.F32)]),
            ("duplicate tensor name 'w'",),
        ),
        (
            "duplicate key",
            raw_gguf(base_kvs() + [("general.name", VT.STRING, "again")], []),
            ("duplicate key 'general.name'",),
        ),
        ("invalid utf-8 key", raw_gguf(base_kvs() + [(b"bad\xff\xfekey", VT.UINT8, 1)], []), ("key 2", "UTF-8")),
        ("invalid utf-8 tensor name", raw_gguf(base_kvs(), [(b"w\xc3", (4,), QT.F32)]), ("tensor 0", "UTF-8")),
        ("nested array", raw_gguf(base_kvs() + [("x", a, (a, []))], []), ("nested",)),
        ("block size", raw_gguf(base_kvs(), [("w", (48, 2), QT.Q8_0)]), ("block size 32",)),
        ("no data at all", raw_gguf(base_kvs(), [("w", (4,), QT.F32)], data=False), ("beyond",)),
    ]


@pytest.fixture(scope="module")
def corrupt(models: dict[str, Path]) -> dict[str, tuple[bytes, tuple[str, ...]]]:
    return {name: (data, words) for name, data, words in corrupt_cases(models["small"])}


CORRUPT_CASES = [
    "magic",
    "text",
    "too short",
    "version 99",
    "version 1",
    "big-endian",
    "string length 2**62",
    "string length 2**64-1",
    "string array length 2**62",
    "float array length 2**62",
    "array item type 99",
    "value type 99",
    "n_kv 2**60",
    "n_kv 2**64-1",
    "n_tensors 2**60",
    "n_tensors huge",
    "n_dims 200",
    "n_dims 9",
    "zero dimension",
    "overflowing dims",
    "unknown ggml type",
    "tensor offset beyond file",
    "tensor offset 2**63",
    "misaligned offset",
    "overlapping tensors",
    "truncated data",
    "tensor name length 2**62",
    "alignment 3",
    "alignment 0",
    "alignment uint64",
    "duplicate tensor",
    "duplicate key",
    "invalid utf-8 key",
    "invalid utf-8 tensor name",
    "nested array",
    "block size",
    "no data at all",
]


@pytest.mark.parametrize("case", CORRUPT_CASES)
def test_corrupt(tmp_path: Path, corrupt: dict, case: str) -> None:
    data, words = corrupt[case]
    p = write(tmp_path, data)
    tracemalloc.start()
    try:
        expect_invalid(p, *words)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 << 20


def test_corrupt_cases_all_listed(corrupt: dict) -> None:
    assert sorted(CORRUPT_CASES) == sorted(corrupt)


def test_empty_file_directory_fifo_missing(tmp_path: Path) -> None:
    expect_invalid(write(tmp_path, b""), "empty")
    d = tmp_path / "dir.gguf"
    d.mkdir()
    expect_invalid(d, "directory")
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo.gguf"
        os.mkfifo(fifo)
        expect_invalid(fifo, "regular file")  # and no hang waiting for a writer
    with pytest.raises(FileNotFoundError):
        read_header(tmp_path / "missing.gguf")


def test_lying_length_in_huge_sparse_file(tmp_path: Path) -> None:
    """A string length that fits in a (sparse) 1 GiB file is refused before anything is read for it."""
    p = tmp_path / "sparse.gguf"
    head = raw_gguf(base_kvs(), [], data=False)
    off = head.index(pack_string("raw"))
    with open(p, "wb") as f:
        f.write(patch(head, off, "<Q", 600 << 20))
        f.truncate(1 << 30)
    tracemalloc.start()
    try:
        expect_invalid(p, "header too large", "general.name")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 << 20


def test_count_limits(tmp_path: Path) -> None:
    head = raw_gguf(base_kvs(), [], data=False)
    padding = bytes(13 * 100_000)  # room for 100k tiny key/values, but that many is not a real header
    expect_invalid(write(tmp_path, patch(head, 16, "<Q", 100_000) + padding), "n_kv 100000", "limit")
    padding = bytes(24 * 300_000)
    expect_invalid(write(tmp_path, patch(head, 8, "<Q", 300_000) + padding), "n_tensors 300000", "limit")


def test_truncated_everywhere(tmp_path: Path, models: dict[str, Path]) -> None:
    src = models["small"]
    data = src.read_bytes()
    h = read_header(src)
    data_end = h.data_offset + max(t.offset + t.n_bytes for t in h.tensors)
    cuts = set(range(400)) | set(range(0, h.data_offset, 37)) | set(range(h.data_offset - 300, h.data_offset + 8))
    cuts |= set(range(h.data_offset, data_end, 997)) | {data_end - 1}
    tensor_infos = h.data_offset - 21 * 60
    cuts |= set(range(tensor_infos, h.data_offset))
    p = tmp_path / "cut.gguf"
    for n in sorted(cuts):
        p.write_bytes(data[:n])
        with pytest.raises(InvalidGGUF) as ei:
            read_header(p)
        msg = str(ei.value).removeprefix(f"{p}: ")  # (the path holds the test's name)
        if n == 0:
            assert "empty" in msg
        elif n < 4:
            assert "not a GGUF file" in msg
        else:
            assert "truncated" in msg, (n, msg)
    p.write_bytes(data[:data_end])  # the data of the last tensor ends here: still valid
    assert read_header(p).tensors == h.tensors


def test_random_byte_flips(tmp_path: Path, models: dict[str, Path]) -> None:
    """~300 variants with 1-3 bytes flipped in the header: each parses or raises InvalidGGUF."""
    src = models["small"]
    data = src.read_bytes()
    h = read_header(src)
    r = gguf.GGUFReader(src)
    infos = r.tensors[0].field.offset
    rng = random.Random(1234)
    regions = [(0, h.data_offset), (0, 700), (infos, h.data_offset)]
    p = tmp_path / "flip.gguf"
    outcomes = {"ok": 0, "invalid": 0}
    for i in range(300):
        lo, hi = regions[i % 3]
        b = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(lo, hi)] ^= rng.randint(1, 255)
        p.write_bytes(b)
        try:
            read_header(p)
            outcomes["ok"] += 1
        except InvalidGGUF:
            outcomes["invalid"] += 1
    assert outcomes["invalid"] > 50 and outcomes["ok"] > 10, outcomes
