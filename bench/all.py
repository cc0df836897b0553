"""Run every bench in one go and keep what they printed: `make bench`.

    python bench/all.py [--only NAME,...] [--out bench/results/latest.md]

Each bench measures its anchor side by side in the same run and prints its own table; this runner adds what a
reader needs to judge the figures (date, machine, CPUs, load before and after each bench, wall time) and
writes everything to one Markdown file, the source of the README's bench section. A bench that fails is
reported and the run goes on; the exit status says whether all passed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

# name -> command; the order puts the cheap, quiet benches first
BENCHES: dict[str, list[str]] = {
    "gguf_header": [PY, "bench/gguf_header.py"],
    "estimate": [PY, "bench/estimate.py"],
    "identity_unlock": [PY, "bench/identity_unlock.py"],
    "import_speed": [PY, "bench/import_speed.py", "--runs", "5"],
    "transfer": [PY, "bench/transfer.py", "--runs", "5"],
    "netns": [PY, "bench/netns.py", "--runs", "5"],
    "speed_estimate": [PY, "bench/speed_estimate.py", "--runs", "5"],
    "cpu_variants": [PY, "bench/cpu_variants.py", "--runs", "5"],
    "serve": [PY, "bench/serve.py", "--models", "large,gemma", "--repeat", "5"],
    "fuzz_api": [PY, "bench/fuzz_api.py", "--json"],
    "discovery": [PY, "bench/discovery.py"],
    "payments": [PY, "bench/payments.py"],
    "dvm": [PY, "bench/dvm.py"],
    "structured": [PY, "bench/structured.py"],
    "first_token": [PY, "bench/first_token.py"],
    "hostile_peer": [PY, "bench/hostile_peer.py", "--runs", "30", "--hogs", "1"],
}
NEEDS_ROOT = {"netns": "network namespaces and tc"}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="comma-separated bench names: " + ",".join(BENCHES))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.md")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        ap.error(f"unknown bench {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def emit(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    emit(f"# silnode benchmarks, {now}")
    emit()
    emit(f"- machine: {cpu_name()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}")
    emit(f"- Python {platform.python_version()}; load average (1/5/15 min) at the start: {load()}")
    emit(f"- benches: {', '.join(names)}")
    failed = []
    for name in names:
        emit()
        emit(f"## {name}")
        emit()
        if name in NEEDS_ROOT and os.geteuid() != 0:
            emit(f"not run: needs root for {NEEDS_ROOT[name]}")
            continue
        t0 = time.monotonic()
        before = load()
        # stdout is the bench's result and goes in the report; stderr (progress, and why a
        # bench failed) stays on the terminal, live
        proc = subprocess.run(BENCHES[name], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        emit("```")
        for line in proc.stdout.rstrip().splitlines():
            emit(line)
        emit("```")
        status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
        emit(f"{status}; {time.monotonic() - t0:.0f} s; load before {before}, after {load()}")
        if proc.returncode != 0:
            failed.append(name)
        args.out.write_text("\n".join(lines) + "\n")  # after each bench: a run cut short keeps what it measured
    args.out.write_text("\n".join(lines) + "\n")
    print(f"written to {args.out}", file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
