"""The neutral generation request: defaults, checks that name the field, the worker wire format."""

from __future__ import annotations

import pytest

from silnode.errors import BadRequest, InvalidGenerationRequest
from silnode.serving.request import MAX_STOP, GenerationRequest


def test_defaults_are_llama_servers_and_optional_samplers_stay_unset():
    r = GenerationRequest.completion("Once")
    assert (r.temperature, r.top_p, r.top_k, r.max_tokens, r.stream) == (0.8, 0.95, 40, None, True)
    args = r.sampling()
    assert "min_p" not in args and "repeat_penalty" not in args  # llama.cpp's own defaults apply
    assert args["max_tokens"] is None and args["stop"] == []


@pytest.mark.parametrize(
    "kw,param",
    [
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"top_k": 1.5}, "top_k"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"min_p": float("nan")}, "min_p"),
        ({"presence_penalty": 3}, "presence_penalty"),
        ({"stop": [""]}, "stop"),
        ({"stop": ["x"] * (MAX_STOP + 1)}, "stop"),
        ({"stream": "yes"}, "stream"),
    ],
)
def test_a_bad_field_is_a_400_naming_it(kw, param):
    with pytest.raises(InvalidGenerationRequest) as err:
        GenerationRequest.completion("x", **kw)
    assert err.value.details["param"] == param and f"'{param}'" in str(err.value)
    assert isinstance(err.value, BadRequest) and err.value.status == 400 and err.value.code == "invalid_request"


def test_chat_messages_are_checked():
    for msgs, what in (
        ([], "non-empty"),
        ([{"role": "wizard", "content": "x"}], "role"),
        ([{"role": "user", "content": 3}], "content"),
    ):
        with pytest.raises(InvalidGenerationRequest, match=what):
            GenerationRequest.chat(msgs)
    with pytest.raises(InvalidGenerationRequest, match="'prompt'"):
        GenerationRequest(kind="completion")
    with pytest.raises(InvalidGenerationRequest, match="'kind'"):
        GenerationRequest(kind="embedding", prompt="x")  # type: ignore[arg-type]


def test_seed_is_reduced_to_uint32_and_stop_to_a_tuple():
    r = GenerationRequest.completion("x", seed=2**40 + 7, stop="\n")
    assert r.seed == 7 and r.stop == ("\n",)


def test_the_wire_round_trip_is_exact():
    r = GenerationRequest.chat(
        [{"role": "user", "content": "Hi"}], max_tokens=5, seed=1, stop=["."], min_p=0.1, stream=False
    )
    wire = r.to_wire()
    assert wire["messages"] == [{"role": "user", "content": "Hi"}] and "prompt" not in wire
    assert GenerationRequest.from_wire({**wire, "op": "generate", "id": "abc"}) == r
    with pytest.raises(InvalidGenerationRequest, match="'kind'"):
        GenerationRequest.from_wire({"prompt": "x"})


def test_schema_keywords_the_grammar_builder_drops_are_found_where_they_are():
    """Each keyword was checked against llama-cpp-python 0.3.36: the grammar is the same with and without it."""
    import json

    from llama_cpp.llama_grammar import json_schema_to_gbnf

    from silnode.serving.request import IGNORED_BY_GRAMMAR, unsupported_schema_keyword

    base = {"type": "object", "properties": {"n": {"type": "integer"}}}
    for keyword, value in [("minimum", 1), ("maximum", 9), ("multipleOf", 2), ("minProperties", 1)]:
        with_it = {**base, keyword: value} if keyword == "minProperties" else {
            **base, "properties": {"n": {"type": "integer", keyword: value}}
        }  # fmt: skip
        assert json_schema_to_gbnf(json.dumps(with_it)) == json_schema_to_gbnf(json.dumps(base)), keyword
        assert keyword in IGNORED_BY_GRAMMAR
    nested = {
        "type": "object",
        "properties": {
            "minimum": {"type": "string"},  # a property *named* like a keyword is fine
            "list": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "number", "maximum": 3}]}},
        },
    }
    assert unsupported_schema_keyword(nested) == "properties.list.items.anyOf[1].maximum"
    assert unsupported_schema_keyword({"$defs": {"a": {"not": {}}}, "$ref": "#/$defs/a"}) == "$defs.a.not"
    assert unsupported_schema_keyword({"type": "string", "pattern": "^a$", "minLength": 1}) is None
