#!/usr/bin/env python3
"""Install llama-cpp-python built for the machines it will run on: the one place that chooses the build.

    python3 scripts/install_llama.py --python .venv/bin/python [--backend auto|cpu|cuda|rocm|metal]

Used by `make install` (and so `make run`, `make test`, `.ci/run`). Stdlib only: it runs before the venv has
anything in it.

Why this exists: llama.cpp's default source build (`GGML_NATIVE=ON`) compiles for every instruction the build
machine's CPU flags advertise. A VM or sandbox may refuse some of them (AMX tiles need a permission from the
kernel), and the wheel travels through pip caches, shared venvs and images to other CPUs: the worker then dies
with SIGILL at its first decode. So the CPU build is portable (`GGML_NATIVE=OFF`: AVX2/FMA/F16C on x86-64,
the baseline on arm64). What that costs (bench/cpu_variants.py, README "llama.cpp build"): AVX-512 variants
gain 3-5 %; where the VM allows AMX its variant generates 1.6-2.6x faster, which picking the best variant that
survives a test decode (the next step) would win back.

The backend: CUDA only when a GPU is seen (nvidia-smi lists one or /proc/driver/nvidia/gpus has one) *and* nvcc
is present; ROCm likewise (/dev/kfd and hipcc); Metal on macOS; else the CPU. A toolkit alone is not a GPU:
CI machines carry nvcc and no GPU, and must build for the CPU. `--backend` (the Makefile's LLAMA_BACKEND)
forces one.

The wheel is built once per (version, backend, architecture, CMake arguments) into
~/.cache/silnode/llama-wheels/ and installed from there: never from pip's own wheel cache, which keys a
source build by version alone and would hand a native build from one machine to another.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

VERSION = "0.3.36"
BACKENDS = ("cpu", "cuda", "rocm", "metal")
# a rough guide for the progress line: measured source builds of 0.3.36
MINUTES = {
    "cpu": "5-8 minutes on 2 cores",
    "cuda": "5 minutes on 16 cores, 35-45 on 2",
    "rocm": "10-30 minutes",
    "metal": "3-5 minutes",
}
NEEDS = {
    "cpu": "a C/C++ compiler and cmake (Debian: `apt-get install build-essential cmake`; pip brings cmake too)",
    "cuda": "the CUDA toolkit with cuBLAS (nvcc on PATH or in /usr/local/cuda/bin)",
    "rocm": "ROCm with hipcc and hipBLAS (/opt/rocm)",
    "metal": "Xcode command line tools (`xcode-select --install`)",
}


def say(msg: str) -> None:
    print(f"[llama.cpp] {msg}", file=sys.stderr, flush=True)


def _run_ok(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def nvidia_gpu() -> bool:
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and any(gpus.iterdir()):
        return True
    out = _run_ok(["nvidia-smi", "-L"]) if shutil.which("nvidia-smi") else None
    return bool(out and "GPU " in out)


def nvcc() -> str | None:
    return shutil.which("nvcc") or next((str(p) for p in [Path("/usr/local/cuda/bin/nvcc")] if p.exists()), None)


def amd_gpu() -> bool:
    return (
        Path("/dev/kfd").exists() and bool(_run_ok(["rocminfo"]) or "").count("gfx") > 0
        if shutil.which("rocminfo")
        else Path("/dev/kfd").exists()
    )


def hipcc() -> str | None:
    return shutil.which("hipcc") or next((str(p) for p in [Path("/opt/rocm/bin/hipcc")] if p.exists()), None)


def choose_backend(requested: str) -> tuple[str, str]:
    """(backend, why)."""
    if requested != "auto":
        if requested not in BACKENDS:
            raise SystemExit(f"error: LLAMA_BACKEND={requested}: use one of auto, {', '.join(BACKENDS)}")
        return requested, "forced by LLAMA_BACKEND"
    if sys.platform == "darwin":
        return "metal", "macOS"
    if nvidia_gpu():
        if nvcc():
            return "cuda", "an NVIDIA GPU and the CUDA toolkit"
        say(
            "an NVIDIA GPU is present but no CUDA toolkit (nvcc): building for the CPU; install the toolkit and "
            "run `make install LLAMA_BACKEND=cuda` to use the GPU"
        )
        return "cpu", "GPU without the CUDA toolkit"
    if amd_gpu() and hipcc():
        return "rocm", "an AMD GPU and ROCm"
    return "cpu", "no GPU seen" + (" (a CUDA toolkit alone is not a GPU)" if nvcc() else "")


def cmake_args(backend: str) -> str:
    args = ["-DGGML_NATIVE=OFF"]  # portable: never the build machine's own instruction set
    if backend == "cuda":
        # all real architectures the toolkit supports would take an hour; these cover Turing to Blackwell
        args += [
            "-DGGML_CUDA=ON",
            "-DGGML_CUDA_NCCL=OFF",
            "-DCMAKE_CUDA_ARCHITECTURES=" + os.environ.get("CUDA_ARCHITECTURES", "75;80;86;89;90"),
        ]
    elif backend == "rocm":
        args += ["-DGGML_HIP=ON"]
    elif backend == "metal":
        args += ["-DGGML_METAL=ON"]
    return " ".join(args)


def cache_dir(backend: str, args: str) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "silnode" / "llama-wheels"
    key = hashlib.sha256(args.encode()).hexdigest()[:10]
    return root / f"{VERSION}-{backend}-{platform.machine()}-{key}"


def build(python: str, backend: str, args: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(dest) + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    env = {**os.environ, "CMAKE_ARGS": args, "FORCE_CMAKE": "1"}
    if backend == "cuda" and not shutil.which("nvcc") and nvcc():
        env["CUDACXX"] = nvcc()  # type: ignore[assignment]
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    say(f"building llama-cpp-python {VERSION} for {backend} ({args}); this takes about {MINUTES[backend]}, once")
    cmd = [
        python,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-cache-dir",
        "--no-binary",
        "llama-cpp-python",
        "-v",
        "-w",
        str(tmp),
        f"llama-cpp-python=={VERSION}",
    ]
    start = time.monotonic()
    log_path = dest.parent / f"{dest.name}.build.log"
    step = re.compile(r"\[\s*(\d+)/(\d+)\]")
    last = 0.0
    with (
        open(log_path, "w") as log,
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            m = step.search(line)
            now = time.monotonic()
            if m and (now - last > 5 or m.group(1) == m.group(2)):
                last = now
                done, total = int(m.group(1)), int(m.group(2))
                print(
                    f"\r[llama.cpp] compiling {done}/{total} ({100 * done // total} %), "
                    f"{int(now - start) // 60}:{int(now - start) % 60:02d} elapsed   ",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
        rc = proc.wait()
    print(file=sys.stderr)
    if rc != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        print("\n".join(tail), file=sys.stderr)
        raise SystemExit(
            f"error: the llama.cpp build failed ({backend}); it needs {NEEDS[backend]}.\n"
            f"The whole log: {log_path}. `make install LLAMA_BACKEND=cpu` builds for the CPU."
        )
    wheels = list(tmp.glob("llama_cpp_python-*.whl"))
    if not wheels:
        raise SystemExit(f"error: pip built no wheel (log: {log_path})")
    final = dest / wheels[0].name
    os.replace(wheels[0], final)
    shutil.rmtree(tmp, ignore_errors=True)
    say(f"built in {int(time.monotonic() - start)} s: {final}")
    return final


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default=sys.executable, help="the venv's python to install into")
    ap.add_argument("--backend", default=os.environ.get("LLAMA_BACKEND") or "auto")
    ap.add_argument("--print", action="store_true", help="print the choice and the CMake arguments, build nothing")
    opts = ap.parse_args()
    backend, why = choose_backend(opts.backend)
    args = cmake_args(backend)
    dest = cache_dir(backend, args)
    if opts.print:
        print(f"backend={backend} why={why!r} cmake_args={args!r} wheel_dir={dest}")
        return 0
    say(f"backend: {backend} ({why})")
    wheel = next(iter(sorted(dest.glob(f"llama_cpp_python-{VERSION}-*.whl"))), None) if dest.is_dir() else None
    if wheel is None:
        wheel = build(opts.python, backend, args, dest)
    else:
        say(f"using the wheel built before: {wheel}")
    pip = [opts.python, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--no-deps", "--force-reinstall", str(wheel)], check=True)  # replaces any other build
    subprocess.run([*pip, str(wheel)], check=True)  # and its dependencies (numpy, jinja2, ...)
    # what the library says it was built for (no model needed)
    info = _run_ok([opts.python, "-c", "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"])
    say(f"installed: {(info or '?').strip()[:200]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
