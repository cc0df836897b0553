"""Tool calls (OpenAI's `tools`, `tool_choice`, `parallel_tool_calls`) for the model worker.

A model takes one of two paths, decided once from its GGUF chat template (`tool_path`):

* ``template``: the template renders `tools` itself and writes calls as Hermes-style blocks
  (``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``: Hermes, Qwen 2.5 / 3, and the many
  fine-tunes that copy them). The tools and the conversation (assistant turns with `tool_calls`, `tool`
  turns) go to the template as they are, rendered with jinja2 by llama-cpp-python's Jinja2ChatFormatter.
* ``grammar``: any other template, or none. The node describes the tools in a system message of its own and
  asks for the same ``<tool_call>`` blocks; earlier calls and tool results are written into the conversation
  as text (a result becomes a user turn ``<tool_response>...</tool_response>``), so a template that knows
  only system/user/assistant still renders it.

On both paths a call that is forced (`tool_choice` "required" or a named function) is generated under a GBNF
grammar built from the tools' JSON schemas (llama.cpp's schema converter): exactly the call format, a listed
name, arguments that follow that tool's schema; several calls (one per line) unless parallel_tool_calls is
false. With "auto" the model writes freely and its answer is parsed: each well-formed block naming a listed
tool becomes a call, the rest is content. With "none" the tools are not shown to the model at all.

Stdlib at import time (the daemon reads `tool_path` for /v1/models and inspect); jinja2 and llama_cpp load
lazily, inside the worker.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from silnode.serving.request import GenerationRequest

TEMPLATE, GRAMMAR = "template", "grammar"
OPEN, CLOSE = "<tool_call>", "</tool_call>"
_USES_TOOLS = re.compile(r"\btools\b")


def tool_path(template: object) -> str:
    """'template' when the chat template renders `tools` and writes <tool_call> blocks, else 'grammar'."""
    if not isinstance(template, str) or OPEN not in template:
        return GRAMMAR
    try:
        import jinja2
        import jinja2.meta

        env = jinja2.Environment(extensions=["jinja2.ext.loopcontrols"])
        uses = "tools" in jinja2.meta.find_undeclared_variables(env.parse(template))
    except Exception:  # noqa: BLE001 - jinja2 missing, or a tag our plain environment does not know
        uses = bool(_USES_TOOLS.search(template))
    return TEMPLATE if uses else GRAMMAR


def call_block(name: str, arguments: Any) -> str:
    """One call as the model writes it (the grammar's exact text)."""
    return f"{OPEN}\n{json.dumps({'name': name, 'arguments': arguments}, ensure_ascii=False)}\n{CLOSE}"


def _arguments(raw: str) -> Any:
    """A call's arguments as sent back by a client (a JSON string) as an object, for the template."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, dict) else raw


# ---- prompts -------------------------------------------------------------------------------------------------


def involves_tools(req: GenerationRequest) -> bool:
    """Tools are given, or the conversation holds tool calls or results."""
    return bool(req.tools) or any(m["role"] == "tool" or m.get("tool_calls") for m in req.messages)


def chat_inputs(req: GenerationRequest, path: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """(messages, tools) for the chat handler: tools is what the template renders (None: not shown)."""
    tools = [dict(t) for t in req.tools] if req.calls_tools else None
    if path == TEMPLATE:
        msgs = []
        for m in req.messages:
            msg = dict(m)
            if m.get("tool_calls"):
                # HF templates write `arguments | tojson`: give them the object, not OpenAI's JSON string
                msg["tool_calls"] = [
                    {**c, "function": {**c["function"], "arguments": _arguments(c["function"]["arguments"])}}
                    for c in m["tool_calls"]
                ]
            msgs.append(msg)
        return msgs, tools
    return fallback_messages(req, tools), None


def fallback_messages(req: GenerationRequest, tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The conversation in system/user/assistant turns only, with the tools described in a system message."""
    out: list[dict[str, Any]] = []
    if tools:
        out.append({"role": "system", "content": tools_prompt(req, tools)})
    for m in req.messages:
        role, content = m["role"], m["content"]
        if role == "assistant" and m.get("tool_calls"):
            blocks = [
                call_block(c["function"]["name"], _arguments(c["function"]["arguments"])) for c in m["tool_calls"]
            ]
            content = "\n".join([content, *blocks] if content else blocks)
        elif role == "tool":
            role = "user"
            content = f"<tool_response>\n{content}\n</tool_response>"
        if out and out[-1]["role"] == role:  # two results in a row, or our system message and the caller's
            out[-1]["content"] += "\n\n" + content
        else:
            out.append({"role": role, "content": content})
    return out


def tools_prompt(req: GenerationRequest, tools: list[dict[str, Any]]) -> str:
    lines = [
        "You can call functions. Their signatures, as JSON schemas, are within <tools></tools>:",
        "<tools>",
        *(json.dumps(t["function"], ensure_ascii=False) for t in tools),
        "</tools>",
        "To call a function, answer with one block per call, and nothing else:",
        OPEN,
        '{"name": <function name>, "arguments": <the arguments as a JSON object>}',
        CLOSE,
    ]
    if req.forced_tool:
        lines.append(f"Call the function {req.forced_tool} now.")
    elif req.tool_choice == "required":
        lines.append("Call at least one function now.")
    return "\n".join(lines)


# ---- the grammar for a forced call -----------------------------------------------------------------------------


def forced_gbnf(req: GenerationRequest, strict: Callable[[Any], Any] = lambda s: s) -> str | None:
    """GBNF that admits only well-formed calls (None unless tool_choice forces one). `strict` rewrites the
    schema of a function marked strict (the worker's strict_schema). Raises ValueError naming the tool whose
    schema the converter cannot handle."""
    if not req.calls_tools or (req.tool_choice != "required" and not req.forced_tool):
        return None
    from llama_cpp.llama_grammar import SchemaConverter

    conv: Any = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)  # type: ignore[no-untyped-call]
    alternatives = []
    for i, tool in enumerate(req.tools):
        fn = tool["function"]
        if req.forced_tool and fn["name"] != req.forced_tool:
            continue
        schema = dict(fn["parameters"])
        if fn.get("strict"):
            schema = strict(schema)
        try:
            schema = conv.resolve_refs(schema, f"tool-{i}")
            args = conv.visit(schema, f"tool-{i}-args")
        except RecursionError:
            raise ValueError(f"tools[{i}] ({fn['name']}): its parameters nest too deeply") from None
        except (ValueError, AssertionError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ValueError(f"tools[{i}] ({fn['name']}): {str(exc)[:300] or type(exc).__name__}") from None
        head = _literal('{"name": ' + json.dumps(fn["name"]) + ', "arguments": ')
        alternatives.append(f'{head} {args} "}}"')
    call = f'"{OPEN}\\n" ( {" | ".join(alternatives)} ) "\\n{CLOSE}"'
    rules = conv.format_grammar()
    root = "root ::= tool-call" + (' ( "\\n" tool-call )*' if req.parallel_tool_calls and not req.forced_tool else "")
    return f"{root}\ntool-call ::= {call}\n{rules}"


def _literal(text: str) -> str:
    """A GBNF string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# ---- reading calls out of the model's text ------------------------------------------------------------------


class CallParser:
    """Splits the generated text, as it streams, into content and calls. Text that could be the start of a
    <tool_call> block is held back until it is clear; whitespace around calls is not content."""

    def __init__(self, req: GenerationRequest) -> None:
        self.names = {t["function"]["name"] for t in req.tools}
        self.single = not req.parallel_tool_calls
        self.buf = ""
        self.in_call = False
        self.blank = ""  # whitespace held until real content follows (dropped if only calls come)
        self.calls = 0

    def feed(self, text: str) -> tuple[str, list[dict[str, Any]]]:
        self.buf += text
        content, calls = "", []
        while True:
            if not self.in_call:
                at = self.buf.find(OPEN)
                if at < 0:
                    keep = _partial_suffix(self.buf, OPEN)
                    content += self.buf[: len(self.buf) - keep]
                    self.buf = self.buf[len(self.buf) - keep :]
                    break
                content += self.buf[:at]
                self.buf, self.in_call = self.buf[at + len(OPEN) :], True
            end = self.buf.find(CLOSE)
            if end < 0:
                break
            body, self.buf, self.in_call = self.buf[:end], self.buf[end + len(CLOSE) :], False
            call = self._call(body)
            if call is None:
                content += OPEN + body + CLOSE  # not a call we can honour: the text stays the answer
            elif not (self.single and self.calls):
                calls.append(call)
                self.calls += 1
        return self._content(content), calls

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        """What is left when the generation ends (an unfinished block is content)."""
        rest = (OPEN if self.in_call else "") + self.buf
        self.buf, self.in_call = "", False
        content = self._content(rest)
        if not self.calls:
            content, self.blank = content + self.blank, ""
        return content, []

    def _content(self, text: str) -> str:
        """Content to send now: trailing whitespace waits for what follows (dropped if only calls come), so
        the answer is the same however the stream happens to be split."""
        body = text.rstrip()
        if not body:
            self.blank += text
            return ""
        out, self.blank = self.blank + body, text[len(body) :]
        return out

    def _call(self, body: str) -> dict[str, Any] | None:
        try:
            obj = json.loads(body)
        except ValueError:
            return None
        if not isinstance(obj, Mapping) or obj.get("name") not in self.names:
            return None
        args = obj.get("arguments", {})
        if isinstance(args, str):
            args = _arguments(args)
        if not isinstance(args, dict):
            return None
        return {
            "id": "call_" + uuid.uuid4().hex[:24],
            "name": obj["name"],
            "arguments": json.dumps(args, ensure_ascii=False),
        }


def _partial_suffix(text: str, marker: str) -> int:
    """The length of the longest end of `text` that begins `marker`."""
    for n in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0
