"""The generation request's wire form stays backward compatible as OpenAI fields join it (the DVM reads it)."""

from __future__ import annotations

import pytest

from silnode.errors import InvalidGenerationRequest
from silnode.serving.request import EmbeddingRequest, GenerationRequest


def test_an_old_line_reads_and_new_fields_round_trip():
    old = {"kind": "completion", "prompt": "hi", "max_tokens": 4, "temperature": 0.5, "stop": ["\n"]}
    req = GenerationRequest.from_wire(old)
    assert req.response_format is None and req.logit_bias is None and req.logprobs is False
    assert "logprobs" not in req.to_wire() and "response_format" not in req.to_wire()
    new = GenerationRequest.chat(
        [{"role": "user", "content": "x"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "a", "schema": {"type": "object"}, "strict": True},
        },
        logit_bias={"5": -100, 7: 2.5},
        top_logprobs=3,
    )
    wire = new.to_wire()
    assert wire["logit_bias"] == {"5": -100.0, "7": 2.5} and wire["logprobs"] is True
    assert wire["response_format"] == {"type": "json_schema", "schema": {"type": "object"}, "strict": True}
    assert GenerationRequest.from_wire(wire) == new
    assert GenerationRequest.completion("x", response_format={"type": "text"}).response_format is None


@pytest.mark.parametrize(
    "field,value,param",
    [
        ("response_format", {"type": "yaml"}, "response_format"),
        (
            "response_format",
            {"type": "json_schema", "json_schema": {"name": "a"}},
            "response_format.json_schema.schema",
        ),
        ("logit_bias", {"-1": 1}, "logit_bias"),
        ("logit_bias", {"3": float("nan")}, "logit_bias"),
        ("top_logprobs", 21, "top_logprobs"),
    ],
)
def test_bad_new_fields_name_themselves(field, value, param):
    with pytest.raises(InvalidGenerationRequest) as e:
        GenerationRequest.completion("x", **{field: value})
    assert e.value.details["param"] == param


def test_embedding_request():
    assert EmbeddingRequest.from_wire({"input": "a"}).input == ("a",)
    assert EmbeddingRequest(("a", "b")).to_wire() == {"op": "embed", "input": ["a", "b"]}
    for bad in (None, [], [""], [1]):
        with pytest.raises(InvalidGenerationRequest):
            EmbeddingRequest.from_wire({"input": bad})
