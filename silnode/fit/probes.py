"""The probes, one per source of memory facts (NVML, AMD sysfs, Apple, CPU RAM, ggml in a subprocess).
Each is built by a factory whose inputs are parameters, so tests substitute them without patching globals."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from silnode.fit.devices import (
    _ID_PREFIXES,
    Device,
    GiB,
    Probe,
    ProbeNotApplicable,
    ProbeNotFound,
    ProbeOutput,
    _fmt_bytes,
    _text,
    _unknown_if_zero,
)

# --- NVML ---------------------------------------------------------------------------------------------

_NVML_NOT_FOUND = {
    "NVMLError_LibraryNotFound": "libnvidia-ml.so not present (no NVIDIA driver)",
    "NVMLError_DriverNotLoaded": "NVIDIA driver not loaded",
    "NVMLError_NoPermission": None,  # failed, not "not found"
}


def nvml_probe(nvml: Any = None) -> Probe:
    """NVIDIA GPUs through NVML. ``nvml``: a pynvml-like module (default: ``import pynvml``)."""

    def run() -> ProbeOutput:
        mod = nvml
        if mod is None:
            try:
                import pynvml as mod  # type: ignore[no-redef]
            except ImportError as exc:
                raise ProbeNotFound(f"nvidia-ml-py not installed ({exc})") from exc
        try:
            mod.nvmlInit()
        except Exception as exc:
            why = _NVML_NOT_FOUND.get(type(exc).__name__)
            if why:
                raise ProbeNotFound(f"{why} [{type(exc).__name__}]") from exc
            raise
        try:
            driver = ""
            if hasattr(mod, "nvmlSystemGetDriverVersion"):
                try:
                    driver = _text(mod.nvmlSystemGetDriverVersion())
                except Exception:  # noqa: BLE001 - the version is decoration
                    driver = ""
            count = int(mod.nvmlDeviceGetCount())
            if count == 0:
                raise ProbeNotFound(f"NVML answered (driver {driver or '?'}) but lists no GPU")
            devices = []
            errors = []
            for i in range(count):
                dev = Device(
                    id=f"CUDA{i}",
                    name=f"NVIDIA GPU {i}",
                    backend="cuda",
                    total_bytes=None,
                    free_bytes=None,
                    source="nvml",
                )
                try:
                    handle = mod.nvmlDeviceGetHandleByIndex(i)
                    try:
                        dev.name = _text(mod.nvmlDeviceGetName(handle))
                    except Exception as exc:  # noqa: BLE001
                        dev.note = f"name unreadable: {type(exc).__name__}: {exc}"
                    dev.bandwidth = _nvml_bandwidth(mod, handle)
                    mem = mod.nvmlDeviceGetMemoryInfo(handle)
                    dev.total_bytes = int(mem.total)
                    dev.free_bytes = int(mem.free)
                    dev.used_bytes = int(mem.used) if getattr(mem, "used", None) is not None else None
                except Exception as exc:  # noqa: BLE001 - one bad GPU must not hide the others
                    msg = f"memory unreadable: {type(exc).__name__}: {exc}"
                    dev.note = f"{dev.note}; {msg}" if dev.note else msg
                    dev.total_bytes = dev.free_bytes = None
                    errors.append(f"CUDA{i}: {msg}")
                devices.append(_unknown_if_zero(dev, "NVML"))
            detail = f"{count} GPU(s), driver {driver or 'unknown'}"
            if errors:
                detail += "; " + "; ".join(errors)
            return devices, detail
        finally:
            with contextlib.suppress(Exception):
                mod.nvmlShutdown()

    return Probe("nvml", run)


# --- AMD sysfs ----------------------------------------------------------------------------------------

DEFAULT_DRM_ROOT = "/sys/class/drm"


def _nvml_bandwidth(mod: Any, handle: Any) -> float | None:
    """Peak memory bandwidth in bytes/s: bus width (bits) / 8 x the maximum memory clock (MHz) x 2, the
    double data rate of GDDR and HBM alike (an H100 SXM: 5120 bits x 2619 MHz -> 3.35 TB/s, its data sheet's
    figure). None when the driver does not say: the speed estimate is then left out, not guessed."""
    try:
        bits = int(mod.nvmlDeviceGetMemoryBusWidth(handle))
        mhz = int(mod.nvmlDeviceGetMaxClockInfo(handle, getattr(mod, "NVML_CLOCK_MEM", 2)))
    except Exception:  # noqa: BLE001 - older drivers and some GPUs answer NOT_SUPPORTED
        return None
    return bits / 8 * mhz * 1e6 * 2 if bits > 0 and mhz > 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def amd_sysfs_probe(root: str | os.PathLike[str] = DEFAULT_DRM_ROOT) -> Probe:
    """AMD GPUs through amdgpu's sysfs files under ``root`` (``/sys/class/drm``).

    ROCm numbers devices in its own order (usually the same as card order); ids here are ROCM0.. in card order.
    """

    def run() -> ProbeOutput:
        base = Path(root)
        if not base.is_dir():
            raise ProbeNotFound(f"{base} not present")

        def card_no(p: Path) -> int:
            return int(p.name[4:])

        cards = sorted((p for p in base.iterdir() if re.fullmatch(r"card\d+", p.name)), key=card_no)
        devices = []
        for card in cards:
            dev_dir = card / "device"
            total_s = _read(dev_dir / "mem_info_vram_total")
            if total_s is None:
                continue  # not an amdgpu card (or an older driver without mem_info)
            vendor = _read(dev_dir / "vendor")
            name = _read(dev_dir / "product_name") or ""
            if not name:
                pci = _read(dev_dir / "device")
                name = f"AMD GPU ({vendor or '0x1002'}:{pci})" if pci else "AMD GPU"
            dev = Device(
                id=f"ROCM{len(devices)}",
                name=name,
                backend="rocm",
                total_bytes=None,
                free_bytes=None,
                source="amd_sysfs",
                note=f"{card.name}",
            )
            try:
                dev.total_bytes = int(total_s)
                used_s = _read(dev_dir / "mem_info_vram_used")
                if used_s is None:
                    dev.note += ": mem_info_vram_used missing, free unknown"
                else:
                    dev.used_bytes = int(used_s)
                    dev.free_bytes = dev.total_bytes - dev.used_bytes
            except ValueError as exc:
                dev.total_bytes = dev.free_bytes = dev.used_bytes = None
                dev.note += f": unreadable mem_info ({exc})"
            devices.append(_unknown_if_zero(dev, "amdgpu sysfs"))
        if not devices:
            raise ProbeNotFound(f"no {base}/card*/device/mem_info_vram_total (no amdgpu driver)")
        return devices, f"{len(devices)} GPU(s) from {base}"

    return Probe("amd_sysfs", run)


# --- Apple unified memory -----------------------------------------------------------------------------


def _sysctl(name: str) -> str:
    return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=True).stdout.strip()


def apple_probe(
    *,
    system: str | None = None,
    machine: str | None = None,
    sysctl: Callable[[str], str] | None = None,
    psutil_mod: Any = None,
) -> Probe:
    """Apple Silicon: the GPU shares system RAM. Metal lets the GPU wire about 2/3 of RAM (75 % above 36 GiB)
    unless ``iogpu.wired_limit_mb`` raises it; total is that working-set limit, free is min(available, limit).
    """

    def run() -> ProbeOutput:
        sys_name = system if system is not None else platform.system()
        arch = machine if machine is not None else platform.machine()
        if sys_name != "Darwin":
            raise ProbeNotApplicable(f"not macOS ({sys_name}): no unified memory")
        if arch not in ("arm64", "aarch64"):
            raise ProbeNotApplicable(f"Intel Mac ({arch}): no unified GPU memory")
        ask = sysctl or _sysctl
        memsize = int(ask("hw.memsize"))
        if memsize <= 0:
            raise RuntimeError("sysctl hw.memsize reported 0")
        limit = int(memsize * (0.75 if memsize > 36 * GiB else 2 / 3))
        how = "Metal default working-set limit"
        try:
            wired_mb = int(ask("iogpu.wired_limit_mb") or 0)
        except Exception:  # noqa: BLE001 - older macOS has no such key
            wired_mb = 0
        if wired_mb > 0:
            limit = min(wired_mb * (1 << 20), memsize)
            how = "iogpu.wired_limit_mb"
        ps = psutil_mod
        if ps is None:
            import psutil as ps  # type: ignore[no-redef]
        avail = int(ps.virtual_memory().available)
        dev = Device(
            id="METAL0",
            name=f"Apple Silicon GPU (unified memory, {_fmt_bytes(memsize)} RAM)",
            backend="metal",
            total_bytes=limit,
            free_bytes=min(avail, limit),
            source="apple",
            note=f"unified memory: total is the {how}; free is min(available RAM, limit)",
        )
        return [_unknown_if_zero(dev, "apple")], f"hw.memsize {memsize}, GPU limit {limit} ({how})"

    return Probe("apple", run)


# --- CPU RAM ------------------------------------------------------------------------------------------


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def _meminfo(path: str = "/proc/meminfo") -> tuple[int, int]:
    vals = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                vals[key] = int(parts[0]) * 1024
    return vals["MemTotal"], vals.get("MemAvailable", vals.get("MemFree", 0))


def cpu_probe(psutil_mod: Any = None, *, name: str | None = None) -> Probe:
    """System RAM: psutil ``virtual_memory()`` (available/total); /proc/meminfo when psutil is missing."""

    def run() -> ProbeOutput:
        ps = psutil_mod
        if ps is None:
            try:
                import psutil as ps  # type: ignore[no-redef]
            except ImportError:
                ps = None
        if ps is not None:
            vm = ps.virtual_memory()
            total, free, how = int(vm.total), int(vm.available), "psutil"
        else:
            total, free = _meminfo()
            how = "/proc/meminfo"
        dev = Device(
            id="CPU",
            name=name or _cpu_name(),
            backend="cpu",
            total_bytes=total,
            free_bytes=free,
            source="cpu",
            used_bytes=total - free if total and free else None,
        )
        return [_unknown_if_zero(dev, how)], f"{how}: {_fmt_bytes(free)} available of {_fmt_bytes(total)}"

    return Probe("cpu", run)


# --- ggml (subprocess) --------------------------------------------------------------------------------

# Runs in a child process: lists ggml's backend devices with free/total memory as JSON on stdout.
GGML_SCRIPT = r"""
import ctypes, json, sys
import llama_cpp
from llama_cpp import _ggml
lib = _ggml.libggml
try:
    lib.ggml_backend_load_all.restype = None
    lib.ggml_backend_load_all()
except AttributeError:
    pass
lib.ggml_backend_dev_count.restype = ctypes.c_size_t
lib.ggml_backend_dev_get.restype = ctypes.c_void_p
lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
for fn in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
    getattr(lib, fn).restype = ctypes.c_char_p
    getattr(lib, fn).argtypes = [ctypes.c_void_p]
lib.ggml_backend_dev_type.restype = ctypes.c_int
lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
lib.ggml_backend_dev_memory.restype = None
lib.ggml_backend_dev_memory.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)]
out = []
for i in range(lib.ggml_backend_dev_count()):
    d = lib.ggml_backend_dev_get(i)
    free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
    lib.ggml_backend_dev_memory(d, ctypes.byref(free), ctypes.byref(total))
    out.append({"name": (lib.ggml_backend_dev_name(d) or b"").decode("utf-8", "replace"),
                "description": (lib.ggml_backend_dev_description(d) or b"").decode("utf-8", "replace"),
                "type": int(lib.ggml_backend_dev_type(d)), "free": free.value, "total": total.value})
sys.stdout.write(json.dumps(out))
"""

_GGML_TYPES = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel"}


def _ggml_backend(name: str, dev_type: int) -> str | None:
    if dev_type == 0:
        return "cpu"
    if dev_type not in (1, 2):
        return None  # ACCEL (BLAS, AMX...): no memory pool of its own
    upper = name.upper()
    for prefix, backend in _ID_PREFIXES:
        if upper.startswith(prefix):
            return backend
    return "vulkan" if "VULKAN" in upper else "cuda" if "CUDA" in upper else None


def parse_ggml_devices(text: str) -> list[Device]:
    """The ggml subprocess's JSON -> devices (ACCEL and unknown GPU kinds are left out)."""
    rows = json.loads(text)
    devices = []
    for row in rows:
        name, dev_type = str(row.get("name", "")), int(row.get("type", -1))
        backend = _ggml_backend(name, dev_type)
        if backend is None:
            continue
        dev_id = "CPU" if backend == "cpu" else name.upper().replace("HIP", "ROCM")
        dev = Device(
            id=dev_id,
            name=str(row.get("description") or name),
            backend=backend,
            total_bytes=int(row.get("total") or 0),
            free_bytes=int(row.get("free") or 0),
            source="ggml",
            note=f"ggml device {name} ({_GGML_TYPES.get(dev_type, dev_type)})",
        )
        devices.append(_unknown_if_zero(dev, "ggml"))
    return devices


def ggml_probe(
    *,
    python: str = sys.executable,
    script: str = GGML_SCRIPT,
    timeout: float = 60.0,
    available: Callable[[], bool] | None = None,
    enabled: bool | None = None,
) -> Probe:
    """ggml's device list from a short-lived ``python -c`` child (never in this process: the CUDA context).

    ``enabled``: None runs it only when no earlier probe found a GPU; True always; False never.
    ``available``: whether llama_cpp is importable (default: ``importlib.util.find_spec``, no import).
    """

    def run() -> ProbeOutput:
        if enabled is False:
            raise ProbeNotApplicable("disabled")
        has = available() if available is not None else importlib.util.find_spec("llama_cpp") is not None
        if not has:
            raise ProbeNotFound("llama-cpp-python not installed")
        try:
            proc = subprocess.run(
                [python, "-c", script],
                check=False,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"ggml device subprocess timed out after {timeout:g} s") from exc
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
            raise RuntimeError(f"ggml device subprocess exited {proc.returncode}: {tail[0]}")
        devices = parse_ggml_devices(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "[]")
        if not devices:
            raise ProbeNotFound("ggml lists no device with memory")
        return devices, f"{len(devices)} device(s) from a ggml subprocess"

    return Probe("ggml", run, only_without_gpu=enabled is None)
