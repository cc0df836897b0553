"""Fuzz the REST API with schemathesis against its own OpenAPI document, on a live daemon.

    python bench/fuzz_api.py [--max-examples 20] [--json]

Starts a daemon in a throwaway home (loopback, port 0) with the generated tiny model imported and served,
then runs `st run http://127.0.0.1:PORT/api/v1/openapi.json --checks not_a_server_error` with the admin token
(so every route is reached, not only the 401 wall), excluding only /api/v1/admin/shutdown (it would end the
run). Prints how many requests schemathesis sent, how many operations it covered and how many failures (a
5xx is a failure; every bad input must get a 4xx with the JSON error envelope). Needs `schemathesis`
(`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from daemons import run_cli, start_daemon, stop_daemon  # noqa: E402
from ggufgen import make_gguf  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--max-examples", type=int, default=20, help="examples per operation and phase")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    if st is None:
        sys.exit("schemathesis is not installed: pip install -e '.[bench]'")
    tmp = Path(tempfile.mkdtemp(prefix="silnode-fuzz-"))
    home = tmp / "home"
    d = start_daemon(home, env={"SILNODE_NETWORK__DHT_ENABLED": "false", "SILNODE_NETWORK__LSD_ENABLED": "false"})
    try:
        model = make_gguf(tmp / "tiny.gguf")
        run_cli(home, "import", str(model), "--name", "fuzz/tiny", "--license", "mit")
        run_cli(home, "serve", "fuzz/tiny")
        r = subprocess.run(
            [
                st,
                "run",
                f"{d.url}/api/v1/openapi.json",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                str(a.max_examples),
                "-H",
                f"Authorization: Bearer {d.token}",
                "--exclude-path",
                "/api/v1/admin/shutdown",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
    finally:
        stop_daemon(d)
        shutil.rmtree(tmp, ignore_errors=True)
    out = r.stdout + r.stderr
    requests = re.search(r"(\d+)\s+generated", out) or re.search(r"Test cases:\s*(\d+)", out)
    ops = re.search(r"Selected:\s*(\d+)/(\d+)", out)
    result = {
        "exit_code": r.returncode,
        "test_cases": int(requests.group(1)) if requests else None,
        "operations": f"{ops.group(1)} of {ops.group(2)}" if ops else None,
        "passed": re.search(r"(\d+) generated, (\d+) passed", out) is not None and r.returncode == 0,
    }
    if a.json:
        print(json.dumps(result))
    else:
        print(out[-3000:])
        print(json.dumps(result, indent=2))
    sys.exit(r.returncode)


if __name__ == "__main__":
    main()
