"""CLI through click's CliRunner against a live daemon subprocess in a temp SILNODE_HOME."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from silnode.cli import cli
from silnode.fit.seed import load_seed_catalog


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args: str, code: int = 0, input: str | None = None):
        result = runner.invoke(cli, list(args), input=input, catch_exceptions=False)
        assert result.exit_code == code, (args, result.exit_code, result.output)
        return result

    return invoke


def test_version(run):
    assert "silnode, version" in run("--version").stdout


def test_init_creates_home(run, clean_env):
    r = run("init", "--json")
    data = json.loads(r.stdout)
    assert data["home"] == str(clean_env)
    assert (clean_env / "config.yaml").is_file()
    assert (clean_env / "api.token").stat().st_mode & 0o777 == 0o600
    assert clean_env.stat().st_mode & 0o777 == 0o700
    assert (clean_env / "models").is_dir()
    again = json.loads(run("init", "--json").stdout)
    assert again["created"] == []  # idempotent, keeps the token
    assert "next:" in run("init").stderr


def test_no_daemon_is_one_line_with_hint(run):
    r = run("list", code=1)
    assert r.stdout == ""
    assert "daemon not running" in r.stderr and "silnode daemon start" in r.stderr
    assert "Traceback" not in r.stderr
    r = run("--json", "list", code=1)
    env = json.loads(r.stderr)
    assert env["code"] == "daemon_not_running"


def test_debug_shows_traceback(run, monkeypatch):
    monkeypatch.setenv("SILNODE_DEBUG", "1")
    assert "Traceback" in run("list", code=1).stderr


def test_bad_config_is_reported(run, clean_env):
    clean_env.mkdir(parents=True)
    (clean_env / "config.yaml").write_text("daemon:\n  colour: blue\n")
    r = run("list", code=1)
    assert "daemon.colour" in r.stderr


def test_store_commands_against_live_daemon(run, live_daemon, tiny_gguf, tiny_q8):
    r = run("import", str(tiny_gguf), "--name", "org/tiny", "--license", "apache-2.0")
    assert "imported org/tiny" in r.stdout and "hardlinked" in r.stdout
    data = json.loads(run("import", str(tiny_q8), "--name", "org/q8", "--copy", "--json").stdout)
    assert data["name"] == "org/q8" and data["files"][0]["linked"] is False

    listing = run("list").stdout
    assert "org/tiny" in listing and "org/q8" in listing and "Q8_0" in listing and "llama" in listing
    assert "VERIFIED" in listing and listing.count("just now") == 2  # hashed in full at import
    models = json.loads(run("list", "--json").stdout)["models"]
    assert {m["name"] for m in models} == {"org/tiny", "org/q8"}

    shown = json.loads(run("show", "org/tiny", "--json").stdout)
    assert shown["license"] == "apache-2.0" and len(shown["files"][0]["sha256"]) == 64
    assert "sha256" in run("show", "org/tiny").stdout

    r = run("import", str(tiny_gguf), "--name", "org/tiny", code=1)
    assert "already in the store" in r.stderr and "hint:" in r.stderr

    assert "ok" in run("verify").stdout
    stored = live_daemon.home / "models" / "org" / "q8" / tiny_q8.name
    raw = bytearray(stored.read_bytes())
    raw[len(raw) // 2] ^= 0x55
    stored.write_bytes(bytes(raw))
    r = run("verify", "org/q8", code=1)
    assert "DAMAGED" in r.stdout and "sha256 mismatch" in r.stdout
    states = {m["name"]: m["state"] for m in json.loads(run("list", "--json").stdout)["models"]}
    assert states == {"org/q8": "damaged", "org/tiny": "ok"}
    gc = json.loads(run("gc", "--json").stdout)
    assert gc["freed"] == len(raw)

    removed = json.loads(run("rm", "org/q8", "--json").stdout)
    assert removed["name"] == "org/q8"
    run("show", "org/q8", code=1)
    st = json.loads(run("daemon", "status", "--json").stdout)
    assert st["state"] == "running" and st["store"]["models"] == 1 and st["pid"] == live_daemon.pid


def test_import_usage_errors(run, live_daemon, tmp_path):
    assert "--name" in run("import", "x.gguf", code=1).stderr
    r = run("import", str(tmp_path / "missing.gguf"), "--name", "a/b", code=1)
    assert "no such file" in r.stderr
    r = run("show", "not-a-name", code=1)
    assert "org/model" in r.stderr


def test_doctor(run, live_daemon):
    r = run("doctor", "--json")
    checks = {c["check"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["daemon"]["status"] == "ok" and checks["token"]["status"] == "ok"
    assert checks["disk"]["status"] == "ok"
    assert checks["dht"]["detail"].startswith("off")  # tests run without a DHT
    assert "listening on port" in checks["bittorrent"]["detail"]
    assert "daemon" in run("doctor").stdout


def test_doctor_flags_bad_token_mode(run, clean_env):
    run("init")
    (clean_env / "api.token").chmod(0o644)
    r = run("doctor", code=1)
    assert "chmod 600" in r.stdout


def test_share_get_transfers_seeding(run, live_daemon, tmp_path, tiny_q8):
    """Two daemons: the second one `get`s what the first `share`s, through the CLI the user types."""
    import os

    from daemons import start_daemon, stop_daemon

    other = start_daemon(tmp_path / "other")
    try:
        shared = json.loads(run("share", str(tiny_q8), "--name", "alice/q8", "--license", "mit", "--json").stdout)
        assert shared["magnet"].startswith("magnet:?xt=urn:btih:")
        rows = json.loads(run("transfers", "--json").stdout)["transfers"]
        assert [(r["kind"], r["state"], r["name"]) for r in rows] == [("seed", "seeding", "alice/q8")]
        os.environ["SILNODE_HOME"] = str(other.home)
        try:
            r = run("get", shared["magnet"])
            assert "got alice/q8" in r.stdout and "sha256 verified" in r.stdout
            assert "alice/q8" in run("list").stdout
            r = run("get", shared["magnet"], code=1)
            assert "already in the store" in r.stderr
            assert "seeding off" in run("seeding", "alice/q8", "off").stdout
            assert json.loads(run("seeding", "alice/q8", "--json").stdout)["seeding"] is False
            assert run("transfers").stdout.strip() == "no transfers"
            r = run("transfers", "cancel", "deadbeefdeadbeef", code=1)
            assert "no transfer" in r.stderr
        finally:
            os.environ["SILNODE_HOME"] = str(live_daemon.home)
    finally:
        stop_daemon(other)


def test_hardware(run, live_daemon):
    report = json.loads(run("hardware", "--json").stdout)
    cpu = next(d for d in report["devices"] if d["id"] == "CPU")
    assert cpu["free_bytes"] > 0 and cpu["source"] == "cpu"
    nvml = next(p for p in report["probes"] if p["name"] == "nvml")
    assert nvml["status"] in ("ok", "not_found", "failed") and nvml["detail"]
    assert "probes:" in run("hardware").stdout


def test_hardware_caps_from_config(run, clean_env, monkeypatch):
    monkeypatch.setenv("SILNODE_HARDWARE__RAM_BYTES", str(2 << 30))
    report = json.loads(run("hardware", "--local", "--json").stdout)
    cpu = next(d for d in report["devices"] if d["id"] == "CPU")
    assert cpu["total_bytes"] <= 2 << 30 and cpu["overridden"] is True


def test_inspect_file_and_refusal_under_a_cap(run, tiny_gguf, monkeypatch):
    data = json.loads(run("inspect", str(tiny_gguf), "--ctx", "512", "--json").stdout)
    assert data["gguf"]["arch"] == "llama" and data["fits"] is True and data["device"] == "CPU"
    est = data["estimate"]
    assert est["total_bytes"] == est["weights_bytes"] + est["kv_bytes"] + est["compute_bytes"] + est["overhead_bytes"]
    assert data["offload"]["mode"] == "cpu" and data["offload"]["n_gpu_layers"] == 0
    assert data["speed"]["tokens_per_s"] > 0 and data["speed"]["speed"] == "usable"
    text = run("inspect", str(tiny_gguf)).stdout
    assert "placement: on the CPU" in text and "tokens/s generated" in text
    assert data["tool_path"] == "grammar" and "tool calls: grammar path" in text  # ChatML renders no tools
    monkeypatch.setenv("SILNODE_HARDWARE__RAM_BYTES", str(40 << 20))  # a 40 MiB machine
    r = run("inspect", str(tiny_gguf))
    assert "does not fit: needs" in r.stdout and "free on CPU" in r.stdout
    run("inspect", "no/such-model", code=1)


def test_recommend_through_the_daemon(run, live_daemon):
    # `recommend` asks GET /api/v1/recommend; the store is empty, so every seed-catalog model is judged
    data = json.loads(run("recommend", "--json").stdout)
    judged = [c["name"] for c in data["fits"] + data["others"]]
    assert sorted(judged) == sorted(m.name for m in load_seed_catalog())
    assert all(c["source"] == "catalog" and not c["on_disk"] for c in data["fits"] + data["others"])
    assert all(c["reason"] for c in data["others"])  # each model left out says why
    usable = [c for c in data["fits"] if c["speed"] == "usable"]
    assert data["fits"][: len(usable)] == usable  # the models fast enough here come first
    qualities = [c["quality"] for c in usable]
    assert qualities == sorted(qualities, reverse=True)  # best first
    assert data["device"] and data["free_bytes"] > 0
    # --min-tps 0 (through the query parameter): quality alone
    anything = json.loads(run("recommend", "--min-tps", "0", "--json").stdout)
    assert anything["min_tokens_per_s"] == 0 and all(c["speed"] == "usable" for c in anything["fits"])
    qualities = [c["quality"] for c in anything["fits"]]
    assert qualities == sorted(qualities, reverse=True)
    assert "TOK/S" in run("recommend").stdout
    empty = json.loads(run("recommend", "--no-catalog", "--json").stdout)
    assert empty["fits"] == [] and empty["others"] == []
    small = json.loads(run("recommend", "--ctx", "512", "--json").stdout)
    assert small["n_ctx"] == 512
    assert f"device {data['device']}" in run("recommend").stdout
