"""The GGUF reader on a real model file (Gemma-3-270M Q4_K_M from PyPI), against gguf.GGUFReader."""

from __future__ import annotations

import gguf
import pytest

from silnode.gguf import ArrayInfo, read_facts, read_header


@pytest.mark.timeout(180)
def test_gemma_facts_match_gguf_reader(gemma_gguf):
    facts = read_facts(gemma_gguf)
    assert facts.arch == "gemma3"
    assert facts.vocab_size == 262144
    assert facts.context_length == 32768
    assert facts.layers == 18
    assert facts.quant == "Q4_K_M"
    assert facts.has_chat_template is False  # a base model: no template (serving must pick a fallback)
    assert 268_000_000 < facts.params < 268_200_000  # 268.1M per the package notes
    assert facts.sliding_window == 512

    ours = read_header(gemma_gguf)
    ref = gguf.GGUFReader(gemma_gguf)
    assert ours.data_offset == ref.data_offset
    assert [t.name for t in ours.tensors] == [t.name for t in ref.tensors]
    for mine, theirs in zip(ours.tensors, ref.tensors):
        assert mine.shape == tuple(int(x) for x in theirs.shape)
        assert mine.ggml_type == int(theirs.tensor_type)
        assert mine.n_bytes == int(theirs.n_bytes)
        assert mine.offset + ours.data_offset == int(theirs.data_offset)
    ref_keys = {k for k in ref.fields if not k.startswith("GGUF.")}
    assert set(ours.metadata) == ref_keys
    for key in ref_keys:
        value = ours.metadata[key]
        if isinstance(value, ArrayInfo):
            assert value.length == len(ref.fields[key].data)
        elif isinstance(value, (int, float, str)) and not isinstance(value, list):
            assert value == ref.fields[key].contents(), key
