"""The OpenAI-compatible API on the daemon's app, with real llama.cpp workers: the generated tiny model (fast,
always runs to max_tokens) and Gemma-3-270M (readable text, ~60 tokens/s on CPU: slow enough to hold a
worker busy while a test queues, disconnects or kills)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest

from silnode.api import make_app
from silnode.config import load_config
from silnode.node import Node

pytestmark = pytest.mark.timeout(240)

TINY, GEMMA = "test/tiny", "test/gemma"


async def _import(node: Node, path: Path, name: str) -> None:
    task = node.models.import_file(str(path), name, license="mit")
    await node.tasks.wait(task)
    assert task.state == "done", task.error


@pytest.fixture
async def served(clean_env, tiny_gguf, gemma_gguf, aiohttp_client):
    """A node serving the tiny model and Gemma, with a queue of 2 per model; `served.node` is the Node."""
    config = load_config(clean_env, overrides={"daemon.port": 0, "serve.queue_size": 2, "serve.n_threads": 2})
    node = Node(config)
    await node.start()
    await _import(node, tiny_gguf, TINY)
    await _import(node, gemma_gguf, GEMMA)
    await node.serving.load(TINY)
    await node.serving.load(GEMMA)
    client = await aiohttp_client(make_app(node))
    client.node = node
    yield client
    await node.stop()


def counters(served, name: str) -> dict:
    return served.node.serving.get(name).describe()


async def sse(resp) -> list[dict]:
    """All data chunks of an SSE response, up to [DONE] (which must come)."""
    chunks, done = [], False
    async for raw in resp.content:
        line = raw.decode().strip()
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            done = True
            break
        chunks.append(json.loads(line[6:]))
    assert done, chunks[-3:]
    return chunks


# ------------------------------------------------------------------------------------ requests


async def test_models_chat_and_completion_with_usage(served):
    models = await (await served.get("/v1/models")).json()
    assert models["object"] == "list"
    by_id = {m["id"]: m for m in models["data"]}
    assert set(by_id) == {TINY, GEMMA} and by_id[TINY]["chat_template"] is True
    assert by_id[GEMMA]["chat_template"] is False  # a base model: presented for completions

    r = await served.post(
        "/v1/chat/completions",
        json={"model": TINY, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 12, "seed": 1},
    )
    body = await r.json()
    assert r.status == 200, body
    assert body["object"] == "chat.completion" and body["model"] == TINY
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 12 and body["usage"]["prompt_tokens"] > 0
    assert body["usage"]["total_tokens"] == 12 + body["usage"]["prompt_tokens"]

    r = await served.post("/v1/completions", json={"model": TINY, "prompt": "a b c", "max_tokens": 7})
    body = await r.json()
    assert r.status == 200 and body["object"] == "text_completion"
    assert body["usage"]["completion_tokens"] == 7 and body["choices"][0]["finish_reason"] == "length"
    assert counters(served, TINY)["requests"] == 2 and counters(served, TINY)["completion_tokens"] == 19


async def test_gemma_completion_reads_like_text_and_honours_stop(served):
    r = await served.post(
        "/v1/completions",
        json={"model": GEMMA, "prompt": "The capital of France is", "max_tokens": 24, "temperature": 0},
    )
    body = await r.json()
    text = body["choices"][0]["text"]
    letters = sum(c.isalpha() or c.isspace() for c in text)
    assert text.strip() and letters >= 0.7 * len(text), text
    # greedy is deterministic within a run
    again = await (
        await served.post(
            "/v1/completions",
            json={"model": GEMMA, "prompt": "The capital of France is", "max_tokens": 24, "temperature": 0},
        )
    ).json()
    assert again["choices"][0]["text"] == text
    # a stop sequence taken from the greedy text itself ends the reply just before it
    word = text.split()[1] if len(text.split()) > 1 else text.split()[0]
    cut = await (
        await served.post(
            "/v1/completions",
            json={
                "model": GEMMA,
                "prompt": "The capital of France is",
                "max_tokens": 24,
                "temperature": 0,
                "stop": [word],
            },
        )
    ).json()
    assert cut["choices"][0]["finish_reason"] == "stop" and word not in cut["choices"][0]["text"]
    assert text.startswith(cut["choices"][0]["text"])


async def test_streaming_chat_and_completion(served):
    r = await served.post(
        "/v1/chat/completions",
        json={
            "model": TINY,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 9,
            "seed": 3,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    chunks = await sse(r)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finals) == 1 and finals[0]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 9
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])

    whole = await (
        await served.post(
            "/v1/chat/completions",
            json={
                "model": TINY,
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 9,
                "seed": 3,
                "temperature": 0,
            },
        )
    ).json()
    streamed = await sse(
        await served.post(
            "/v1/chat/completions",
            json={
                "model": TINY,
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 9,
                "seed": 3,
                "temperature": 0,
                "stream": True,
            },
        )
    )
    assert (
        "".join(c["choices"][0]["delta"].get("content") or "" for c in streamed if c["choices"])
        == whole["choices"][0]["message"]["content"]
    )
    assert text == whole["choices"][0]["message"]["content"]  # the first stream said the same, usage and all

    r = await served.post("/v1/completions", json={"model": TINY, "prompt": "x", "max_tokens": 5, "stream": True})
    chunks = await sse(r)
    assert all(c["object"] == "text_completion" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_openai_python_client(served):
    import openai

    base = str(served.make_url("/v1"))

    def use_client() -> tuple:
        client = openai.OpenAI(base_url=base, api_key="unused-on-loopback")
        ids = [m.id for m in client.models.list().data]
        chat = client.chat.completions.create(model=TINY, messages=[{"role": "user", "content": "hi"}], max_tokens=6)
        stream = client.chat.completions.create(
            model=TINY, messages=[{"role": "user", "content": "hi"}], max_tokens=6, stream=True
        )
        pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
        comp = client.completions.create(model=GEMMA, prompt="Once upon a time", max_tokens=8, temperature=0)
        try:
            client.chat.completions.create(model="no/such", messages=[{"role": "user", "content": "x"}])
        except openai.NotFoundError as exc:
            missing = exc
        return ids, chat, pieces, comp, missing

    ids, chat, pieces, comp, missing = await asyncio.to_thread(use_client)
    assert set(ids) == {TINY, GEMMA}
    assert chat.usage.completion_tokens == 6 and chat.choices[0].finish_reason == "length"
    assert pieces and comp.choices[0].text.strip()
    assert missing.status_code == 404 and "not loaded" in missing.message


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "payload,status,code",
    [
        (b"{not json", 400, "bad_request"),
        (b"[1, 2]", 400, "bad_request"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), 400, "bad_request"),
        (json.dumps({"model": TINY, "messages": []}).encode(), 400, "bad_request"),
        (json.dumps({"model": TINY, "messages": [{"role": "wizard", "content": "x"}]}).encode(), 400, "bad_request"),
        (
            json.dumps({"model": TINY, "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}).encode(),
            400,
            "bad_request",
        ),
        (
            json.dumps({"model": TINY, "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}).encode(),
            400,
            "bad_request",
        ),
        (
            json.dumps({"model": TINY, "messages": [{"role": "user", "content": "x"}], "n": 99}).encode(),
            400,
            "bad_request",
        ),
        (
            json.dumps({"model": TINY, "messages": [{"role": "user", "content": "x"}], "wat": 1}).encode(),
            400,
            "bad_request",
        ),
        (
            json.dumps({"model": "no/such", "messages": [{"role": "user", "content": "x"}]}).encode(),
            404,
            "model_not_found",
        ),
    ],
)
async def test_bad_requests_get_openai_errors(served, payload, status, code):
    r = await served.post("/v1/chat/completions", data=payload, headers={"Content-Type": "application/json"})
    body = await r.json()
    assert r.status == status, body
    err = body["error"]
    assert err["code"] == code and err["message"] and err["type"] == "invalid_request_error"


async def test_prompt_over_the_context_is_a_clear_400(served):
    n_ctx = counters(served, TINY)["n_ctx"]
    r = await served.post("/v1/completions", json={"model": TINY, "prompt": "a b c d " * n_ctx, "max_tokens": 4})
    body = await r.json()
    assert r.status == 400 and body["error"]["code"] == "context_length_exceeded", body
    assert str(n_ctx) in body["error"]["message"]
    ok = await served.post("/v1/completions", json={"model": TINY, "prompt": "a", "max_tokens": 2})
    assert ok.status == 200  # the worker lives on


# ------------------------------------------------------------------------------------ queueing


async def until(check, what: str, timeout: float = 120.0) -> None:
    """Poll ``check`` until it is true; a hang guard, not a speed limit: fail with ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.01)


async def _hold_busy(served, max_tokens: int = 400):
    """Start a long Gemma stream and return once its first token is out: the worker is busy for seconds.
    Seeded, so an early end of text cannot make it short on one run and long on the next."""
    resp = await served.post(
        "/v1/completions",
        json={"model": GEMMA, "prompt": "Once upon a time", "max_tokens": max_tokens, "stream": True, "seed": 11},
    )
    assert resp.status == 200
    async for raw in resp.content:
        if raw.startswith(b"data: "):
            return resp
    raise AssertionError("no token")


async def _wait_queue(served, name: str, depth: int) -> None:
    await until(lambda: counters(served, name)["queue_depth"] >= depth, f"{depth} requests queued on {name}")


async def test_queue_full_is_429_with_retry_after(served):
    busy = await _hold_busy(served)
    waiting = [
        asyncio.create_task(served.post("/v1/completions", json={"model": GEMMA, "prompt": "x", "max_tokens": 1}))
        for _ in range(2)
    ]
    await _wait_queue(served, GEMMA, 2)
    r = await served.post("/v1/completions", json={"model": GEMMA, "prompt": "x", "max_tokens": 1})
    body = await r.json()
    assert r.status == 429 and body["error"]["type"] == "rate_limit_error", body
    assert int(r.headers["Retry-After"]) >= 1
    assert counters(served, GEMMA)["rejected"] == 1
    busy.close()
    for t in waiting:
        assert (await t).status == 200


async def test_fair_queue_serves_a_lone_client_before_a_busy_clients_fifth(served):
    busy = await _hold_busy(served)  # client A's requests and B's must all wait behind this one
    finished: list[str] = []

    async def ask(user: str, i: int) -> None:
        r = await served.post("/v1/completions", json={"model": GEMMA, "prompt": "x", "max_tokens": 2, "user": user})
        assert r.status == 200, await r.text()
        finished.append(f"{user}{i}")

    served.node.serving.get(GEMMA).queue.maxsize = 10
    a = [asyncio.create_task(ask("a", i)) for i in range(1, 6)]
    await _wait_queue(served, GEMMA, 5)
    b = asyncio.create_task(ask("b", 1))
    await _wait_queue(served, GEMMA, 6)
    busy.close()
    await asyncio.gather(*a, b)
    assert finished.index("b1") < finished.index("a5"), finished
    assert finished.index("b1") <= 2, finished  # after at most one more of A's: a1, then b1 (round-robin)


async def test_client_disconnect_stops_generation(served):
    before = counters(served, GEMMA)
    resp = await served.post(
        "/v1/completions",
        json={"model": GEMMA, "prompt": "Once upon a time", "max_tokens": 500, "stream": True, "seed": 11},
    )
    async for raw in resp.content:
        if raw.startswith(b"data: "):
            break
    resp.close()  # the client hangs up after the first token
    await until(lambda: counters(served, GEMMA)["cancelled"] > before["cancelled"], "the cancel to be counted")
    after = counters(served, GEMMA)
    generated = after["completion_tokens"] - before["completion_tokens"]
    assert 1 <= generated < 500, generated
    r = await served.post("/v1/completions", json={"model": GEMMA, "prompt": "x", "max_tokens": 2})
    assert r.status == 200


async def test_disconnect_while_waiting_leaves_the_queue(served):
    busy = await _hold_busy(served)
    waiter = asyncio.create_task(served.post("/v1/completions", json={"model": GEMMA, "prompt": "x", "max_tokens": 1}))
    await _wait_queue(served, GEMMA, 1)
    waiter.cancel()  # the client gives up while its request waits
    await asyncio.gather(waiter, return_exceptions=True)
    await until(lambda: not counters(served, GEMMA)["queue_depth"], "the queue to empty")
    assert counters(served, GEMMA)["cancelled"] >= 1
    busy.close()


async def test_unload_while_requests_wait(served):
    busy = await _hold_busy(served)
    waiting = [
        asyncio.create_task(served.post("/v1/completions", json={"model": GEMMA, "prompt": "x", "max_tokens": 1}))
        for _ in range(2)
    ]
    await _wait_queue(served, GEMMA, 2)
    pid = counters(served, GEMMA)["pid"]
    r = await served.post(
        "/api/v1/serving/unload",
        json={"name": GEMMA},
        headers={"Authorization": f"Bearer {served.node.config.token_file.read_text().strip()}"},
    )
    assert r.status == 200
    for t in waiting:
        resp = await t
        body = await resp.json()
        assert resp.status == 503 and "unloaded" in body["error"]["message"]
    busy.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the worker is gone, its memory freed
    models = await (await served.get("/v1/models")).json()
    assert [m["id"] for m in models["data"]] == [TINY]


async def test_worker_killed_mid_request_is_restarted(served):
    pid = counters(served, GEMMA)["pid"]
    resp = await _hold_busy(served)
    os.kill(pid, signal.SIGKILL)
    rest = b"".join([raw async for raw in resp.content])
    assert b"worker_crashed" in rest and b"SIGKILL" in rest  # reported in-band: the headers were out
    r = await served.post("/v1/completions", json={"model": GEMMA, "prompt": "Hello", "max_tokens": 3})
    body = await r.json()
    assert r.status == 200 and body["usage"]["completion_tokens"] == 3  # served by the new worker
    c = counters(served, GEMMA)
    assert c["restarts"] == 1 and c["state"] == "ready" and c["pid"] != pid and c["failed"] == 1
    # the other model never noticed
    ok = await served.post("/v1/completions", json={"model": TINY, "prompt": "a", "max_tokens": 2})
    assert ok.status == 200


async def test_metrics_and_status_counters(served):
    await served.post("/v1/completions", json={"model": TINY, "prompt": "a", "max_tokens": 4})
    text = await (await served.get("/metrics")).text()
    assert f'silnode_model_completion_tokens_total{{model="{TINY}"}} 4' in text
    assert f'silnode_model_up{{model="{GEMMA}"}} 1' in text
    assert "# TYPE silnode_model_requests_total counter" in text
    status = await (await served.get("/api/v1/status")).json()
    tiny = status["serving"][TINY]
    assert tiny["requests"] == 1 and tiny["completion_tokens"] == 4 and tiny["tokens_per_second"] > 0
    assert tiny["queue_depth"] == 0 and tiny["restarts"] == 0


async def test_load_refused_when_it_wont_fit_unless_forced(clean_env, tiny_gguf):
    config = load_config(clean_env, overrides={"daemon.port": 0, "hardware.ram_bytes": 32 << 20})
    node = Node(config)
    await node.start()
    try:
        await _import(node, tiny_gguf, TINY)
        from silnode.errors import DoesNotFit

        with pytest.raises(DoesNotFit) as exc:
            await node.serving.load(TINY)
        assert "needs" in str(exc.value) and "free on CPU" in str(exc.value)
        assert node.serving.list() == []
        m = await node.serving.load(TINY, force=True)
        assert m["state"] == "ready"
    finally:
        await node.stop()


async def test_load_error_carries_llama_cpp_reason_and_crash_limit_leaves_model_down(
    clean_env, tiny_gguf, aiohttp_client, tmp_path
):
    config = load_config(clean_env, overrides={"daemon.port": 0, "serve.restart_limit": 0})
    node = Node(config)
    await node.start()
    try:
        client = await aiohttp_client(make_app(node))
        auth = {"Authorization": f"Bearer {config.token_file.read_text().strip()}"}
        # a file cut short: our own header reader says so before a worker starts
        task = node.models.import_file(str(tiny_gguf), "test/cut", license="mit", link=False)
        await node.tasks.wait(task)
        stored = node.store.model_dir("test/cut") / tiny_gguf.name
        with open(stored, "r+b") as fh:
            fh.truncate(stored.stat().st_size // 2)
        r = await client.post("/api/v1/serving/load", json={"name": "test/cut"}, headers=auth)
        body = await r.json()
        assert r.status == 400 and body["code"] == "invalid_gguf" and "truncated" in body["error"], body
        # a well-formed GGUF that llama.cpp refuses (an architecture it does not know): its own reason
        odd = tmp_path / "odd.gguf"
        odd.write_bytes(tiny_gguf.read_bytes().replace(b"llama", b"llamx"))
        await _import(node, odd, "test/odd")
        r = await client.post("/api/v1/serving/load", json={"name": "test/odd"}, headers=auth)
        body = await r.json()
        assert r.status == 500 and body["code"] == "model_load_failed", body
        assert "unknown model architecture" in body["error"] and "llamx" in body["error"]
        assert node.serving.list() == []  # an interactive load that failed leaves nothing behind

        # restart_limit 0: the first crash leaves the model down, with the reason, until it is loaded again
        await _import(node, tiny_gguf, TINY)
        await node.serving.load(TINY)
        os.kill(node.serving.get(TINY).describe()["pid"], signal.SIGKILL)
        r = await client.post("/v1/completions", json={"model": TINY, "prompt": "a", "max_tokens": 2})
        assert r.status in (503, 200)  # 503 when the crash is found by this request
        await until(lambda: node.serving.get(TINY).state == "failed", "the model to be left down")
        desc = node.serving.get(TINY).describe()
        assert "left down" in desc["error"] and desc["pid"] is None
        r = await client.post("/v1/completions", json={"model": TINY, "prompt": "a", "max_tokens": 2})
        body = await r.json()
        assert (
            r.status == 503
            and body["error"]["code"] == "model_unavailable"
            and "models load" in body["error"]["message"]
        )
        r = await client.post("/api/v1/serving/load", json={"name": TINY}, headers=auth)
        assert r.status == 200 and (await r.json())["model"]["state"] == "ready"
        r = await client.post("/v1/completions", json={"model": TINY, "prompt": "a", "max_tokens": 2})
        assert r.status == 200
    finally:
        await node.stop()


async def test_loaded_models_count_against_the_memory_budget(clean_env, gemma_gguf):
    """Under a 2 GiB cap one Gemma fits and a second does not: the first one's need is held."""
    config = load_config(clean_env, overrides={"daemon.port": 0, "hardware.ram_bytes": 2 << 30})
    node = Node(config)
    await node.start()
    try:
        await _import(node, gemma_gguf, "test/gemma-a")
        await _import(node, gemma_gguf, "test/gemma-b")
        await node.serving.load("test/gemma-a")
        from silnode.errors import DoesNotFit

        with pytest.raises(DoesNotFit) as exc:
            await node.serving.load("test/gemma-b")
        assert "for the models already loaded" in str(exc.value)
        await node.serving.unload("test/gemma-a")
        assert (await node.serving.load("test/gemma-b"))["state"] == "ready"  # the budget came back
    finally:
        await node.stop()
