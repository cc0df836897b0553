"""No secret leaves the keystore: a canary secret and the identity's keys are planted, a daemon runs with
DEBUG logging and the password given as users give it, the CLI and REST surfaces are exercised, and then every
file under the home and every captured output is searched. The search is proven to work first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from daemons import ROOT

from silnode.identity import Keystore
from silnode.identity.leakcheck import assert_no_leaks, find_leaks, make_canary, selftest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
PW = "leak-test password that is long enough 1"


def test_no_secret_in_files_logs_outputs_or_process_table(clean_env, tmp_path, tiny_gguf):
    home = clean_env
    env = dict(os.environ, SILNODE_HOME=str(home), SILNODE_PASSWORD=PW, SILNODE_DEBUG="1")
    captured: dict[str, str] = {}

    def cli(label: str, *args: str, input: str | None = None, check: bool = True, **extra: str) -> str:
        r = subprocess.run(
            [sys.executable, "-m", "silnode", *args],
            env={**env, **extra},
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        captured[f"{label}.stdout"], captured[f"{label}.stderr"] = r.stdout, r.stderr
        if check:
            assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r.stdout

    # the detector itself works (else a clean result below proves nothing)
    selftest(tmp_path / "selftest")

    cli("init", "init", "--json")
    canary = make_canary()
    cli("secrets-set", "secrets", "set", "canary", input=canary + "\n")
    ident = Keystore.for_home(home).unlock(PW)
    assert ident.get_secret("canary") == canary
    # the keystore really holds the canary, encrypted: a decrypted copy would be found
    leaked = tmp_path / "leaked-copy.json"
    leaked.write_text(json.dumps(ident.to_payload()))
    assert find_leaks([canary], paths=[leaked])

    out = json.loads(cli("start", "daemon", "start", "--port", "0", "--json"))
    pid, url = out["pid"], out["url"]
    try:
        # the daemon got the password through a pipe: not in its command line or environment
        proc_env = Path(f"/proc/{pid}/environ").read_bytes()
        proc_cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        captured["proc.environ"], captured["proc.cmdline"] = proc_env.decode("latin-1"), proc_cmd.decode("latin-1")
        assert PW.encode() not in proc_env and PW.encode() not in proc_cmd
        for path in (
            "/api/v1/identity",
            "/api/v1/status",
            "/api/v1/models",
            "/api/v1/openapi.json",
            "/api/v1/health",
            "/api/v1/transfers",
        ):
            with urllib.request.urlopen(url + path, timeout=10) as resp:
                captured[f"GET {path}"] = resp.read().decode()
        assert json.loads(captured["GET /api/v1/identity"])["identity"]["unlocked"] is True
        cli("show", "identity", "show", "--json")
        cli("secrets-list", "secrets", "list", "--json")
        cli("import", "import", str(tiny_gguf), "--name", "leak/tiny", "--json")
        cli("share", "share", "leak/tiny", "--json")
        cli("status", "daemon", "status", "--json")
        cli("doctor", "doctor", "--json")
        cli("wrong-pw", "secrets", "list", check=False, SILNODE_PASSWORD="wrong password")
        cli("bad-phrase", "identity", "import", "--force", check=False, input="abandon " * 11 + "zoo\n")
    finally:
        cli("stop", "daemon", "stop")
    assert "identity unlocked" in (home / "logs" / "daemon.log").read_text()  # DEBUG logs were written
    assert_no_leaks([ident, canary], paths=[home], texts=captured)
