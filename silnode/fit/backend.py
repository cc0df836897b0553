"""Which llama.cpp build this node runs, and whether it can use the GPU the machine has.

The build is asked in a short-lived child process (importing llama_cpp costs time, and a CUDA build's first
device query would take VRAM from the calling process for good; gpu-notes.md, "Reading VRAM").
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import lru_cache
from typing import Any

_SCRIPT = (
    "import json, llama_cpp; print(json.dumps({'version': llama_cpp.__version__, "
    "'gpu_offload': bool(llama_cpp.llama_supports_gpu_offload()), "
    "'system_info': llama_cpp.llama_print_system_info().decode(errors='replace')}))"
)
REBUILD_CUDA = "make install LLAMA_BACKEND=cuda  (after `rm -rf .venv`; needs the CUDA toolkit)"


def build_info(python: str = sys.executable, timeout: float = 60.0) -> dict[str, Any]:
    """{version, gpu_offload, system_info, backend, cpu_features} of the installed llama-cpp-python, or
    {"error": why} when it cannot be imported."""
    try:
        out = subprocess.run([python, "-c", _SCRIPT], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"cannot ask llama.cpp: {exc}"}
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"llama_cpp does not import: {last}"}
    try:
        info: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "llama_cpp answered something unreadable"}
    text = info.get("system_info", "")
    info["cpu_features"] = re.findall(r"\b(AVX512\w*|AVX2|AVX_VNNI|AVX|AMX_\w+|NEON|SVE|F16C|FMA)\s*=\s*1", text)
    info["backend"] = (
        next((b for b in ("CUDA", "ROCm", "HIP", "Metal", "Vulkan") if b.upper() in text.upper()), "CPU")
        if info.get("gpu_offload")
        else "CPU"
    )
    return info


def judge(info: dict[str, Any], gpus: list[str]) -> tuple[str, str, str | None]:
    """(status ok|warn|fail, detail, hint) for `doctor`: a GPU the build cannot use is a warning."""
    if "error" in info:
        return "fail", info["error"], "make install  (builds llama-cpp-python for this machine)"
    feats = ", ".join(info.get("cpu_features") or []) or "baseline"
    detail = f"llama-cpp-python {info.get('version')}: {info['backend']}" + (
        f" ({feats})" if info["backend"] == "CPU" else ""
    )
    if gpus and not info.get("gpu_offload"):
        return (
            "warn",
            f"{detail}; this machine has {', '.join(gpus)} but the build is CPU-only, so models "
            "run on the CPU and fit is judged against RAM",
            REBUILD_CUDA,
        )
    return "ok", detail, None


@lru_cache(maxsize=1)
def gpu_offload() -> bool:
    """Whether this process's llama.cpp build can offload to a GPU (asked once, in a child process)."""
    return bool(build_info().get("gpu_offload"))
