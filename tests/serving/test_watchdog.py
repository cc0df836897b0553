"""The serving watchdogs against real llama.cpp workers (tests/ggufgen.py's tiny model): a worker made to hang
before "ready" is killed after serve.load_timeout; one made to hang mid-generation is killed after
serve.stall_timeout, the request gets a 504 and the model is restarted and answers again. The hang comes from
the test-only hook silnode/serving/hang.py (SILNODE_TEST_HANG_FILE), which the real worker reads."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from silnode.api import make_app
from silnode.config import load_config
from silnode.errors import GenerationStalled, LoadTimeout
from silnode.node import Node
from silnode.serving.hang import ENV as HANG_ENV
from silnode.serving.process import WorkerProcess

pytestmark = pytest.mark.timeout(300)

TINY = "test/tiny"
WATCHDOG_S = 4  # the load and stall timeouts under test; the hang itself lasts an hour


@pytest.fixture
def hang_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "hang"
    monkeypatch.setenv(HANG_ENV, str(path))
    return path


async def until(check, what: str, timeout: float = 120.0) -> None:
    """Poll ``check`` until it is true; a hang guard, not a speed limit."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# ---- WorkerProcess ----------------------------------------------------------------------------------------


async def test_a_worker_that_never_says_ready_is_killed(tiny_gguf, hang_file, tmp_path):
    hang_file.write_text("load")
    w = WorkerProcess("test/model", tiny_gguf, n_ctx=512, n_threads=1, load_timeout=WATCHDOG_S)
    with pytest.raises(LoadTimeout) as info:
        await w.start()
    assert info.value.status == 504 and info.value.code == "load_timeout"
    assert f"within {WATCHDOG_S} s (serve.load_timeout)" in info.value.message
    assert not hang_file.exists()  # the worker did reach the hook: the hang was real, not a slow load
    assert w.returncode == -signal.SIGKILL and gone(w.pid)
    # the hook is one-shot: the same worker started again loads
    again = WorkerProcess("test/model", tiny_gguf, n_ctx=512, n_threads=1, load_timeout=120)
    assert (await again.start())["n_ctx"] == 512
    await again.stop()


async def test_a_generation_that_stalls_is_cancelled_and_the_worker_killed(tiny_gguf, hang_file, tmp_path):
    w = WorkerProcess("test/model", tiny_gguf, n_ctx=512, n_threads=1, stall_timeout=WATCHDOG_S)
    await w.start()
    pid = w.pid
    hang_file.write_text("token 3")
    deltas = 0
    with pytest.raises(GenerationStalled) as info:
        async for event in w.generate({"kind": "completion", "prompt": "a b", "max_tokens": 200, "stream": True}):
            deltas += event["type"] == "delta"
    assert info.value.status == 504 and info.value.code == "generation_stalled"
    assert f"made no progress for {WATCHDOG_S} s (serve.stall_timeout)" in info.value.message
    assert 1 <= deltas < 200  # it ran, then stopped in the middle
    assert w.returncode == -signal.SIGKILL and gone(pid)
    await w.stop()


def test_a_long_non_streamed_request_sends_progress(tiny_gguf):
    """A request that sends its text in one piece at the end still shows the daemon it is alive: a progress
    event per prompt batch and token (heartbeat 0), so the stall watchdog only sees a worker that is stuck."""
    config = {"path": str(tiny_gguf), "n_ctx": 512, "n_threads": 1, "heartbeat": 0}
    request = {"op": "generate", "id": "r1", "kind": "completion", "prompt": "a b", "max_tokens": 20, "stream": False}
    with subprocess.Popen(
        [sys.executable, "-m", "silnode.serving.worker", json.dumps(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        assert json.loads(proc.stdout.readline())["type"] == "ready"  # a request sent earlier ends the load
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        events = []
        while not events or events[-1]["type"] not in ("done", "error"):
            events.append(json.loads(proc.stdout.readline()))
        proc.stdin.write(json.dumps({"op": "shutdown"}) + "\n")
        proc.stdin.flush()
        assert proc.wait(60) == 0
    kinds = [e["type"] for e in events if e.get("id") == "r1"]
    assert kinds[-2:] == ["delta", "done"] and kinds.count("delta") == 1
    # the prompt (one batch), then one evaluation per sampled token but the last (llama.cpp never evaluates it)
    assert kinds[:-2] == ["progress"] * 20


# ---- a served model: 504, then restarted ------------------------------------------------------------------


@pytest.fixture
async def served(clean_env, tiny_gguf, hang_file, aiohttp_client):
    config = load_config(
        clean_env,
        overrides={
            "daemon.port": 0,
            "serve.n_threads": 1,
            "serve.n_ctx": 512,
            "serve.load_timeout": WATCHDOG_S,
            "serve.stall_timeout": WATCHDOG_S,
        },
    )
    node = Node(config)
    await node.start()
    task = node.models.import_file(str(tiny_gguf), TINY, license="mit")
    await node.tasks.wait(task)
    assert task.state == "done", task.error
    client = await aiohttp_client(make_app(node))
    client.node = node
    client.auth = {"Authorization": f"Bearer {config.token_file.read_text().strip()}"}
    yield client
    await node.stop()


async def test_a_load_that_hangs_answers_504_and_the_next_load_works(served, hang_file):
    hang_file.write_text("load")
    r = await served.post("/api/v1/serving/load", json={"name": TINY}, headers=served.auth)
    body = await r.json()
    assert r.status == 504 and body["code"] == "load_timeout", body
    assert "serve.load_timeout" in body["error"]
    assert not hang_file.exists()
    r = await served.post("/api/v1/serving/load", json={"name": TINY}, headers=served.auth)
    assert r.status == 200 and (await r.json())["model"]["state"] == "ready"


async def test_a_stalled_request_gets_504_and_the_model_restarts(served, hang_file):
    node = served.node
    await node.serving.load(TINY)
    model = node.serving.get(TINY)
    pid = model.describe()["pid"]
    hang_file.write_text("token 3")
    r = await served.post("/v1/completions", json={"model": TINY, "prompt": "a b", "max_tokens": 200})
    body = await r.json()
    assert r.status == 504, body
    assert body["error"]["code"] == "generation_stalled" and "serve.stall_timeout" in body["error"]["message"]
    await until(lambda: model.state == "ready" and model.describe()["pid"] not in (None, pid), "the restart")
    assert gone(pid)
    d = model.describe()
    assert (d["restarts"], d["stalled"]) == (1, 1)
    r = await served.post("/v1/completions", json={"model": TINY, "prompt": "a b", "max_tokens": 5})
    body = await r.json()
    assert r.status == 200 and body["usage"]["completion_tokens"] == 5, body
    metrics = await (await served.get("/metrics")).text()
    assert f'silnode_model_requests_stalled_total{{model="{TINY}"}} 1' in metrics
