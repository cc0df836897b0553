"""OpenAI tool calls on /v1, through the official `openai` client, against real llama.cpp workers on both tool
paths (silnode/serving/tools.py):

* "template": a generated tiny GGUF whose chat template is Qwen 2.5's (renders `tools`, Hermes <tool_call>);
* "grammar": the generated tiny GGUF with a plain ChatML template (no tools), and Gemma-3-270M.

The tiny models write random tokens, so a forced call (required / a named function) is what must come back
well formed: the grammar makes it so on both paths. The `auto` rule (parse what the model writes) is tested on
the parser itself, and the fed-back tool turn on the prompt the worker renders (its token count, from the
daemon, against the prompt written out here)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Literal

import llama_cpp
import openai
import pytest
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from nodes import openai_node
from pydantic import BaseModel, ConfigDict

from silnode.errors import InvalidGenerationRequest
from silnode.serving import tools
from silnode.serving.request import GenerationRequest
from tests.ggufgen import CHATML, HERMES_TOOLS, make_gguf

pytestmark = pytest.mark.timeout(300)

HERMES, TINY, GEMMA = "test/hermes", "test/tiny", "test/gemma"
HI = [{"role": "user", "content": "What is the weather in Oslo?"}]


class Weather(BaseModel):
    """Every field bounded, so a forced call on a random model must end. (Bounds as an enum: llama-cpp-python
    0.3.36's schema converter ignores minimum/maximum.)"""

    model_config = ConfigDict(extra="forbid")
    city: Literal["Paris", "Oslo", "Lima"]
    days: Literal[1, 3, 7]
    unit: Literal["C", "F"]


class Clock(BaseModel):
    model_config = ConfigDict(extra="forbid")
    zone: Literal["UTC", "CET"]


def _tool(name: str, model: type[BaseModel], description: str) -> dict:
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": model.model_json_schema()},
    }


TOOLS = [_tool("get_weather", Weather, "The weather forecast"), _tool("get_time", Clock, "The time now")]
SCHEMAS = {"get_weather": Weather, "get_time": Clock}


@pytest.fixture(scope="module")
def hermes_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_gguf(tmp_path_factory.mktemp("hermes") / "hermes.gguf", chat_template=HERMES_TOOLS)


@pytest.fixture
async def both(clean_env, tiny_gguf, hermes_gguf, aiohttp_client):
    client = await openai_node(clean_env, aiohttp_client, {HERMES: hermes_gguf, TINY: tiny_gguf})
    yield client
    await client.oai.close()
    await client.node.stop()


@pytest.fixture
async def gemma(clean_env, gemma_gguf, aiohttp_client):
    client = await openai_node(clean_env, aiohttp_client, {GEMMA: gemma_gguf})
    yield client
    await client.oai.close()
    await client.node.stop()


async def _call(client, model: str, stream: bool, **kw) -> tuple[list[dict], str | None, str | None]:
    """(tool calls as {id, name, arguments}, finish_reason, content) of one answer, streamed or not."""
    r = await client.oai.chat.completions.create(
        model=model, messages=kw.pop("messages", HI), tools=TOOLS, stream=stream, **{"max_tokens": 200, **kw}
    )
    if not stream:
        c = r.choices[0]
        calls = [
            {"id": t.id, "name": t.function.name, "arguments": t.function.arguments, "type": t.type}
            for t in c.message.tool_calls or []
        ]
        return calls, c.finish_reason, c.message.content
    calls_by_index: dict[int, dict] = {}
    finish, content = None, ""
    async for chunk in r:
        for c in chunk.choices:
            finish = c.finish_reason or finish
            content += c.delta.content or ""
            for t in c.delta.tool_calls or []:  # pieces of a call share its index (ours come whole)
                acc = calls_by_index.setdefault(t.index, {"id": "", "name": "", "arguments": "", "type": ""})
                acc["id"] += t.id or ""
                acc["type"] += t.type or ""
                acc["name"] += t.function.name or ""
                acc["arguments"] += t.function.arguments or ""
    return [calls_by_index[i] for i in sorted(calls_by_index)], finish, content or None


def _valid(call: dict) -> BaseModel:
    assert call["type"] == "function" and call["id"].startswith("call_"), call
    json.loads(call["arguments"])  # parses ...
    return SCHEMAS[call["name"]].model_validate_json(call["arguments"])  # ... and validates (no extra keys)


# ------------------------------------------------------------------------------ which path each model takes


async def test_models_and_inspect_say_the_tool_path(both, hermes_gguf, tiny_gguf):
    r = await both.get("/v1/models")
    paths = {m["id"]: m["tool_path"] for m in (await r.json())["data"]}
    assert paths == {HERMES: "template", TINY: "grammar"}
    r = await both.get("/api/v1/inspect", params={"model": HERMES})
    assert r.status == 200, await r.text()
    assert (await r.json())["inspect"]["tool_path"] == "template"
    r = await both.get("/api/v1/inspect", params={"model": TINY})
    assert (await r.json())["inspect"]["tool_path"] == "grammar"


def test_tool_path_rule():
    assert tools.tool_path(HERMES_TOOLS) == "template"
    assert tools.tool_path(CHATML) == "grammar"  # renders no tools
    assert tools.tool_path(None) == "grammar"  # no template at all
    # mentions tools but writes another call format (Llama 3.1's raw JSON): the node could not read it
    assert tools.tool_path("{% if tools %}{{ tools | tojson }}{% endif %}{{ messages[0].content }}") == "grammar"


# ------------------------------------------------------------------------------ forced calls, both paths


@pytest.mark.parametrize("model", [HERMES, TINY])
async def test_forced_call_comes_back_as_tool_calls_streamed_and_not(both, model):
    named = {"type": "function", "function": {"name": "get_weather"}}
    for stream in (False, True):
        calls, finish, content = await _call(both, model, stream, tool_choice=named, temperature=0)
        assert finish == "tool_calls" and content is None, (calls, finish, content)
        assert [c["name"] for c in calls] == ["get_weather"]
        assert isinstance(_valid(calls[0]), Weather)
        # `required`, one call only: any listed function, exactly one call
        calls, finish, _ = await _call(
            both, model, stream, tool_choice="required", parallel_tool_calls=False, seed=11, temperature=1.0
        )
        assert finish == "tool_calls" and len(calls) == 1, calls
        _valid(calls[0])


async def test_required_with_parallel_calls_gives_valid_calls_with_distinct_ids(both):
    """Parallel calls allowed: whatever number the model writes (one per line; the grammar then allows only
    another call or the end), each one is well formed."""
    for seed in range(4):
        calls, finish, _ = await _call(both, HERMES, True, tool_choice="required", seed=seed, max_tokens=400)
        assert finish == "tool_calls" and calls, (seed, finish, calls)
        for c in calls:
            _valid(c)
        assert len({c["id"] for c in calls}) == len(calls)


async def test_forced_call_on_gemma_takes_the_grammar_path(gemma):
    r = await gemma.get("/v1/models")
    assert (await r.json())["data"][0]["tool_path"] == "grammar"
    for stream in (False, True):
        calls, finish, _ = await _call(
            gemma, GEMMA, stream, tool_choice={"type": "function", "function": {"name": "get_weather"}}, temperature=0
        )
        assert finish == "tool_calls" and [c["name"] for c in calls] == ["get_weather"]
        weather = _valid(calls[0])
        assert weather.city in ("Paris", "Oslo", "Lima")
    # this Gemma (the base model) carries no chat template: the worker's fallback format renders the tool turns
    two_results = [*FOLLOW_UP, {"role": "tool", "tool_call_id": CALL_ID, "content": '{"wind": 3}'}]
    r = await gemma.oai.chat.completions.create(model=GEMMA, messages=two_results, tools=TOOLS, max_tokens=2)
    assert r.choices[0].finish_reason in ("length", "stop", "tool_calls") and r.usage.prompt_tokens > 200


async def test_tool_choice_none_gives_a_plain_answer(both):
    for model in (HERMES, TINY):
        calls, finish, content = await _call(both, model, False, tool_choice="none", max_tokens=8, temperature=0)
        assert calls == [] and finish == "length" and content


# ------------------------------------------------------------------------------ tool results fed back

CALL_ID = "call_0123456789abcdef"
FOLLOW_UP = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Oslo?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": CALL_ID,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo", "days": 1, "unit": "C"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": CALL_ID, "content": '{"temp": 21}'},
]


def _hermes_prompt() -> str:
    tool_lines = "\n".join(json.dumps(t, ensure_ascii=False) for t in TOOLS)
    return (
        "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist with the user "
        "query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        f"{tool_lines}\n</tools>\n\nFor each function call, return a json object with function name and arguments "
        'within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": '
        "<args-json-object>}\n</tool_call><|im_end|>\n"
        "<|im_start|>user\nWeather in Oslo?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo", "days": 1, '
        '"unit": "C"}}\n</tool_call><|im_end|>\n'
        '<|im_start|>user\n<tool_response>\n{"temp": 21}\n</tool_response><|im_end|>\n'
        "<|im_start|>assistant\n"
    )


def _fallback_prompt() -> str:
    req = GenerationRequest.chat(FOLLOW_UP, tools=TOOLS)
    return (
        f"<|im_start|>system\n{tools.tools_prompt(req, [dict(t) for t in req.tools])}\n\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nWeather in Oslo?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo", "days": 1, '
        '"unit": "C"}}\n</tool_call><|im_end|>\n'
        '<|im_start|>user\n<tool_response>\n{"temp": 21}\n</tool_response><|im_end|>\n'
        "<|im_start|>assistant\n"
    )


@pytest.mark.parametrize(
    "path,template,expected", [("template", HERMES_TOOLS, _hermes_prompt), ("grammar", CHATML, _fallback_prompt)]
)
def test_tool_turns_render_into_the_prompt(path, template, expected):
    """What the worker hands llama-cpp-python's Jinja2ChatFormatter, rendered as the worker renders it."""
    req = GenerationRequest.chat(FOLLOW_UP, tools=TOOLS)
    messages, offered = tools.chat_inputs(req, path)
    prompt = Jinja2ChatFormatter(template, "</s>", "<s>")(messages=messages, tools=offered).prompt
    assert prompt == expected()


# Gemma 3's rule (its instruct template): roles must alternate after an optional first system turn
STRICT_ALTERNATION = (
    "{% for m in messages %}{% if m.role != 'system' and (m.role == 'user') != "
    "((loop.index0 - (1 if messages[0].role == 'system' else 0)) % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}"
)


def test_fallback_turns_alternate_for_strict_templates():
    """Two tool results in a row, and the node's tools message beside the caller's system message, merge, so a
    template that demands alternating turns (Gemma 3's) still renders the conversation."""
    two_results = [*FOLLOW_UP, {"role": "tool", "tool_call_id": CALL_ID, "content": '{"wind": 3}'}]
    req = GenerationRequest.chat(two_results, tools=TOOLS)
    messages, offered = tools.chat_inputs(req, "grammar")
    assert offered is None and [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    prompt = Jinja2ChatFormatter(STRICT_ALTERNATION, "</s>", "<s>")(messages=messages).prompt
    assert '<user><tool_response>\n{"temp": 21}\n</tool_response>\n\n<tool_response>\n{"wind": 3}' in prompt
    with pytest.raises(ValueError, match="alternate"):  # the rule bites: unmerged turns would not render
        Jinja2ChatFormatter(STRICT_ALTERNATION, "</s>", "<s>")(messages=[*messages, messages[-1]])


@pytest.mark.parametrize(
    "model,template,expected", [(HERMES, HERMES_TOOLS, _hermes_prompt), (TINY, CHATML, _fallback_prompt)]
)
async def test_tool_turn_is_accepted_and_rendered_by_the_daemon(both, model, template, expected, tiny_gguf):
    """The daemon's worker evaluates exactly that prompt: its prompt_tokens equal the expected prompt's tokens
    (one token more or less of any part would differ)."""
    r = await both.oai.chat.completions.create(
        model=model, messages=FOLLOW_UP, tools=TOOLS, max_tokens=3, temperature=0
    )
    assert r.choices[0].finish_reason in ("length", "stop", "tool_calls")
    vocab = llama_cpp.Llama(str(tiny_gguf), vocab_only=True, verbose=False)  # both models share the vocabulary
    want = len(vocab.tokenize(expected().encode(), add_bos=False, special=True))
    assert r.usage.prompt_tokens == want
    # a tool turn without the call id it answers is the caller's mistake: a 400 naming messages
    bad = [*FOLLOW_UP[:3], {"role": "tool", "content": "x"}]
    with pytest.raises(openai.BadRequestError) as e:
        await both.oai.chat.completions.create(model=model, messages=bad, tools=TOOLS, max_tokens=3)
    assert e.value.body["param"] == "messages"


# ------------------------------------------------------------------------------ auto: parsing the answer


def _feed_in_pieces(parser: tools.CallParser, text: str, rng: random.Random) -> tuple[str, list[dict]]:
    content, calls, at = "", [], 0
    while at < len(text):
        n = rng.randint(1, 7)
        c, k = parser.feed(text[at : at + n])
        content, calls, at = content + c, calls + k, at + n
    c, k = parser.finish()
    return content + c, calls + k


def test_auto_answers_are_parsed_however_the_stream_splits_them():
    req = GenerationRequest.chat(HI, tools=TOOLS, tool_choice="auto")
    good = tools.call_block("get_weather", {"city": "Lima", "days": 3, "unit": "F"})
    unknown = tools.call_block("launch_rocket", {})
    text = f"Let me check. <tool_ca{good}\n{unknown}\n" + tools.call_block("get_time", {"zone": "UTC"}) + "\n"
    for seed in range(30):
        content, calls = _feed_in_pieces(tools.CallParser(req), text, random.Random(seed))
        # the half marker and the unknown function stay text; the two real calls are calls; the whitespace
        # after the last call is no answer
        assert content == f"Let me check. <tool_ca\n{unknown}"
        assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [
            ("get_weather", {"city": "Lima", "days": 3, "unit": "F"}),
            ("get_time", {"zone": "UTC"}),
        ]
    # only calls: no content at all (the whitespace between them is not an answer)
    content, calls = _feed_in_pieces(tools.CallParser(req), f"\n{good}\n{good}\n", random.Random(1))
    assert content == "" and len(calls) == 2
    # parallel_tool_calls false: the first call only
    single = GenerationRequest.chat(HI, tools=TOOLS, parallel_tool_calls=False)
    _, calls = _feed_in_pieces(tools.CallParser(single), f"{good}\n{good}", random.Random(2))
    assert len(calls) == 1
    # a block cut off by max_tokens is text, not a call; plain text passes unchanged
    content, calls = _feed_in_pieces(tools.CallParser(req), "Hello <3 " + good[:30], random.Random(3))
    assert calls == [] and content == "Hello <3 " + good[:30]
    content, calls = _feed_in_pieces(tools.CallParser(req), " Plain answer, \n ends in blanks  \n", random.Random(4))
    assert calls == [] and content == " Plain answer, \n ends in blanks  \n"


# ------------------------------------------------------------------------------ bad requests


async def test_bad_tool_requests_name_the_field(both):
    cases = [
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": "always"}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools"),
        ({"tools": [TOOLS[0], TOOLS[0]]}, "tools"),
        ({"tools": TOOLS, "response_format": {"type": "json_object"}}, "response_format"),
        ({"tools": TOOLS, "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
        # a schema the grammar builder cannot handle, found when the forced call's grammar is built
        (
            {
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"$ref": "#/nowhere"}}}],
                "tool_choice": "required",
            },
            "tools",
        ),
    ]
    for extra, param in cases:
        r = await both.post("/v1/chat/completions", json={"model": TINY, "messages": HI, "max_tokens": 2, **extra})
        assert r.status == 400, (extra, await r.text())
        assert (await r.json())["error"]["param"] == param, extra
    r = await both.post("/v1/completions", json={"model": TINY, "prompt": "x", "tools": TOOLS})
    assert r.status == 400 and (await r.json())["error"]["param"] == "tools"


def test_tools_round_trip_the_wire_and_old_lines_still_read():
    req = GenerationRequest.chat(
        FOLLOW_UP,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
    )
    wire = json.loads(json.dumps(req.to_wire()))
    assert GenerationRequest.from_wire(wire) == req
    assert req.forced_tool == "get_time" and req.calls_tools
    old = GenerationRequest.from_wire({"kind": "chat", "messages": HI})
    assert old.tools == () and "tools" not in old.to_wire() and "parallel_tool_calls" not in old.to_wire()
    with pytest.raises(InvalidGenerationRequest):
        GenerationRequest.completion("x", tools=TOOLS)
