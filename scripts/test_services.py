"""Create (once) the venvs of the payment test services: a nutshell cashu mint and LNbits, each with FakeWallet.

Both pin libraries the node's own venv cannot share (cashu: cryptography<44, websockets<13, httpx<0.26; LNbits:
pydantic 1, nostr-sdk 0.44), so each lives in its own venv under a cache dir (``SILNODE_TEST_SERVICES``,
default ``~/.cache/silnode-test-services``). Idempotent: a venv whose stamp matches its pins is reused; a
half-built one (no stamp) is rebuilt. ``make test`` / ``.ci/run`` call it before pytest; the test fixtures
call :func:`ensure` too, so a lone ``pytest tests/payments`` works on a fresh clone.

    python scripts/test_services.py [cashu] [lnbits]     # default: both; prints each venv's path

Cold install here: cashu ~20 s, LNbits ~45 s (payments-notes.md); a warm call is a stat.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# cashu 0.21.0 does not install (breez-sdk-spark<0.18 is gone); without marshmallow<4 environs crashes on import,
# without limits<5 slowapi refuses its strategy. bolt11 breaks with bitstring 5.
SERVICES: dict[str, list[str]] = {
    "cashu": ["cashu==0.20.2", "marshmallow<4", "limits<5"],
    "lnbits": ["lnbits==1.6.2", "bitstring<5"],
}
# both support Python 3.10-3.12; the node may run on a newer one
PYTHONS = ("python3.11", "python3.12", "python3.10")


def cache_dir() -> Path:
    return Path(os.environ.get("SILNODE_TEST_SERVICES") or Path.home() / ".cache" / "silnode-test-services")


def _python() -> str:
    if (3, 10) <= sys.version_info[:2] <= (3, 12):
        return sys.executable
    for name in PYTHONS:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("the payment test services need Python 3.10-3.12 (python3.11 on PATH)")


def venv_path(service: str) -> Path:
    pins = SERVICES[service]
    tag = hashlib.sha256(json.dumps(pins).encode()).hexdigest()[:10]
    return cache_dir() / f"{service}-{tag}"


def ensure(service: str) -> Path:
    """The venv of ``service`` with its pins installed; built when missing. Returns the venv directory."""
    venv = venv_path(service)
    stamp = venv / ".silnode-ready"
    if stamp.is_file():
        return venv
    lock = cache_dir() / f"{service}.lock"
    cache_dir().mkdir(parents=True, exist_ok=True)
    import fcntl  # POSIX only, like the services themselves

    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # two test runs building the same venv wait for each other
        if stamp.is_file():
            return venv
        if venv.exists():
            shutil.rmtree(venv)  # half-built by an interrupted run
        started = time.monotonic()
        print(f"[test-services] creating {venv} ({' '.join(SERVICES[service])})", file=sys.stderr, flush=True)
        subprocess.run([_python(), "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, *SERVICES[service]], check=True)
        stamp.write_text(json.dumps({"pins": SERVICES[service], "seconds": round(time.monotonic() - started, 1)}))
        print(f"[test-services] {service} ready in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return venv


def main(argv: list[str]) -> int:
    for service in argv or list(SERVICES):
        if service not in SERVICES:
            print(f"unknown service {service!r}; known: {', '.join(SERVICES)}", file=sys.stderr)
            return 2
        print(ensure(service))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
