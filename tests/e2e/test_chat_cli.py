"""`silnode chat` as a user runs it: --system reaches the model as a system message and --complete continues
text through /v1/completions. Each reply (greedy, temperature 0) must equal the one the same request gets
straight from /v1, and the prompt tokens the model counted for the CLI's request must equal that request's:
a random-weight model may answer the same with or without a system turn, but it cannot count the same
prompt, so the test fails if a flag is dropped or sent as something else."""

from __future__ import annotations

import json
import urllib.request

import pytest
from daemons import run_cli, start_daemon, stop_daemon

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PROMPT = "the water of the world"
PARAMS = {"max_tokens": 12, "temperature": 0}


@pytest.fixture
def served(clean_env, tiny_gguf):
    d = start_daemon(clean_env, env={"SILNODE_SERVE__N_THREADS": "1"})
    try:
        run_cli(clean_env, "import", str(tiny_gguf), "--name", "test/tiny", "--license", "mit")
        run_cli(clean_env, "serve", "test/tiny")
        yield d
    finally:
        stop_daemon(d)


def prompt_tokens(home) -> int:
    models = json.loads(run_cli(home, "models", "loaded", "--json").stdout)["models"]
    return next(m for m in models if m["name"] == "test/tiny")["prompt_tokens"]


def chat(home, *args: str) -> tuple[str, int]:
    """(the reply, the prompt tokens the model counted for it)"""
    before = prompt_tokens(home)
    out = run_cli(home, "chat", "test/tiny", PROMPT, "--max-tokens", "12", "--temperature", "0", "--json", *args)
    return json.loads(out.stdout)["text"], prompt_tokens(home) - before


def v1(d, path: str, body: dict) -> tuple[dict, int]:
    req = urllib.request.Request(
        f"{d.url}{path}",
        data=json.dumps({"model": "test/tiny", **PARAMS, **body}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        data = json.loads(r.read())
    return data["choices"][0], data["usage"]["prompt_tokens"]


def test_chat_system_and_complete_send_what_they_say(served, clean_env):
    d = served
    plain, n_plain = chat(clean_env)
    choice, n = v1(d, "/v1/chat/completions", {"messages": [{"role": "user", "content": PROMPT}]})
    assert (plain, n_plain) == (choice["message"]["content"], n)

    system = "you answer in one word"
    with_system, n_system = chat(clean_env, "--system", system)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": PROMPT}]
    choice, n = v1(d, "/v1/chat/completions", {"messages": messages})
    assert (with_system, n_system) == (choice["message"]["content"], n)
    assert n_system > n_plain  # the system turn was in the prompt

    completed, n_complete = chat(clean_env, "--complete")
    choice, n = v1(d, "/v1/completions", {"prompt": PROMPT})
    assert (completed, n_complete) == (choice["text"], n)
    assert n_complete < n_plain  # the bare text, without the chat template around it
