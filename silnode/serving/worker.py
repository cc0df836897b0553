"""The model worker: one subprocess per loaded model, driven by `silnode.serving.process.WorkerProcess`.

    python -m silnode.serving.worker '<config JSON>'

The config (argv[1]) holds: path (a .gguf; part 1 of a split model, llama.cpp finds the rest), n_ctx
(0 = the model's training context), n_threads (default: the CPUs this process may run on), n_batch, heartbeat
(seconds between progress events, default HEARTBEAT_S; 0: after every evaluation),
n_gpu_layers (default: all when this llama.cpp build can offload, else 0), chat_format_fallback (used when the
GGUF has no tokenizer.chat_template; default "chatml").

Protocol, one JSON object per line:

    stdin   {"op": "generate", "id", "kind": "chat"|"completion", "messages" | "prompt", "max_tokens",
             "temperature", "top_p", "top_k", "seed", "stop", "stream"}   queued; run one at a time, in
            order. stream false: the text comes as one delta at the end instead of one per token
            {"op": "cancel", "id"}          stop that request (no id: every request not yet done)
            {"op": "shutdown"}, or EOF      cancel what is pending and exit 0 (EOF: the daemon is gone)
    stdout  {"type": "ready", pid, n_ctx, n_ctx_train, n_vocab, chat_template, chat_format, tool_path, gpu_offload,
             n_gpu_layers, flash_attn, n_threads, n_batch, load_seconds, warmup_seconds}
            {"type": "delta", "id", "text"[, "tool_calls": [{"id", "name", "arguments"}]]}   (serving/tools.py)
            {"type": "done", "id", "finish_reason": "stop"|"length"|"tool_calls"|"cancelled", "prompt_tokens",
             "completion_tokens", "prompt_seconds", "gen_seconds"}
            {"type": "error", "id", "code": "context_overflow"|"invalid_request"|"generation_failed", "message"}
            {"type": "error", "phase": "load", "message"}         then exit 1
            {"type": "progress", "id"}      the request is alive (a prompt batch or a token was evaluated);
            at most one per HEARTBEAT_S, so a non-streamed request and a long prompt also show progress
    stderr  llama.cpp's log (verbose) and anything C code prints; the parent keeps and logs it.

`llama_cpp.Llama` is created and called on the main thread only: calling it from another thread costs
+30-65 % per call (OpenMP, shared/research/gguf-llama-notes.md §3). A reader thread owns stdin, so a
cancel lands while the main thread is inside llama.cpp; it is checked once per sampled token.
Imports at module level are stdlib and silnode's own pure-Python modules (the generation request, the error
tree): llama_cpp is imported after stdout is made safe.
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from silnode.errors import InvalidGenerationRequest
from silnode.serving import hang, tools
from silnode.serving.request import EmbeddingRequest, GenerationRequest

POOLING = {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}  # llama.cpp's enum llama_pooling_type
CTX_PAD = 256  # llama.cpp rounds the context up to a multiple of this
# llama-cpp-python's own prompt-length check (Llama._create_completion)
OVERFLOW_RE = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")
HEARTBEAT_S = 1.0  # a running request sends a progress event at most this often (the daemon's stall watchdog)


def log(message: str) -> None:
    print(f"silnode worker: {message}", file=sys.stderr, flush=True)


class Output:
    """Protocol lines go to a private copy of fd 1; fd 1 itself is pointed at stderr, so whatever llama.cpp
    (or anything else) prints cannot corrupt the protocol. Written from the main thread only."""

    def __init__(self) -> None:
        self._fd = os.dup(1)
        os.dup2(2, 1)

    def send(self, event: dict[str, Any]) -> None:
        data = memoryview((json.dumps(event, ensure_ascii=False) + "\n").encode())
        while data:  # one line per event, never interleaved, even past the pipe buffer size
            data = data[os.write(self._fd, data) :]


class Inbox:
    """Reads stdin on its own thread: generate requests are queued for the main thread, cancels set the
    request's event at once. EOF or shutdown cancels everything pending and queues the stop marker (None)."""

    def __init__(self) -> None:
        self.requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.loaded = threading.Event()
        self._cancels: dict[str, threading.Event] = {}  # requests received and not done yet
        self._lock = threading.Lock()

    def start(self) -> None:
        threading.Thread(target=self._read, name="stdin", daemon=True).start()

    def cancel_event(self, rid: str) -> threading.Event:
        with self._lock:
            return self._cancels.setdefault(rid, threading.Event())

    def finish(self, rid: str) -> None:
        with self._lock:
            self._cancels.pop(rid, None)

    def _read(self) -> None:
        for line in stdin_lines():
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                log(f"ignoring a line that is not JSON: {line[:200]!r}")
                continue
            op = msg.get("op") if isinstance(msg, dict) else None
            if op in ("generate", "embed"):
                self.cancel_event(str(msg.get("id", "")))
                self.requests.put(msg)
            elif op == "cancel":
                self._cancel(msg.get("id"))
            elif op == "shutdown":
                break
            else:
                log(f"ignoring unknown op {op!r}")
        self._close()

    def _cancel(self, rid: str | None) -> None:
        with self._lock:
            events = list(self._cancels.values()) if rid is None else [self._cancels.get(str(rid))]
        for ev in events:
            if ev is not None:
                ev.set()

    def _close(self) -> None:
        if not self.loaded.is_set():
            # still inside llama.cpp's load, which cannot be interrupted: a worker must never outlive its
            # daemon holding a model's memory, and nothing is half-written yet
            os._exit(0)
        self._cancel(None)
        self.requests.put(None)


def stdin_lines() -> Iterator[bytes]:
    """Lines from fd 0 read raw: a thread blocked in sys.stdin's buffered reader makes the interpreter abort
    at exit ("could not acquire lock for <stdin> at interpreter shutdown") when the main thread ends first."""
    pending = b""
    while chunk := os.read(0, 1 << 16):
        *lines, pending = (pending + chunk).split(b"\n")
        yield from lines
    if pending:
        yield pending


class Heartbeat:
    """Called after every llama.cpp evaluation (a prompt batch, a sampled token): sends a progress event at most
    once per HEARTBEAT_S, so the daemon can tell a slow request from a stuck one."""

    def __init__(self, rid: str, send: Callable[[dict[str, Any]], None], every: float = HEARTBEAT_S) -> None:
        self.rid, self.send, self.every = rid, send, every
        self.last = time.monotonic()

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.send({"type": "progress", "id": self.rid})


class TokenCounter:
    """The stopping criterion: llama-cpp-python calls it once per sampled token with the token ids evaluated
    so far. At the first call those are the prompt, so the k-th call sees prompt + k - 1 ids. It calls it once
    more after its loop with the same ids, hence the max() rather than counting calls."""

    def __init__(self, cancel: threading.Event, hang_after: int | None = None) -> None:
        self.cancel = cancel
        self.hang_after = hang_after  # test-only (serving/hang.py): hang after this many sampled tokens
        self.started = time.monotonic()
        self.first_token_at: float | None = None
        self.prompt_tokens = 0
        self.sampled = 0
        self.cancelled = False

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
            self.prompt_tokens = len(input_ids)
        self.sampled = max(self.sampled, len(input_ids) - self.prompt_tokens + 1)
        if self.hang_after is not None and self.sampled >= self.hang_after:
            hang.hang()
        if self.cancel.is_set():
            self.cancelled = True
        return self.cancelled


def cancellable_llama_class() -> type:
    """A Llama whose every completion also runs `self.stopping`, and tells `self.recorder` each sampled token,
    including the completions the chat handlers
    start (create_chat_completion takes no stopping_criteria of its own in llama-cpp-python 0.3.36)."""
    from llama_cpp import Llama, StoppingCriteriaList

    class CancellableLlama(Llama):
        stopping: TokenCounter | None = None
        recorder: TokenScores | None = None
        heartbeat: Heartbeat | None = None
        tool_path: str = tools.GRAMMAR  # how tool calls are prompted and read (serving/tools.py)

        def eval(self, tokens: Any) -> None:
            if self.heartbeat is None:
                return super().eval(tokens)
            # batch by batch as Llama.eval itself does (each call decodes n_batch at most), with a beat after each
            for i in range(0, len(tokens), self.n_batch):
                super().eval(tokens[i : i + self.n_batch])
                self.heartbeat()
            return None

        def sample(self, *args: Any, **kwargs: Any) -> Any:
            # the one place that sees each sampled token, the last one included (generate() never evaluates
            # that one, so it never shows up in input_ids)
            token = super().sample(*args, **kwargs)
            if self.recorder is not None:
                self.recorder.chosen(int(token))
            return token

        def create_completion(self, *args: Any, stopping_criteria: Any = None, **kwargs: Any) -> Any:
            if self.stopping is not None:
                stopping_criteria = StoppingCriteriaList([self.stopping, *(stopping_criteria or [])])
            return super().create_completion(*args, stopping_criteria=stopping_criteria, **kwargs)

    return CancellableLlama


# ---- load ---------------------------------------------------------------------------------------------------


def padded_ctx(n_ctx: int) -> int:
    """llama-cpp-python 0.3.36 sizes its token buffer with the n_ctx asked for while llama.cpp pads the real
    context up to CTX_PAD: a prompt between the two crashes with a numpy broadcast error instead of a clean
    overflow. Asking for the padded size keeps both equal."""
    return -(-n_ctx // CTX_PAD) * CTX_PAD


def load(config: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    if hang.take("load") is not None:  # test-only (SILNODE_TEST_HANG_FILE)
        hang.hang()
    import llama_cpp

    offload = llama_cpp.llama_supports_gpu_offload()
    n_gpu_layers = config.get("n_gpu_layers")
    if n_gpu_layers is None:
        n_gpu_layers = -1 if offload else 0
    gpu = offload and n_gpu_layers != 0
    n_threads = config.get("n_threads") or len(os.sched_getaffinity(0))
    started = time.monotonic()
    embedding = bool(config.get("embedding"))

    def make(**extra: Any) -> Any:
        # verbose: on a failed load, llama.cpp's stderr names the reason (the exception only says "Failed to load")
        return cancellable_llama_class()(
            model_path=str(config["path"]),
            n_ctx=padded_ctx(int(config.get("n_ctx") or 0)),
            n_batch=int(config.get("n_batch") or 512),
            n_threads=n_threads,
            n_threads_batch=n_threads,
            n_gpu_layers=n_gpu_layers,
            # the daemon's placement (fit/offload.py): which GPU holds the KV cache and scratch, and the share
            # of layers per GPU when one is too small
            **({"main_gpu": int(config["main_gpu"])} if gpu and config.get("main_gpu") is not None else {}),
            **(
                {"tensor_split": [float(x) for x in config["tensor_split"]]}
                if gpu and config.get("tensor_split")
                else {}
            ),
            flash_attn=gpu,
            verbose=True,
            **extra,
        )

    llm = make(embedding=embedding)
    if embedding and llama_cpp.llama_pooling_type(llm.ctx) == llama_cpp.LLAMA_POOLING_TYPE_NONE:
        # a generative GGUF names no pooling: it would give one vector per token; /v1/embeddings answers one
        # vector per input, so such a model is loaded with mean pooling (llama-server's --pooling mean)
        llm.close()
        llm = make(embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN)
    loaded = time.monotonic()
    if len(llm.input_ids) != llm.n_ctx():  # n_ctx 0 took an unpadded training context
        raise ValueError(
            f"llama.cpp made a {llm.n_ctx()}-token context, not {len(llm.input_ids)}: "
            f"give the context size explicitly (a multiple of {CTX_PAD})"
        )
    chat_template = "tokenizer.chat_template" in llm.metadata
    llm.tool_path = tools.tool_path(llm.metadata.get("tokenizer.chat_template"))
    if not chat_template:
        llm.chat_format = config.get("chat_format_fallback") or "chatml"
        log(f"the GGUF has no tokenizer.chat_template; chat uses chat_format={llm.chat_format!r}")
    if embedding:
        llm.embed("Hello")
    else:
        warm_up(llm)
    info = {
        "embedding": embedding,
        "pooling": POOLING.get(llama_cpp.llama_pooling_type(llm.ctx), "other") if embedding else None,
        "n_embd": llm.n_embd(),
        "pid": os.getpid(),
        "n_ctx": llm.n_ctx(),
        "n_ctx_train": llama_cpp.llama_model_n_ctx_train(llm.model),
        "n_vocab": llm.n_vocab(),
        "chat_template": chat_template,
        "chat_format": llm.chat_format,
        "tool_path": llm.tool_path,
        "gpu_offload": gpu,
        "n_gpu_layers": n_gpu_layers,
        "flash_attn": gpu,
        "n_threads": n_threads,
        "n_batch": llm.n_batch,
        "load_seconds": round(loaded - started, 3),
        "warmup_seconds": round(time.monotonic() - loaded, 3),
    }
    return llm, info


def warm_up(llm: Any) -> None:
    """One real decode and sample, so the first request does not pay for lazy setup (buffers, GPU kernels)."""
    llm.create_completion("Hello", max_tokens=1, temperature=0.0)
    llm.reset()


# ---- requests -----------------------------------------------------------------------------------------------


class TokenScores:
    """A logits processor (the first in llama-cpp-python's sampler chain, so it sees the model's raw logits):
    records each step's log-softmax for logprobs, then adds `logit_bias`. llama-cpp-python's own logprobs need
    Llama(logits_all=True), which keeps n_ctx x n_vocab floats (2 GiB for Gemma at 2k context); this keeps one
    step's row until `chosen` names the sampled token. Its own `logit_bias` is not used: it drops any other
    processor passed with it (LogitsProcessorList.extend returns None)."""

    def __init__(self, llm: Any, logprobs: bool, top: int, bias: dict[int, float] | None) -> None:
        import numpy as np

        self.np, self.llm, self.logprobs, self.top = np, llm, logprobs, top
        n_vocab = llm.n_vocab()
        self.bias_ids = np.array([t for t in (bias or {}) if t < n_vocab], dtype=np.intc)
        self.bias_values = np.array([bias[t] for t in self.bias_ids.tolist()], dtype=np.single) if bias else None
        self._row: Any = None
        self.entries: list[dict[str, Any]] = []  # per sampled token, in order
        self.sent = 0  # entries already sent in deltas

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        np = self.np
        if self.logprobs:
            x = scores.astype(np.float64)
            m = x.max()
            self._row = x - (m + np.log(np.exp(x - m).sum()))
        if self.bias_values is not None and len(self.bias_ids):
            scores = scores.copy()
            scores[self.bias_ids] += self.bias_values
        return scores

    def chosen(self, token: int) -> None:
        if not self.logprobs or self._row is None:
            return
        row, self._row = self._row, None
        import llama_cpp

        if llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token):
            return  # the end of the answer is not part of its text
        top = []
        if self.top:
            ids = self.np.argpartition(-row, self.top - 1)[: self.top]
            ids = ids[self.np.argsort(-row[ids], kind="stable")]
            top = [self._entry(int(t), float(row[t])) for t in ids]
        self.entries.append({**self._entry(token, float(row[token])), "top_logprobs": top})

    def _entry(self, token: int, logprob: float) -> dict[str, Any]:
        raw = self.llm.detokenize([token])
        return {"token": raw.decode("utf-8", "replace"), "logprob": logprob, "bytes": list(raw), "id": token}

    def unsent(self) -> list[dict[str, Any]]:
        new, self.sent = self.entries[self.sent :], len(self.entries)
        return new


def grammar_for(req: GenerationRequest) -> Any:
    """A llama.cpp grammar for the request's response_format (None when unconstrained). A schema that the
    grammar builder cannot handle is the caller's error: InvalidGenerationRequest naming the part."""
    schema = req.json_schema
    if schema is None:
        return None
    from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

    if req.response_format and req.response_format.get("strict"):
        schema = strict_schema(schema)
    param = "response_format.json_schema.schema" if req.response_format.get("schema") else "response_format"
    try:
        gbnf = json_schema_to_gbnf(json.dumps(schema))
    except RecursionError:
        raise InvalidGenerationRequest(
            "the JSON schema nests too deeply for the grammar builder", param=param
        ) from None
    except (ValueError, AssertionError, KeyError, TypeError, AttributeError, IndexError) as exc:
        why = str(exc) or type(exc).__name__
        raise InvalidGenerationRequest(
            f"the grammar builder cannot handle this JSON schema: {why[:500]}", param=param
        ) from None
    return LlamaGrammar.from_string(gbnf, verbose=False)


def tool_grammar(req: GenerationRequest) -> Any:
    """The grammar that forces a well-formed tool call (serving/tools.py), None when no call is forced."""
    try:
        gbnf = tools.forced_gbnf(req, strict_schema)
    except ValueError as exc:
        raise InvalidGenerationRequest(f"the grammar builder cannot handle {exc}", param="tools") from None
    if gbnf is None:
        return None
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_string(gbnf, verbose=False)


def strict_schema(schema: Any) -> Any:
    """OpenAI's strict mode: no properties beyond those listed (unless the schema says otherwise)."""
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict_schema(v) for k, v in schema.items()}
    if out.get("type") == "object" and "properties" in out:
        out.setdefault("additionalProperties", False)
    return out


def stream(llm: Any, req: GenerationRequest, scores: TokenScores | None = None) -> Iterator[tuple[str, str | None]]:
    """(text, finish_reason) per streamed chunk."""
    args = req.sampling()
    grammar = grammar_for(req) or tool_grammar(req)
    if grammar is not None:
        args["grammar"] = grammar
    if scores is not None:
        args["logits_processor"] = [scores]
    if args.get("seed") is None:
        # else llama-cpp-python derives it from the previous request's seed, so a fresh worker would
        # write the same "random" texts in the same order after every load
        args["seed"] = random.getrandbits(32)
    else:
        # a prefix reused from the KV cache was computed in other batches, and llama.cpp's numbers may
        # depend on the batch (notably on GPUs): evaluate from scratch so a seed reproduces exactly
        llm.reset()
    if req.kind == "chat":
        messages, offered = tools.chat_inputs(req, llm.tool_path)
        if llm.tool_path == tools.TEMPLATE and tools.involves_tools(req):
            # the GGUF's own template renders the tools and tool turns, even where llama-cpp-python guessed a
            # built-in format for it
            handler = llm._chat_handlers["chat_template.default"]
            chunks = handler(llama=llm, messages=messages, tools=offered, stream=True, **args)
        else:
            chunks = llm.create_chat_completion(messages, stream=True, **args)
        for chunk in chunks:
            choice = chunk["choices"][0]
            yield choice["delta"].get("content") or "", choice["finish_reason"]
    else:
        for chunk in llm.create_completion(req.prompt, stream=True, **args):
            choice = chunk["choices"][0]
            yield choice["text"], choice["finish_reason"]


def run_request(
    llm: Any,
    req: dict[str, Any],
    cancel: threading.Event,
    send: Callable[[dict[str, Any]], None],
    heartbeat: float = HEARTBEAT_S,
) -> dict[str, Any]:
    """Stream one request's deltas through `send`; return its final event (done or error)."""
    rid = str(req.get("id", ""))
    counter = TokenCounter(cancel, hang.take("token"))
    finish = None
    n_calls = 0  # tool calls sent
    scores: TokenScores | None = None
    try:
        greq = GenerationRequest.from_wire(req)
        llm.stopping = counter
        llm.heartbeat = Heartbeat(rid, send, heartbeat)
        if greq.logprobs or greq.logit_bias:
            scores = TokenScores(llm, greq.logprobs, greq.top_logprobs or 0, dict(greq.logit_bias or {}))
            llm.recorder = scores
        if cancel.is_set():  # cancelled while it waited in the queue: nothing to run
            counter.cancelled = True
        else:
            # a client that does not stream gets the text in one delta: a line per token would cost the
            # daemon a JSON parse and a queue hop per token, CPU time taken from the decode on a small machine
            per_token = greq.stream
            held: list[str] = []
            held_calls: list[dict[str, Any]] = []
            parser = tools.CallParser(greq) if greq.calls_tools else None
            for text, reason in stream(llm, greq, scores):
                calls: list[dict[str, Any]] = []
                if parser is not None and text:
                    text, calls = parser.feed(text)
                n_calls += len(calls)
                if (text or calls) and per_token:
                    send(delta(rid, text, scores, calls))
                else:
                    held.append(text)
                    held_calls += calls
                finish = reason or finish
            if parser is not None:
                text, calls = parser.finish()
                held.append(text)
                held_calls += calls
            if any(held) or held_calls:
                send(delta(rid, "".join(held), scores, held_calls))
    except InvalidGenerationRequest as exc:
        return {"type": "error", "id": rid, "code": exc.code, "message": exc.message, **exc.details}
    except Exception as exc:  # noqa: BLE001 - any failure is this request's; the worker serves the next
        return request_error(rid, exc)
    finally:
        llm.stopping = None
        llm.recorder = None
        llm.heartbeat = None
    end = time.monotonic()
    first = counter.first_token_at or end
    extra = {"logprobs": scores.unsent()} if scores is not None and scores.logprobs else {}
    if n_calls and finish in (None, "stop"):
        finish = "tool_calls"
    return {
        **extra,
        "type": "done",
        "id": rid,
        "finish_reason": "cancelled" if counter.cancelled else finish or "stop",
        "prompt_tokens": counter.prompt_tokens,
        "completion_tokens": counter.sampled,
        "prompt_seconds": round(first - counter.started, 4),
        "gen_seconds": round(end - first, 4),
    }


def wrong_mode(rid: str, what: str) -> dict[str, Any]:
    return {"type": "error", "id": rid, "code": "invalid_request", "message": f"this model {what}", "param": "model"}


def run_embed(llm: Any, req: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """One vector per input, each in its own event (a batch of big vectors must not make one huge line),
    straight from llama-cpp-python's create_embedding; then done with the token count."""
    rid = str(req.get("id", ""))
    if not llm.context_params.embeddings:
        return wrong_mode(rid, "is loaded for generation: load it with --embeddings for POST /v1/embeddings")
    try:
        greq = EmbeddingRequest.from_wire(req)
        started = time.monotonic()
        result = llm.create_embedding(list(greq.input))
    except InvalidGenerationRequest as exc:
        return {"type": "error", "id": rid, "code": exc.code, "message": exc.message, **exc.details}
    except Exception as exc:  # noqa: BLE001 - this request's failure; the worker serves the next
        return request_error(rid, exc)
    for item in result["data"]:
        send({"type": "delta", "id": rid, "index": item["index"], "embedding": item["embedding"], "text": ""})
    tokens = int(result["usage"]["prompt_tokens"])
    seconds = round(time.monotonic() - started, 4)
    return {
        "type": "done",
        "id": rid,
        "finish_reason": "stop",
        "prompt_tokens": tokens,
        "completion_tokens": 0,
        "prompt_seconds": seconds,
        "gen_seconds": 0.0,
    }


def delta(rid: str, text: str, scores: TokenScores | None, calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "delta", "id": rid, "text": text}
    if calls:
        event["tool_calls"] = calls  # [{id, name, arguments (a JSON string)}]
    if scores is not None and scores.logprobs:
        event["logprobs"] = scores.unsent()
    return event


def request_error(rid: str, exc: Exception) -> dict[str, Any]:
    overflow = OVERFLOW_RE.search(str(exc)) if isinstance(exc, ValueError) else None
    if overflow:
        n, m = overflow.groups()
        return {
            "type": "error",
            "id": rid,
            "code": "context_overflow",
            "message": f"prompt is {n} tokens; the context is {m} (load with a larger --ctx or shorten the prompt)",
        }
    log(f"request {rid} failed: {type(exc).__name__}: {exc}")
    return {"type": "error", "id": rid, "code": "generation_failed", "message": f"{type(exc).__name__}: {exc}"}


def serve(llm: Any, inbox: Inbox, out: Output, heartbeat: float = HEARTBEAT_S) -> None:
    while (req := inbox.requests.get()) is not None:
        rid = str(req.get("id", ""))
        try:
            if req.get("op") == "embed":
                out.send(run_embed(llm, req, out.send))
            elif llm.context_params.embeddings:
                out.send(
                    wrong_mode(
                        rid, "is loaded for embeddings (POST /v1/embeddings); load it without --embeddings to generate"
                    )
                )
            else:
                out.send(run_request(llm, req, inbox.cancel_event(rid), out.send, heartbeat))
        finally:
            inbox.finish(rid)


def main(argv: list[str]) -> int:
    out = Output()  # first: nothing may reach the protocol stream but protocol lines
    inbox = Inbox()
    inbox.start()
    config = json.loads(argv[1])
    try:
        llm, info = load(config)
    except Exception as exc:  # noqa: BLE001 - whatever stops the load is reported, then the worker exits
        out.send({"type": "error", "phase": "load", "message": f"{type(exc).__name__}: {exc}"})
        return 1
    inbox.loaded.set()
    try:
        out.send({"type": "ready", **info})
        heartbeat = config.get("heartbeat")
        serve(llm, inbox, out, HEARTBEAT_S if heartbeat is None else float(heartbeat))
    except BrokenPipeError:
        pass  # the daemon is gone: nobody to answer
    finally:
        llm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
