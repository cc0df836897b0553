"""The model worker (silnode.serving.worker) and its asyncio handle (silnode.serving.process.WorkerProcess),
against real llama.cpp: the tiny generated GGUFs (random weights: gibberish that always runs to max_tokens)
and the real Gemma-3-270M base model. No mocks; every test starts its own worker subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import llama_cpp
import pytest
from ggufgen import make_gguf

from silnode.errors import (
    BadRequest,
    ContextOverflow,
    InvalidGenerationRequest,
    ModelLoadError,
    RequestFailed,
    WorkerCrashed,
)
from silnode.serving.process import WorkerProcess

LONG = 2000  # max_tokens for runs that a test cuts short; the tiny model never stops by itself


@pytest.fixture(scope="session")
def no_template_gguf(gguf_dir: Path) -> Path:
    return make_gguf(gguf_dir / "tiny-no-template.gguf", chat_template=False)


async def started(path: Path, tmp_path: Path, **kwargs: Any) -> WorkerProcess:
    kwargs.setdefault("n_ctx", 2048)
    w = WorkerProcess("test/model", path, n_threads=1, log_path=tmp_path / "worker.log", **kwargs)
    await w.start()
    return w


@pytest.fixture
async def worker(tiny_gguf: Path, tmp_path: Path):
    w = await started(tiny_gguf, tmp_path)
    yield w
    await w.stop()


async def collect(w: WorkerProcess, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(the concatenated deltas, the done event)."""
    text, done = "", None
    async for event in w.generate(request):
        if event["type"] == "delta":
            assert done is None, "a delta after done"
            text += event["text"]
        else:
            done = event
    assert done is not None and done["type"] == "done"
    return text, done


def completion(prompt: str = "hello world", **kw: Any) -> dict[str, Any]:
    return {"kind": "completion", "prompt": prompt, **kw}


def chat(content: str = "hello", **kw: Any) -> dict[str, Any]:
    return {"kind": "chat", "messages": [{"role": "user", "content": content}], **kw}


# ---- 1. ready info and a completion ---------------------------------------------------------------------


async def test_ready_info_then_a_completion_runs_to_max_tokens(worker: WorkerProcess):
    info = worker.info
    assert worker.alive and info["pid"] == worker.pid
    assert (info["n_ctx"], info["n_ctx_train"], info["n_vocab"]) == (2048, 2048, 614)
    assert info["chat_template"] is True and info["n_threads"] == 1
    gpu = llama_cpp.llama_supports_gpu_offload()
    assert info["gpu_offload"] is gpu and info["flash_attn"] is gpu and info["n_gpu_layers"] == (-1 if gpu else 0)
    assert info["load_seconds"] >= 0 and info["warmup_seconds"] >= 0

    text, done = await collect(worker, completion(max_tokens=8, id="r1"))
    assert text.strip()
    assert done["id"] == "r1" and done["finish_reason"] == "length"
    assert done["completion_tokens"] == 8
    assert done["prompt_tokens"] == 3  # <s> hello world
    assert done["prompt_seconds"] >= 0 and done["gen_seconds"] >= 0
    assert worker.last_done == done


async def test_a_split_model_loads_from_its_first_part(split_parts: list[Path], tmp_path: Path):
    w = await started(split_parts[0], tmp_path, n_ctx=256)
    try:
        text, done = await collect(w, completion(max_tokens=4))
        assert text and done["completion_tokens"] == 4
    finally:
        await w.stop()


# ---- 2. chat: the GGUF's template, or the fallback ------------------------------------------------------


async def test_chat_uses_the_ggufs_template(worker: WorkerProcess):
    assert worker.info["chat_format"] == "chat_template.default"
    text, done = await collect(worker, chat(max_tokens=5))
    assert text.strip() and done["finish_reason"] == "length" and done["completion_tokens"] == 5
    # the ChatML wrapping (<|im_start|>user ... <|im_start|>assistant) makes the prompt longer than the text
    assert done["prompt_tokens"] > 8


async def test_chat_falls_back_to_chatml_without_a_template(no_template_gguf: Path, tmp_path: Path):
    w = await started(no_template_gguf, tmp_path)
    try:
        assert w.info["chat_template"] is False and w.info["chat_format"] == "chatml"
        text, done = await collect(w, chat(max_tokens=5))
        assert text.strip() and done["completion_tokens"] == 5 and done["prompt_tokens"] > 8
    finally:
        await w.stop()


# ---- 3. seeds and stop sequences ------------------------------------------------------------------------


async def test_the_same_seed_gives_the_same_text(worker: WorkerProcess):
    req = completion("the a an of", max_tokens=32, temperature=1.0, seed=42)
    first, _ = await collect(worker, req)
    await collect(worker, completion("the a an of to", max_tokens=8))  # leaves a shared prefix in the KV cache
    again, _ = await collect(worker, req)
    chat_req = chat(max_tokens=16, temperature=1.0, seed=7)
    assert first == again
    assert (await collect(worker, chat_req))[0] == (await collect(worker, chat_req))[0]
    unseeded = {**req, "seed": None}
    assert (await collect(worker, unseeded))[0] != (await collect(worker, unseeded))[0]


async def test_stop_sequences_end_the_text_before_them(gemma_gguf: Path, tmp_path: Path):
    w = await started(gemma_gguf, tmp_path, n_ctx=256)
    try:
        text, done = await collect(w, completion("1, 2, 3, 4,", max_tokens=16, temperature=0.0, stop=[","]))
        assert done["finish_reason"] == "stop"
        assert "," not in text and text.strip()
        assert 0 < done["completion_tokens"] < 16
    finally:
        await w.stop()


# ---- 4. cancel --------------------------------------------------------------------------------------------


async def test_cancel_mid_stream_then_the_next_request_runs(worker: WorkerProcess):
    deltas, done = 0, None
    async for event in worker.generate(completion(max_tokens=LONG)):
        if event["type"] == "delta":
            deltas += 1
            if deltas == 3:
                await worker.cancel()
        else:
            done = event
    assert done is not None and done["finish_reason"] == "cancelled"
    assert 3 <= done["completion_tokens"] < LONG
    text, done = await collect(worker, completion(max_tokens=6))
    assert text and done["finish_reason"] == "length" and done["completion_tokens"] == 6


async def test_closing_the_iterator_early_cancels_the_request(worker: WorkerProcess):
    gen = worker.generate(completion(max_tokens=LONG, id="early"))
    async for event in gen:
        assert event["type"] == "delta"
        break
    await gen.aclose()  # drains: the worker has finished the request when this returns
    assert worker.last_done["id"] == "early" and worker.last_done["finish_reason"] == "cancelled"
    assert worker.last_done["completion_tokens"] < LONG
    _, done = await collect(worker, completion(max_tokens=4))
    assert done["completion_tokens"] == 4


async def test_a_cancelled_consumer_task_cancels_the_request(worker: WorkerProcess):
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in worker.generate(chat(max_tokens=LONG, id="gone")):
            first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()  # what aiohttp does to a handler whose client hung up
    with pytest.raises(asyncio.CancelledError):
        await task
    assert worker.last_done["id"] == "gone" and worker.last_done["finish_reason"] == "cancelled"
    _, done = await collect(worker, chat(max_tokens=3))
    assert done["completion_tokens"] == 3


# ---- 5. request errors leave the worker running -----------------------------------------------------------


async def test_context_overflow_is_a_400_and_the_worker_carries_on(tiny_gguf: Path, tmp_path: Path):
    w = await started(tiny_gguf, tmp_path, n_ctx=64)
    try:
        assert w.info["n_ctx"] == 256  # llama.cpp pads the context to a multiple of 256
        for req in (completion("hello " * 400), chat("hello " * 400)):
            with pytest.raises(ContextOverflow) as err:
                await collect(w, req)
            assert isinstance(err.value, RequestFailed) and isinstance(err.value, BadRequest)
            assert err.value.code == "context_overflow" and err.value.status == 400
            assert re.fullmatch(
                r"prompt is 4\d\d tokens; the context is 256 \(load with a larger --ctx or "
                r"shorten the prompt\)",
                str(err.value),
            )
        assert w.alive
        _, done = await collect(w, completion(max_tokens=4))
        assert done["completion_tokens"] == 4
        # a prompt that fits, with max_tokens past the end of the context, stops at the context
        _, done = await collect(w, completion("hello " * 200, max_tokens=LONG))
        assert done["finish_reason"] == "length" and done["prompt_tokens"] + done["completion_tokens"] == 256
    finally:
        await w.stop()


async def test_an_invalid_request_is_rejected(worker: WorkerProcess):
    with pytest.raises(InvalidGenerationRequest, match="'kind' must be"):
        await collect(worker, {"kind": "embedding", "prompt": "x"})
    with pytest.raises(InvalidGenerationRequest, match="'messages'"):
        await collect(worker, {"kind": "chat", "messages": []})
    _, done = await collect(worker, completion(max_tokens=2))
    assert done["completion_tokens"] == 2


# ---- 6. load failure --------------------------------------------------------------------------------------


async def test_a_truncated_gguf_fails_to_load_with_llama_cpps_reason(tiny_gguf: Path, tmp_path: Path):
    broken = tmp_path / "truncated.gguf"
    data = tiny_gguf.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    w = WorkerProcess("test/broken", broken, n_ctx=256, log_path=tmp_path / "broken.log")
    with pytest.raises(ModelLoadError) as err:
        await w.start()
    message = str(err.value)
    assert message.startswith("cannot load test/broken (truncated.gguf): ")
    assert "model is corrupted or incomplete" in message  # llama.cpp: "... data is not within the file bounds, ..."
    assert "\n" not in message and str(tmp_path / "broken.log") in err.value.hint
    assert err.value.code == "model_load_failed" and err.value.status == 500
    assert not w.alive and w.returncode == 1
    await w.stop()  # a no-op now


# ---- 7. crash ---------------------------------------------------------------------------------------------


async def test_a_worker_killed_by_sigill_names_the_cause_and_the_fix(tiny_gguf: Path, tmp_path: Path):
    # what a llama.cpp build for another CPU does at its first decode (README, "The llama.cpp build")
    w = await started(tiny_gguf, tmp_path)
    with pytest.raises(WorkerCrashed) as err:
        async for _ in w.generate(completion(max_tokens=LONG)):
            os.kill(w.pid, signal.SIGILL)
    assert "killed by SIGILL during the request" in str(err.value)
    assert "CPU instructions this machine refuses" in str(err.value)
    assert "make install" in err.value.hint and "GGML_NATIVE=OFF" in err.value.hint
    assert w.returncode == -signal.SIGILL
    await w.stop()


async def test_a_killed_worker_raises_worker_crashed_and_a_new_one_works(tiny_gguf: Path, tmp_path: Path):
    w = await started(tiny_gguf, tmp_path)
    with pytest.raises(WorkerCrashed) as err:
        async for _ in w.generate(completion(max_tokens=LONG)):
            os.kill(w.pid, signal.SIGKILL)
    assert "killed by SIGKILL during the request" in str(err.value)
    assert err.value.code == "worker_crashed" and err.value.status == 503
    assert not w.alive and w.returncode == -signal.SIGKILL
    with pytest.raises(WorkerCrashed, match="SIGKILL before the request"):
        await collect(w, completion())
    await w.stop()

    again = await started(tiny_gguf, tmp_path)
    try:
        _, done = await collect(again, completion(max_tokens=3))
        assert done["completion_tokens"] == 3
    finally:
        await again.stop()


# ---- 8. stop ----------------------------------------------------------------------------------------------


async def test_stop_reaps_the_worker_and_is_idempotent(tiny_gguf: Path, tmp_path: Path):
    w = await started(tiny_gguf, tmp_path)
    pid = w.pid
    await w.stop()
    assert not w.alive and w.returncode == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not a zombie
    await w.stop()
    with pytest.raises(WorkerCrashed, match="was stopped"):
        await collect(w, completion())
    log = (tmp_path / "worker.log").read_text()
    assert "llama_model_loader" in log  # llama.cpp's verbose load output lands in the log
    tail = w.stderr_tail()
    assert 0 < len(tail) <= 200 and tail == log.splitlines()[-len(tail) :]


async def test_stop_during_a_request_cancels_it(worker: WorkerProcess):
    stopping = None
    async for event in worker.generate(completion(max_tokens=LONG)):
        if stopping is None:
            stopping = asyncio.create_task(worker.stop())
        done = event
    assert done["type"] == "done" and done["finish_reason"] == "cancelled"
    await stopping
    assert worker.returncode == 0


async def test_a_worker_that_does_not_answer_is_killed(tiny_gguf: Path, tmp_path: Path):
    w = await started(tiny_gguf, tmp_path)
    os.kill(w.pid, signal.SIGSTOP)  # a hung worker: it reads no shutdown message
    await w.stop(timeout=0.2)
    assert w.returncode == -signal.SIGKILL


# ---- the protocol itself ----------------------------------------------------------------------------------


def test_the_worker_exits_when_its_stdin_closes(tiny_gguf: Path):
    """EOF on stdin means the daemon died: cancel the running generation and exit; stdout has only JSON."""
    config = json.dumps({"path": str(tiny_gguf), "n_ctx": 2048, "n_threads": 1})
    with subprocess.Popen(
        [sys.executable, "-m", "silnode.serving.worker", config],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as proc:
        assert json.loads(proc.stdout.readline())["type"] == "ready"
        request = {"op": "generate", "id": "x", "kind": "completion", "prompt": "hi", "max_tokens": LONG}
        proc.stdin.write(json.dumps(request).encode() + b"\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["type"] == "delta"
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        events = [json.loads(line) for line in proc.stdout.read().splitlines()]
    assert events[-1]["type"] == "done" and events[-1]["finish_reason"] == "cancelled"
    assert events[-1]["completion_tokens"] < LONG


# ---- 9. a real model --------------------------------------------------------------------------------------


async def test_gemma_writes_readable_text(gemma_gguf: Path, tmp_path: Path):
    w = await started(gemma_gguf, tmp_path, n_ctx=256)
    try:
        assert w.info["chat_template"] is False and w.info["chat_format"] == "chatml"  # a base model
        text, done = await collect(w, completion("The capital of France is", max_tokens=8, temperature=0.0))
        assert done["finish_reason"] in ("length", "stop") and done["completion_tokens"] > 0
        assert text.strip()
        letters = sum(c.isascii() and (c.isalpha() or c.isspace()) for c in text)
        assert letters >= 0.7 * len(text), text
    finally:
        await w.stop()
