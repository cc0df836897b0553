"""The neutral generation request: what every front end asks a model worker to do.

The OpenAI layer (``/v1``) builds one from a request body, the NIP-90 DVM will build one from a job's params,
and the worker protocol carries it (``to_wire`` / ``from_wire``), so no front end imports another to generate
text. Defaults and range checks live here, once; a value out of range raises
:class:`~silnode.errors.InvalidGenerationRequest` with ``details["param"]`` naming the field.

    req = GenerationRequest.completion("Once upon a time", max_tokens=32, temperature=0.2, seed=7)
    req = GenerationRequest.chat([{"role": "user", "content": "Hello"}], stop=["\\n\\n"])
    worker_line = req.to_wire()                   # JSON-safe dict
    GenerationRequest.from_wire(worker_line) == req

Optional sampler fields (``min_p`` and the penalties) are ``None`` unless asked for: the worker then leaves
llama.cpp's own default in place. Structured output (``response_format``), ``logit_bias`` and
``logprobs``/``top_logprobs`` are optional too; every field added here is optional with a default, so an
older wire line (a DVM job written before them) still reads, and ``to_wire`` leaves unset fields out.
This module is stdlib-only: the worker subprocess imports it before llama.cpp.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from silnode.errors import InvalidGenerationRequest

Kind = Literal["chat", "completion"]
ROLES = ("system", "user", "assistant", "tool")
TOOL_CHOICES = ("auto", "none", "required")
MAX_TOOLS = 128  # OpenAI's limit per request
MAX_STOP = 16  # stop strings per request (OpenAI allows 4; llama-server takes more)

# llama-server's sampling defaults, used when a caller leaves a field out
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_P = 0.95
DEFAULT_TOP_K = 40

# (low, high) for each numeric field; integers are marked in INTEGER_FIELDS
RANGES: dict[str, tuple[float, float]] = {
    "max_tokens": (1, 1 << 24),
    "temperature": (0, 2),
    "top_p": (0, 1),
    "top_k": (0, 1 << 20),
    "min_p": (0, 1),
    "presence_penalty": (-2, 2),
    "frequency_penalty": (-2, 2),
    "repeat_penalty": (0, 10),
    "seed": (-(2**63), 2**64 - 1),
}
INTEGER_FIELDS = {"max_tokens", "top_k", "seed", "top_logprobs"}
RANGES["top_logprobs"] = (0, 20)  # OpenAI's limit
MAX_LOGIT_BIAS = 300  # entries (OpenAI's limit)
RESPONSE_FORMATS = ("text", "json_object", "json_schema")
# llama-cpp-python keyword for each sampler field the worker passes through
SAMPLER_FIELDS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "presence_penalty",
    "frequency_penalty",
    "repeat_penalty",
    "seed",
    "max_tokens",
)


def _bad(message: str, param: str) -> InvalidGenerationRequest:
    return InvalidGenerationRequest(message, param=param)


def check_number(name: str, value: Any) -> Any:
    """``value`` if it is a number (an integer where the field wants one) within the field's range."""
    lo, hi = RANGES[name]
    integer = name in INTEGER_FIELDS
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if (
        isinstance(value, bool)
        or not ok
        or (isinstance(value, float) and not math.isfinite(value))
        or not lo <= value <= hi
    ):
        kind = "an integer" if integer else "a number"
        raise _bad(f"'{name}' must be {kind} from {lo:g} to {hi:g}", name)
    return value


@dataclass(frozen=True)
class GenerationRequest:
    kind: Kind
    # chat: {"role", "content"} each; an assistant turn may add "tool_calls" (OpenAI's shape, content then ""),
    # a "tool" turn adds "tool_call_id" (and "name" when given)
    messages: tuple[Mapping[str, Any], ...] = ()
    prompt: str | None = None  # completion
    max_tokens: int | None = None  # None: up to the end of the context
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    top_k: int = DEFAULT_TOP_K
    min_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repeat_penalty: float | None = None
    seed: int | None = None  # kept as llama.cpp's uint32 (any 64-bit value is accepted and reduced)
    stop: tuple[str, ...] = field(default=())
    stream: bool = True  # False: the worker sends the text in one piece at the end
    # None, {"type": "json_object"} (any JSON object) or {"type": "json_schema", "schema": {...}, "strict": bool}
    # (OpenAI's {"type": "json_schema", "json_schema": {"name", "schema", "strict"}} is read as that too)
    response_format: Mapping[str, Any] | None = None
    logit_bias: Mapping[int, float] | None = None  # token id -> added to its logit (-100..100)
    logprobs: bool = False  # per generated token: its logprob (and top_logprobs alternatives)
    top_logprobs: int | None = None  # 0..20 alternatives per token; implies logprobs
    # OpenAI's function tools: {"type": "function", "function": {"name", "description", "parameters"}} each
    tools: tuple[Mapping[str, Any], ...] = ()
    tool_choice: str | Mapping[str, Any] | None = (
        None  # auto, none, required, {"type": "function", "function": {"name"}}
    )
    parallel_tool_calls: bool = True  # False: at most one call per answer

    def __post_init__(self) -> None:
        if self.kind not in ("chat", "completion"):
            raise _bad(f"'kind' must be 'chat' or 'completion', not {self.kind!r}", "kind")
        if self.kind == "chat":
            self._check_messages()
        elif not isinstance(self.prompt, str):
            raise _bad("'prompt' must be a string", "prompt")
        for name in RANGES:
            value = getattr(self, name)
            if value is not None:
                check_number(name, value)
        if self.seed is not None:
            object.__setattr__(self, "seed", self.seed % 2**32)  # llama.cpp seeds are uint32
        stop = self.stop
        if isinstance(stop, str):
            stop = (stop,)
        if not (
            isinstance(stop, (list, tuple)) and len(stop) <= MAX_STOP and all(isinstance(s, str) and s for s in stop)
        ):
            raise _bad(f"'stop' must be a string or a list of up to {MAX_STOP} non-empty strings", "stop")
        object.__setattr__(self, "stop", tuple(stop))
        if not isinstance(self.stream, bool):
            raise _bad("'stream' must be a boolean", "stream")
        if not isinstance(self.logprobs, bool):
            raise _bad("'logprobs' must be a boolean", "logprobs")
        if self.top_logprobs is not None:
            object.__setattr__(self, "logprobs", True)
        object.__setattr__(self, "response_format", check_response_format(self.response_format))
        object.__setattr__(self, "logit_bias", check_logit_bias(self.logit_bias))
        self._check_tools()

    def _check_messages(self) -> None:
        msgs = self.messages
        if not (isinstance(msgs, (list, tuple)) and msgs):
            raise _bad("'messages' must be a non-empty list of {role, content}", "messages")
        out = []
        for i, m in enumerate(msgs):
            if not isinstance(m, Mapping) or m.get("role") not in ROLES:
                raise _bad(f"messages[{i}] needs a role of system, user, assistant or tool", "messages")
            content = m.get("content")
            calls = m.get("tool_calls") if m["role"] == "assistant" else None
            if calls and content is None:
                content = ""  # an assistant turn that only called tools
            if not isinstance(content, str):
                raise _bad(f"messages[{i}].content must be a string", "messages")
            msg: dict[str, Any] = {"role": m["role"], "content": content}
            if calls:
                msg["tool_calls"] = check_tool_calls(calls, i)
            if m["role"] == "tool":
                if not isinstance(m.get("tool_call_id"), str):
                    raise _bad(f"messages[{i}] (role tool) needs the 'tool_call_id' it answers", "messages")
                msg["tool_call_id"] = m["tool_call_id"]
                if isinstance(m.get("name"), str):
                    msg["name"] = m["name"]
            out.append(msg)
        object.__setattr__(self, "messages", tuple(out))

    def _check_tools(self) -> None:
        tools = self.tools
        if not isinstance(tools, (list, tuple)) or len(tools) > MAX_TOOLS:
            raise _bad(f"'tools' must be a list of up to {MAX_TOOLS} function tools", "tools")
        if tools and self.kind != "chat":
            raise _bad("'tools' are for chat requests only", "tools")
        out = tuple(check_tool(t, i) for i, t in enumerate(tools))
        for i, t in enumerate(out):  # a forced call is decoded under a grammar built from these schemas
            _refuse_ignored_keywords(t["function"].get("parameters"), f"tools[{i}].function.parameters")
        object.__setattr__(self, "tools", out)
        names = [t["function"]["name"] for t in out]
        if len(set(names)) != len(names):
            raise _bad("'tools' must have distinct function names", "tools")
        choice = self.tool_choice
        if isinstance(choice, Mapping):
            fn = choice.get("function")
            name = fn.get("name") if isinstance(fn, Mapping) else None
            if choice.get("type") != "function" or not isinstance(name, str):
                raise _bad(
                    "'tool_choice' must be auto, none, required or {type: function, function: {name}}", "tool_choice"
                )
            if name not in names:
                raise _bad(f"'tool_choice' names {name!r}, which is not in 'tools'", "tool_choice")
            object.__setattr__(self, "tool_choice", {"type": "function", "function": {"name": name}})
        elif choice is not None and choice not in TOOL_CHOICES:
            raise _bad(
                "'tool_choice' must be auto, none, required or {type: function, function: {name}}", "tool_choice"
            )
        elif choice == "required" and not out:
            raise _bad("'tool_choice' required needs 'tools'", "tool_choice")
        if not isinstance(self.parallel_tool_calls, bool):
            raise _bad("'parallel_tool_calls' must be a boolean", "parallel_tool_calls")
        if self.calls_tools and self.response_format is not None:
            raise _bad("'response_format' cannot be combined with tools (use tool_choice none)", "response_format")

    @property
    def calls_tools(self) -> bool:
        """Tools are offered to the model: given, and tool_choice is not none."""
        return bool(self.tools) and self.tool_choice != "none"

    @property
    def forced_tool(self) -> str | None:
        """The function's name when tool_choice names one."""
        choice = self.tool_choice
        return str(choice["function"]["name"]) if isinstance(choice, Mapping) else None

    # ---- constructors
    @classmethod
    def chat(cls, messages: Sequence[Mapping[str, Any]], **kw: Any) -> GenerationRequest:
        # not a list (a caller's mistake): passed on as it is, for __post_init__ to name the problem
        msgs: Any = tuple(messages) if isinstance(messages, (list, tuple)) else messages
        return cls(kind="chat", messages=msgs, **kw)

    @classmethod
    def completion(cls, prompt: str, **kw: Any) -> GenerationRequest:
        return cls(kind="completion", prompt=prompt, **kw)

    # ---- the worker protocol
    def to_wire(self) -> dict[str, Any]:
        d = asdict(self)
        d["messages"] = [dict(m) for m in self.messages]
        d["tools"] = [dict(t) for t in self.tools]
        if self.parallel_tool_calls:
            del d["parallel_tool_calls"]  # the default
        d["stop"] = list(self.stop)
        d["response_format"] = dict(self.response_format) if self.response_format else None
        # JSON object keys are strings
        d["logit_bias"] = {str(k): v for k, v in self.logit_bias.items()} if self.logit_bias else None
        if not self.logprobs:
            del d["logprobs"]  # the default: left out, as older lines do
        return {k: v for k, v in d.items() if v is not None and v != []}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> GenerationRequest:
        """From a protocol line: known fields only (``id``/``op`` belong to the protocol), defaults for the
        missing ones; a wrong type or range raises InvalidGenerationRequest."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in names and v is not None}
        for key in ("messages", "stop", "tools"):
            if isinstance(kw.get(key), list):
                kw[key] = tuple(kw[key])
        if "kind" not in kw:
            raise _bad("'kind' must be 'chat' or 'completion', not None", "kind")
        return cls(**kw)

    @property
    def json_schema(self) -> Mapping[str, Any] | None:
        """The JSON schema the answer must follow ({} for any JSON object), None when unconstrained."""
        rf = self.response_format
        if rf is None:
            return None
        schema: Mapping[str, Any] = rf.get("schema") or {"type": "object"}
        return schema

    def sampling(self) -> dict[str, Any]:
        """Keyword arguments for llama-cpp-python's create_completion / create_chat_completion."""
        args = {name: getattr(self, name) for name in SAMPLER_FIELDS if getattr(self, name) is not None}
        args.setdefault("max_tokens", None)  # None: up to the end of the context
        args["stop"] = list(self.stop)
        return args


def check_tool(tool: Any, i: int) -> Mapping[str, Any]:
    """One OpenAI function tool, reduced to {"type": "function", "function": {"name", "description",
    "parameters"}}; parameters default to an empty object schema."""
    fn = tool.get("function") if isinstance(tool, Mapping) and tool.get("type") == "function" else None
    name = fn.get("name") if isinstance(fn, Mapping) else None
    if not isinstance(name, str) or not name or len(name) > 64 or not all(c.isalnum() or c in "_-" for c in name):
        raise _bad(
            f"tools[{i}] must be {{type: function, function: {{name, parameters}}}} with a name of "
            "letters, digits, _ and - (at most 64)",
            "tools",
        )
    assert isinstance(fn, Mapping)
    params = fn.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(params, Mapping):
        raise _bad(f"tools[{i}].function.parameters must be a JSON schema object", "tools")
    desc = fn.get("description")
    if desc is not None and not isinstance(desc, str):
        raise _bad(f"tools[{i}].function.description must be a string", "tools")
    out: dict[str, Any] = {"name": name}
    if desc:
        out["description"] = desc
    out["parameters"] = dict(params)
    if isinstance(fn.get("strict"), bool):
        out["strict"] = fn["strict"]
    return {"type": "function", "function": out}


def check_tool_calls(calls: Any, i: int) -> list[dict[str, Any]]:
    """An assistant turn's tool_calls as OpenAI sends them back: [{id, type, function: {name, arguments}}]."""
    if not isinstance(calls, (list, tuple)):
        raise _bad(f"messages[{i}].tool_calls must be a list", "messages")
    out = []
    for c in calls:
        fn = c.get("function") if isinstance(c, Mapping) else None
        if not (
            isinstance(fn, Mapping)
            and isinstance(fn.get("name"), str)
            and isinstance(fn.get("arguments"), str)
            and isinstance(c.get("id"), str)
        ):
            raise _bad(f"messages[{i}].tool_calls: each needs id and function {{name, arguments}} strings", "messages")
        out.append({"id": c["id"], "type": "function", "function": {"name": fn["name"], "arguments": fn["arguments"]}})
    return out


# JSON-schema keywords that llama-cpp-python 0.3.36's grammar builder drops without a word (each checked: the
# grammar comes out the same with and without it). A constrained answer could then break them, so a schema
# that uses one is refused, naming where, instead of promising an answer that validates.
IGNORED_BY_GRAMMAR = frozenset(
    {
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
        "uniqueItems", "contains", "not", "if", "then", "else",
        "minProperties", "maxProperties", "propertyNames", "dependentRequired", "dependentSchemas",
    }
)  # fmt: skip
# where a schema holds further schemas: one schema, a list of them, or a map of name -> schema
_SUBSCHEMA_ONE = ("items", "additionalProperties", "additionalItems")
_SUBSCHEMA_LIST = ("anyOf", "oneOf", "allOf", "prefixItems", "items")
_SUBSCHEMA_MAP = ("properties", "patternProperties", "$defs", "definitions")


def unsupported_schema_keyword(schema: Any, path: str = "") -> str | None:
    """The path of the first keyword the grammar builder would ignore (``properties.age.minimum``), or None."""
    if not isinstance(schema, Mapping):
        return None
    for key in schema:
        if key in IGNORED_BY_GRAMMAR:
            return f"{path}{key}"
    for key in _SUBSCHEMA_ONE:
        if isinstance(schema.get(key), Mapping):
            found = unsupported_schema_keyword(schema[key], f"{path}{key}.")
            if found:
                return found
    for key in _SUBSCHEMA_LIST:
        if isinstance(schema.get(key), list):
            for i, sub in enumerate(schema[key]):
                found = unsupported_schema_keyword(sub, f"{path}{key}[{i}].")
                if found:
                    return found
    for key in _SUBSCHEMA_MAP:
        if isinstance(schema.get(key), Mapping):
            for name, sub in schema[key].items():
                found = unsupported_schema_keyword(sub, f"{path}{key}.{name}.")
                if found:
                    return found
    return None


def _refuse_ignored_keywords(schema: Any, param: str) -> None:
    found = unsupported_schema_keyword(schema)
    if found:
        keyword = found.rsplit(".", 1)[-1]
        raise _bad(
            f"'{param}' uses {keyword!r} (at {found}), which the grammar builder cannot enforce; "
            "an answer could break it. Leave it out, or use enum/const for a fixed set of values",
            param,
        )


def check_response_format(value: Any) -> Mapping[str, Any] | None:
    """OpenAI's response_format reduced to None, {"type": "json_object"} or {"type": "json_schema", "schema",
    "strict"}. Whether the grammar builder can handle the schema is the worker's check (it has llama.cpp)."""
    if value is None:
        return None
    param = "response_format"
    if not isinstance(value, Mapping) or value.get("type") not in RESPONSE_FORMATS:
        raise _bad(f"'{param}' must be an object with a type of {', '.join(RESPONSE_FORMATS)}", param)
    kind = value["type"]
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    spec = value.get("json_schema", value)  # OpenAI's nesting, or the reduced form itself
    if not isinstance(spec, Mapping):
        raise _bad(f"'{param}.json_schema' must be an object with a 'schema'", f"{param}.json_schema")
    schema = spec.get("schema")
    if not isinstance(schema, Mapping):
        raise _bad(f"'{param}.json_schema.schema' must be a JSON schema object", f"{param}.json_schema.schema")
    strict = spec.get("strict", False)
    if not isinstance(strict, bool):
        raise _bad(f"'{param}.json_schema.strict' must be a boolean", f"{param}.json_schema.strict")
    _refuse_ignored_keywords(schema, f"{param}.json_schema.schema")
    return {"type": "json_schema", "schema": dict(schema), "strict": strict}


def check_logit_bias(value: Any) -> Mapping[int, float] | None:
    """{token id: bias}: ids as integers or decimal strings (JSON keys), biases from -100 to 100."""
    if value is None or value == {}:
        return None
    if not isinstance(value, Mapping) or len(value) > MAX_LOGIT_BIAS:
        raise _bad(f"'logit_bias' must map up to {MAX_LOGIT_BIAS} token ids to numbers", "logit_bias")
    out: dict[int, float] = {}
    for key, bias in value.items():
        try:
            token = int(key)
        except (TypeError, ValueError):
            raise _bad(f"'logit_bias' key {key!r} is not a token id", "logit_bias") from None
        if (
            token < 0
            or isinstance(bias, bool)
            or not isinstance(bias, (int, float))
            or not math.isfinite(bias)
            or not -100 <= bias <= 100
        ):
            raise _bad(f"'logit_bias' needs token ids >= 0 and biases from -100 to 100 (at {key!r})", "logit_bias")
        out[token] = float(bias)
    return out


MAX_EMBED_INPUTS = 2048  # OpenAI's limit per request


@dataclass(frozen=True)
class EmbeddingRequest:
    """Texts to embed (POST /v1/embeddings), for a worker loaded in embedding mode."""

    input: tuple[str, ...]

    def __post_init__(self) -> None:
        inputs = self.input
        if isinstance(inputs, str):
            inputs = (inputs,)
        if not (
            isinstance(inputs, (list, tuple))
            and 0 < len(inputs) <= MAX_EMBED_INPUTS
            and all(isinstance(s, str) and s for s in inputs)
        ):
            raise _bad(f"'input' must be a non-empty string or a list of up to {MAX_EMBED_INPUTS} of them", "input")
        object.__setattr__(self, "input", tuple(inputs))

    def to_wire(self) -> dict[str, Any]:
        return {"op": "embed", "input": list(self.input)}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> EmbeddingRequest:
        inputs: Any = data.get("input")  # checked in __post_init__
        return cls(input=inputs)
