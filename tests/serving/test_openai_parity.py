"""OpenAI parity on /v1, through the official `openai` client as an app would use it, against real llama.cpp
workers: the generated tiny model (random weights; greedy is deterministic within a run) and Gemma-3-270M.

Structured output (json_object, json_schema strict, the client's `parse` with a pydantic model), logprobs
checked against llama-cpp-python's own (logits_all=True), penalties, min_p, logit_bias, seeds and `n`."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Literal

import llama_cpp
import openai
import pytest
from nodes import openai_node
from pydantic import BaseModel, ConfigDict

pytestmark = pytest.mark.timeout(300)

TINY, GEMMA = "test/tiny", "test/gemma"
HI = [{"role": "user", "content": "hello"}]


async def _node(clean_env, aiohttp_client, models: dict[str, Path]):
    return await openai_node(clean_env, aiohttp_client, models, **{"serve.max_n": 3})


@pytest.fixture
async def tiny(clean_env, tiny_gguf, aiohttp_client):
    client = await _node(clean_env, aiohttp_client, {TINY: tiny_gguf})
    yield client
    await client.oai.close()
    await client.node.stop()


@pytest.fixture
async def gemma(clean_env, gemma_gguf, aiohttp_client):
    client = await _node(clean_env, aiohttp_client, {GEMMA: gemma_gguf})
    yield client
    await client.oai.close()
    await client.node.stop()


class Answer(BaseModel):
    """Every field bounded, so a constrained answer must end (no free-running string)."""

    model_config = ConfigDict(extra="forbid")
    ok: bool
    colour: Literal["red", "green", "blue"]
    count: int


SCHEMA = Answer.model_json_schema()
STRICT = {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}}


async def _stream_text(stream) -> tuple[str, str | None, list]:
    text, finish, logprobs = "", None, []
    async for chunk in stream:
        for c in chunk.choices:
            text += (c.delta.content if hasattr(c, "delta") else c.text) or ""
            finish = c.finish_reason or finish
            if c.logprobs is not None and getattr(c.logprobs, "content", None):
                logprobs += c.logprobs.content
    return text, finish, logprobs


# ------------------------------------------------------------------------------ structured output


async def test_json_schema_strict_answer_validates_streamed_and_not(tiny):
    r = await tiny.oai.chat.completions.create(
        model=TINY, messages=HI, max_tokens=200, temperature=0, response_format=STRICT
    )
    choice = r.choices[0]
    assert choice.finish_reason == "stop", choice
    answer = Answer.model_validate_json(choice.message.content)  # parses and validates (extra keys forbidden)
    stream = await tiny.oai.chat.completions.create(
        model=TINY, messages=HI, max_tokens=200, temperature=0, response_format=STRICT, stream=True
    )
    text, finish, _ = await _stream_text(stream)
    assert finish == "stop" and Answer.model_validate_json(text) == answer
    # the client's own parse(): a pydantic model in, a parsed object out
    parsed = await tiny.oai.chat.completions.parse(
        model=TINY, messages=HI, max_tokens=200, temperature=0, response_format=Answer
    )
    assert parsed.choices[0].message.parsed == answer


async def test_json_schema_cut_by_max_tokens_says_length(tiny):
    r = await tiny.oai.chat.completions.create(
        model=TINY, messages=HI, max_tokens=4, temperature=0, response_format=STRICT
    )
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 4
    assert r.choices[0].message.content.startswith("{")


async def test_json_object_mode_on_completions_and_chat(tiny):
    """Any JSON object: the tiny model's greedy keys run on, so a short answer is cut (length); with a schema
    of one bounded key it must end, and parse."""
    for stream in (False, True):
        r = await tiny.oai.chat.completions.create(
            model=TINY,
            messages=HI,
            max_tokens=30,
            temperature=0,
            response_format={"type": "json_object"},
            stream=stream,
        )
        text, finish = (
            (await _stream_text(r))[:2] if stream else (r.choices[0].message.content, r.choices[0].finish_reason)
        )
        assert finish == "length" and text.startswith("{"), text
    r = await tiny.oai.completions.create(
        model=TINY,
        prompt="JSON:",
        max_tokens=60,
        temperature=0,
        extra_body={
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "schema": {"type": "object", "properties": {"yes": {"type": "boolean"}}, "required": ["yes"]}
                },
            }
        },
    )
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(r.choices[0].text)["yes"], bool)


async def test_gemma_answers_a_schema_through_parse(gemma):
    parsed = await gemma.oai.chat.completions.parse(
        model=GEMMA,
        messages=[{"role": "user", "content": "Is the sky blue? Answer in JSON."}],
        max_tokens=120,
        temperature=0,
        response_format=Answer,
    )
    choice = parsed.choices[0]
    assert choice.finish_reason == "stop", choice.message.content
    assert isinstance(choice.message.parsed, Answer)


async def test_a_schema_the_grammar_builder_cannot_handle_is_a_400_naming_the_part(tiny):
    bad = {"type": "object", "properties": {"code": {"type": "string", "pattern": "[a-z]+"}}}
    with pytest.raises(openai.BadRequestError) as e:
        await tiny.oai.chat.completions.create(
            model=TINY,
            messages=HI,
            max_tokens=8,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": bad}},
        )
    err = e.value.body
    assert err["param"] == "response_format.json_schema.schema", err
    assert "Pattern must start with" in err["message"]
    with pytest.raises(openai.BadRequestError) as e:  # the same in a stream: before any byte is sent
        await tiny.oai.chat.completions.create(
            model=TINY,
            messages=HI,
            max_tokens=8,
            stream=True,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": bad}},
        )
    assert e.value.body["param"] == "response_format.json_schema.schema"
    with pytest.raises(openai.BadRequestError) as e:
        await tiny.oai.chat.completions.create(model=TINY, messages=HI, max_tokens=8, response_format={"type": "xml"})
    assert e.value.body["param"] == "response_format"
    # a keyword the grammar builder would drop silently (an answer could then break it): refused, named
    bounded = {"type": "object", "properties": {"age": {"type": "integer", "minimum": 0, "maximum": 150}}}
    with pytest.raises(openai.BadRequestError) as e:
        await tiny.oai.chat.completions.create(
            model=TINY,
            messages=HI,
            max_tokens=8,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": bounded}},
        )
    assert e.value.body["param"] == "response_format.json_schema.schema"
    assert "'minimum' (at properties.age.minimum)" in e.value.body["message"]
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "array", "uniqueItems": True}}}
    with pytest.raises(openai.BadRequestError) as e:
        await tiny.oai.chat.completions.create(model=TINY, messages=HI, max_tokens=8, tools=[tool])
    assert e.value.body["param"] == "tools[0].function.parameters" and "uniqueItems" in e.value.body["message"]
    # the model still serves
    r = await tiny.oai.chat.completions.create(model=TINY, messages=HI, max_tokens=3)
    assert r.usage.completion_tokens == 3


# ------------------------------------------------------------------------------ logprobs


async def test_chat_logprobs_are_a_distribution_and_the_greedy_choice(tiny):
    for stream in (False, True):
        r = await tiny.oai.chat.completions.create(
            model=TINY, messages=HI, max_tokens=8, temperature=0, logprobs=True, top_logprobs=5, stream=stream
        )
        if stream:
            text, _, content = await _stream_text(r)
        else:
            text, content = r.choices[0].message.content, r.choices[0].logprobs.content
        assert len(content) == 8
        assert "".join(t.token for t in content) == text
        for t in content:
            assert len(t.top_logprobs) == 5
            assert sum(math.exp(a.logprob) for a in t.top_logprobs) <= 1 + 1e-9
            # greedy: the chosen token is the most likely one
            assert t.token == t.top_logprobs[0].token and t.logprob == t.top_logprobs[0].logprob
            assert bytes(t.bytes).decode() == t.token


async def test_completion_logprobs_match_llama_cpp_python(tiny, tiny_gguf):
    prompt = "hello world"
    r = await tiny.oai.completions.create(model=TINY, prompt=prompt, max_tokens=6, temperature=0, logprobs=3)
    lp = r.choices[0].logprobs
    llm = llama_cpp.Llama(str(tiny_gguf), n_ctx=512, logits_all=True, verbose=False, n_threads=1)
    try:
        direct = llm.create_completion(prompt, max_tokens=6, temperature=0, logprobs=3)["choices"][0]
    finally:
        llm.close()
    assert r.choices[0].text == direct["text"]
    assert lp.tokens == direct["logprobs"]["tokens"]
    assert lp.token_logprobs == pytest.approx(direct["logprobs"]["token_logprobs"], abs=1e-4)
    for ours, theirs in zip(lp.top_logprobs, direct["logprobs"]["top_logprobs"], strict=True):
        assert ours == pytest.approx(theirs, abs=1e-4)
    assert lp.text_offset[0] == len(prompt)


# ------------------------------------------------------------------------------ sampling


async def _completion(tiny, **kw) -> str:
    kw.setdefault("max_tokens", 48)
    r = await tiny.oai.completions.create(model=TINY, prompt="the model", **kw)
    return r.choices[0].text


async def test_penalties_change_the_greedy_output(tiny):
    base = await _completion(tiny, temperature=0)
    words = Counter(base.split())
    assert words.most_common(1)[0][1] >= 3, base  # greedy on the tiny model loops: penalties have work to do
    for penalty in ({"frequency_penalty": 2.0}, {"presence_penalty": 2.0}, {"extra_body": {"repeat_penalty": 1.8}}):
        out = await _completion(tiny, temperature=0, **penalty)
        assert out != base, penalty
        assert out == await _completion(tiny, temperature=0, **penalty)  # still deterministic
        assert Counter(out.split()).most_common(1)[0][1] < words.most_common(1)[0][1], (penalty, out)


async def test_min_p_one_is_greedy_and_seeds_reproduce(tiny):
    greedy = await _completion(tiny, temperature=0)
    hot = await _completion(tiny, temperature=1.5, seed=11)
    assert hot != greedy and hot == await _completion(tiny, temperature=1.5, seed=11)
    # min_p 1 keeps only the most likely token: sampling hot gives the greedy text
    assert await _completion(tiny, temperature=1.5, seed=11, extra_body={"min_p": 1.0}) == greedy


async def test_logit_bias_bans_and_forces_tokens(tiny):
    r = await tiny.oai.completions.create(model=TINY, prompt="the model", max_tokens=4, temperature=0, logprobs=0)
    first = r.choices[0].logprobs.tokens[0]
    first_id = tiny_token_id(tiny, first)
    banned = await _completion(tiny, temperature=0, max_tokens=4, logit_bias={str(first_id): -100})
    assert not banned.startswith(first) and banned != r.choices[0].text
    forced_id = tiny_token_id(tiny, " water")
    forced = await _completion(tiny, temperature=0, max_tokens=5, logit_bias={str(forced_id): 100})
    assert forced == " water" * 5


def tiny_token_id(tiny, piece: str) -> int:
    llm = llama_cpp.Llama(str(tiny.node.serving.get(TINY).path), vocab_only=True, verbose=False)
    try:
        # SentencePiece adds the leading space (▁) itself
        ids = llm.tokenize(piece.removeprefix(" ").encode(), add_bos=False)
    finally:
        llm.close()
    assert len(ids) == 1, ids
    return ids[0]


async def test_n_choices_in_turn_with_seeds(tiny):
    r = await tiny.oai.completions.create(model=TINY, prompt="the model", max_tokens=8, temperature=1.0, seed=5, n=3)
    texts = [c.text for c in r.choices]
    assert [c.index for c in r.choices] == [0, 1, 2] and len(set(texts)) == 3
    assert r.usage.completion_tokens == 24
    assert texts[0] == await _completion(tiny, temperature=1.0, seed=5, max_tokens=8)
    assert texts[2] == await _completion(tiny, temperature=1.0, seed=7, max_tokens=8)
    stream = await tiny.oai.chat.completions.create(
        model=TINY, messages=HI, max_tokens=5, temperature=1.0, seed=5, n=2, stream=True
    )
    by_index: dict[int, str] = {}
    async for chunk in stream:
        for c in chunk.choices:
            by_index[c.index] = by_index.get(c.index, "") + (c.delta.content or "")
    assert sorted(by_index) == [0, 1] and by_index[0] != by_index[1]
    with pytest.raises(openai.BadRequestError) as e:
        await tiny.oai.completions.create(model=TINY, prompt="x", max_tokens=2, n=4)  # serve.max_n is 3
    assert e.value.body["param"] == "n"


async def test_sampling_fields_out_of_range_are_400s_naming_them(tiny):
    for field, value in (
        ("presence_penalty", 3),
        ("frequency_penalty", -2.5),
        ("logit_bias", {"x": 1}),
        ("logit_bias", {"5": 101}),
        ("top_logprobs", 21),
        ("logprobs", "yes"),
    ):
        body = {"model": TINY, "messages": HI, "max_tokens": 2, field: value}
        if field == "top_logprobs":
            body["logprobs"] = True
        r = await tiny.post("/v1/chat/completions", json=body)
        assert r.status == 400, (field, await r.text())
        assert (await r.json())["error"]["param"] == field


# ------------------------------------------------------------------------------ embeddings


async def test_embeddings_equal_llama_cpp_pythons(clean_env, gemma_gguf, tiny_gguf, aiohttp_client):
    client = await _node(clean_env, aiohttp_client, {})
    try:
        for name, path in ((TINY, tiny_gguf), (GEMMA, gemma_gguf)):
            task = client.node.models.import_file(str(path), name, license="mit")
            await client.node.tasks.wait(task)
            await client.node.serving.load(name, embedding=True)
            inputs = ["hello world", "the model"]
            floats = await client.oai.embeddings.create(model=name, input=inputs, encoding_format="float")
            b64 = await client.oai.embeddings.create(model=name, input=inputs)  # the client asks for base64
            llm = llama_cpp.Llama(
                str(path),
                embedding=True,
                n_ctx=512,
                verbose=False,
                n_threads=2,
                pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,  # neither GGUF names a pooling: the worker loads them so
            )
            try:
                direct = llm.create_embedding(inputs)["data"]
            finally:
                llm.close()
            for ours, packed, theirs in zip(floats.data, b64.data, direct, strict=True):
                assert isinstance(ours.embedding[0], float) and len(ours.embedding) == len(theirs["embedding"])
                assert ours.embedding == pytest.approx(theirs["embedding"], abs=1e-4)
                assert packed.embedding == pytest.approx(ours.embedding, abs=1e-6)
            assert floats.usage.prompt_tokens > 0
        with pytest.raises(openai.BadRequestError) as e:  # an embedding model does not generate
            await client.oai.completions.create(model=TINY, prompt="x", max_tokens=2)
        assert e.value.body["param"] == "model"
    finally:
        await client.oai.close()
        await client.node.stop()
