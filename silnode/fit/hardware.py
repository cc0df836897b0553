"""What memory this machine has for models: one probe per source, every failure caught and explained.

Probes run in order and each answers for its own devices:

    nvml        NVIDIA GPUs through NVML (nvidia-ml-py, ``import pynvml``): name, total/free/used, driver.
                Costs no VRAM, so it is safe in the daemon process.
    amd_sysfs   AMD GPUs through ``/sys/class/drm/card*/device/mem_info_vram_total|used`` (amdgpu driver).
    apple       Apple Silicon unified memory (macOS on arm64): the GPU budget is part of system RAM.
                ``not_applicable`` elsewhere.
    cpu         System RAM through psutil (``virtual_memory().available`` / ``total``), /proc/meminfo fallback.
    ggml        llama.cpp's own device list (ggml's ``ggml_backend_dev_*`` API via llama-cpp-python), run in a
                SHORT-LIVED SUBPROCESS only: its first memory query creates a CUDA context (~520 MiB of VRAM)
                that stays until the calling process exits (gpu-notes.md, "Reading VRAM"). By default it runs
                only when llama_cpp is installed and no earlier probe found a GPU (e.g. Vulkan or a driver NVML
                cannot read); it only adds devices no earlier probe listed.

Decisions use **free** memory (NVML, nvidia-smi and ggml agree on free within 1 MiB; they disagree on
used/total). A device whose memory is unknown or reads as 0 has ``free_bytes=None`` and a ``note`` saying why;
it is never reported as "0 free", and :func:`best_device` skips it.

Capacity can be overridden (config): ``probe({"CUDA0": 8 << 30, "ram_bytes": 16 << 30})``. A device-id key
caps that device's total and free at the value (or declares the device when no probe found it); ``vram_bytes``
caps every GPU and ``ram_bytes`` the CPU device.

Tests substitute probes without patching globals: every probe is a :class:`Probe` built by a factory whose
inputs (the NVML module, the sysfs root, psutil, the platform, the subprocess script) are parameters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from silnode.errors import ConfigError

GiB = 1 << 30

OK, FAILED, NOT_FOUND, NOT_APPLICABLE = "ok", "failed", "not_found", "not_applicable"
PROBE_STATUSES = (OK, FAILED, NOT_FOUND, NOT_APPLICABLE)
GPU_BACKENDS = ("cuda", "rocm", "metal", "vulkan")
BACKENDS = (*GPU_BACKENDS, "cpu")

# device id prefix -> backend (ids are matched case-insensitively)
_ID_PREFIXES = (
    ("CUDA", "cuda"),
    ("ROCM", "rocm"),
    ("HIP", "rocm"),
    ("METAL", "metal"),
    ("MTL", "metal"),
    ("VULKAN", "vulkan"),
    ("CPU", "cpu"),
)


# --------------------------------------------------------------------------------------------- results


@dataclass
class Device:
    """One memory pool a model can be placed on."""

    id: str  # "CUDA0", "ROCM1", "METAL0", "CPU"
    name: str
    backend: str  # "cuda" | "rocm" | "metal" | "vulkan" | "cpu"
    total_bytes: int | None
    free_bytes: int | None  # None: unknown (see note); never a silent 0
    source: str  # the probe that answered ("nvml", "amd_sysfs", "apple", "cpu", "ggml", "config")
    used_bytes: int | None = None
    note: str = ""  # why memory is unknown, how it was derived, or what an override changed
    overridden: bool = False
    probed_total_bytes: int | None = None  # before an override
    probed_free_bytes: int | None = None

    @property
    def is_gpu(self) -> bool:
        return self.backend != "cpu"

    @property
    def usable(self) -> bool:
        """Memory is known and non-zero: a fit decision can use this device."""
        return self.free_bytes is not None and self.free_bytes > 0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["usable"] = self.usable
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Device:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class ProbeResult:
    name: str
    status: str  # "ok" | "failed" | "not_found" | "not_applicable"
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class HardwareReport:
    devices: list[Device] = field(default_factory=list)
    probes: list[ProbeResult] = field(default_factory=list)
    overrides: dict[str, int] = field(default_factory=dict)

    @property
    def gpus(self) -> list[Device]:
        return [d for d in self.devices if d.is_gpu]

    @property
    def cpu(self) -> Device | None:
        return next((d for d in self.devices if d.backend == "cpu"), None)

    def device(self, device_id: str) -> Device | None:
        key = device_id.upper()
        return next((d for d in self.devices if d.id.upper() == key), None)

    def probe_result(self, name: str) -> ProbeResult | None:
        return next((p for p in self.probes if p.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        best = best_device(self)
        return {
            "devices": [d.to_dict() for d in self.devices],
            "probes": [p.to_dict() for p in self.probes],
            "overrides": dict(self.overrides),
            "best_device": best.id if best else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HardwareReport:
        return cls(
            devices=[Device.from_dict(x) for x in d.get("devices", [])],
            probes=[
                ProbeResult(**{k: x[k] for k in ("name", "status", "detail") if k in x}) for x in d.get("probes", [])
            ],
            overrides=dict(d.get("overrides") or {}),
        )


# --------------------------------------------------------------------------------------------- probes


class ProbeSkip(Exception):
    """Raised by a probe that has nothing to answer; ``status`` is not_found or not_applicable."""

    status = NOT_FOUND


class ProbeNotFound(ProbeSkip):
    status = NOT_FOUND


class ProbeNotApplicable(ProbeSkip):
    status = NOT_APPLICABLE


# A probe function returns its devices, or (devices, detail). It raises ProbeNotFound / ProbeNotApplicable
# when it has nothing to say; any other exception is recorded as "failed" with its message.
ProbeOutput = Union[list, tuple]  # noqa: UP007 - a runtime alias, kept 3.9-readable


@dataclass
class Probe:
    name: str
    fn: Callable[[], ProbeOutput]
    # run only when no earlier probe found a GPU (the ggml subprocess is a fallback, not a cross-check)
    only_without_gpu: bool = False


ProbeLike = Union[Probe, Callable[[], ProbeOutput]]  # noqa: UP007


def _as_probe(name: str, p: ProbeLike) -> Probe:
    if isinstance(p, Probe):
        return p
    if callable(p):
        return Probe(name, p)
    raise TypeError(f"probe {name!r}: expected a Probe or a callable, got {type(p).__name__}")


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else str(v)


def _fmt_bytes(n: int | None) -> str:
    return "unknown" if n is None else f"{n / GiB:.2f} GiB"


def _unknown_if_zero(dev: Device, what: str) -> Device:
    """A device whose total or free reads as 0 or missing gets free_bytes=None and a note, never a silent 0."""
    if dev.total_bytes is not None and dev.total_bytes <= 0:
        dev.note = (dev.note + "; " if dev.note else "") + f"{what} reported 0 bytes total: memory unknown"
        dev.total_bytes = None
        dev.free_bytes = None
    elif dev.free_bytes is not None and dev.free_bytes <= 0:
        dev.note = (dev.note + "; " if dev.note else "") + f"{what} reported 0 bytes free: treated as unknown"
        dev.free_bytes = None
    elif dev.free_bytes is None and not dev.note:
        dev.note = f"{what} did not report free memory"
    return dev


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


# --------------------------------------------------------------------------------------------- driver


DEFAULT_PROBE_ORDER = ("nvml", "amd_sysfs", "apple", "cpu", "ggml")


def default_probes() -> list[Probe]:
    return [nvml_probe(), amd_sysfs_probe(), apple_probe(), cpu_probe(), ggml_probe()]


def _resolve_probes(probes: Sequence[ProbeLike] | Mapping[str, ProbeLike | None] | None) -> list[Probe]:
    """None: the defaults. A sequence: exactly these. A mapping {name: probe | None}: the defaults with the
    named ones replaced (None disables one; unknown names are appended in order)."""
    if probes is None:
        return default_probes()
    if isinstance(probes, Mapping):
        defaults = {p.name: p for p in default_probes()}
        out = []
        for name in DEFAULT_PROBE_ORDER:
            if name in probes:
                if probes[name] is not None:
                    out.append(_as_probe(name, probes[name]))
            else:
                out.append(defaults[name])
        out += [_as_probe(n, p) for n, p in probes.items() if n not in defaults and p is not None]
        return out
    return [_as_probe(getattr(p, "__name__", f"probe{i}"), p) for i, p in enumerate(probes)]


def _run_probe(p: Probe) -> tuple[list[Device], ProbeResult]:
    try:
        out = p.fn()
    except ProbeSkip as exc:
        return [], ProbeResult(p.name, exc.status, f"{exc.status}: {exc}")
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, none escapes
        return [], ProbeResult(p.name, FAILED, f"failed: {type(exc).__name__}: {exc}")
    detail = ""
    if isinstance(out, tuple):
        out, detail = out
    devices = list(out or [])
    if not devices:
        return [], ProbeResult(p.name, NOT_FOUND, f"not_found: {detail or 'no device'}")
    for d in devices:
        if not isinstance(d, Device):
            return [], ProbeResult(p.name, FAILED, f"failed: probe returned {type(d).__name__}, not Device")
    return devices, ProbeResult(p.name, OK, detail or f"{len(devices)} device(s)")


def _backend_of(device_id: str) -> str | None:
    upper = device_id.upper()
    for prefix, backend in _ID_PREFIXES:
        if upper.startswith(prefix) and (backend == "cpu" and upper == "CPU" or re.fullmatch(prefix + r"\d+", upper)):
            return backend
    return None


def _check_bytes(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"hardware override {key}: expected a positive number of bytes, got {value!r}")
    return value


def normalize_overrides(overrides: Mapping[str, Any] | None) -> dict[str, int]:
    """Validate ``{device_id | "ram_bytes" | "vram_bytes": bytes}``; device ids upper-cased."""
    out: dict[str, int] = {}
    for key, value in (overrides or {}).items():
        k = str(key)
        if k.lower() in ("ram_bytes", "vram_bytes"):
            out[k.lower()] = _check_bytes(k, value)
        elif _backend_of(k):
            out[k.upper()] = _check_bytes(k, value)
        else:
            raise ConfigError(
                f"hardware override {k!r}: expected a device id (CUDA0, ROCM0, METAL0, VULKAN0, CPU), "
                f"ram_bytes or vram_bytes"
            )
    return out


def _cap(dev: Device, cap: int, why: str) -> None:
    if not dev.overridden:
        dev.probed_total_bytes, dev.probed_free_bytes = dev.total_bytes, dev.free_bytes
    dev.overridden = True
    dev.total_bytes = cap if dev.total_bytes is None else min(dev.total_bytes, cap)
    if dev.free_bytes is None:
        dev.free_bytes = dev.total_bytes
        msg = f"{why}: capacity {_fmt_bytes(cap)} from config (free not probed)"
    else:
        dev.free_bytes = min(dev.free_bytes, dev.total_bytes)
        msg = f"{why}: capped at {_fmt_bytes(cap)}"
    dev.note = f"{dev.note}; {msg}" if dev.note else msg


def apply_overrides(report: HardwareReport, overrides: Mapping[str, Any] | None) -> HardwareReport:
    """Apply config capacity overrides in place (see module doc); returns the report."""
    ov = normalize_overrides(overrides)
    report.overrides = dict(ov)
    for key, cap in ov.items():
        if key == "ram_bytes":
            for d in report.devices:
                if d.backend == "cpu":
                    _cap(d, cap, "ram_bytes")
        elif key == "vram_bytes":
            for d in report.gpus:
                _cap(d, cap, "vram_bytes")
        else:
            dev = report.device(key)
            if dev is None:
                backend = _backend_of(key) or "cpu"
                dev = Device(
                    id=key,
                    name=f"{key} (declared in config)",
                    backend=backend,
                    total_bytes=None,
                    free_bytes=None,
                    source="config",
                    note="no probe found this device",
                )
                report.devices.append(dev)
            _cap(dev, cap, key)
    return report


def probe(
    overrides: Mapping[str, Any] | None = None,
    *,
    probes: Sequence[ProbeLike] | Mapping[str, ProbeLike | None] | None = None,
) -> HardwareReport:
    """Run the probes in order, collect devices (several GPUs listed separately), apply overrides.

    A device id already answered by an earlier probe is not listed again by a later one. Overrides are
    validated first (ConfigError) so a bad config fails before any probing.
    """
    normalize_overrides(overrides)
    report = HardwareReport()
    for p in _resolve_probes(probes):
        if p.only_without_gpu and report.gpus:
            report.probes.append(
                ProbeResult(
                    p.name,
                    NOT_APPLICABLE,
                    f"not_applicable: skipped, GPUs already answered by "
                    f"{', '.join(sorted({d.source for d in report.gpus}))}",
                )
            )
            continue
        devices, result = _run_probe(p)
        seen = {d.id.upper() for d in report.devices}
        # on Apple Silicon the CPU device and METAL0 share one RAM pool: both listed, best_device prefers METAL0
        dupes = [d.id for d in devices if d.id.upper() in seen]
        if dupes:
            result.detail += f" (already listed, kept the earlier answer: {', '.join(dupes)})"
        report.devices.extend(d for d in devices if d.id.upper() not in seen)
        report.probes.append(result)
    return apply_overrides(report, overrides)


_recent: tuple[float, HardwareReport] | None = None
_recent_lock = threading.Lock()


def probe_recent(overrides: Mapping[str, Any] | None = None, *, max_age: float = 10.0) -> HardwareReport:
    """probe(), reusing a report up to `max_age` seconds old (overrides applied to a fresh copy each time).

    For fit decisions made in a row (recommend, every download's metadata check, every load): the ggml
    probe's child process costs 0.5-0.8 s, seconds on a loaded machine, and while a download waits at its
    metadata its peers may hang up. `silnode hardware` always probes afresh."""
    global _recent
    normalize_overrides(overrides)
    with _recent_lock:
        if _recent is None or time.monotonic() - _recent[0] > max_age:
            _recent = (time.monotonic(), probe())
        raw = _recent[1]
    return apply_overrides(HardwareReport.from_dict(raw.to_dict()), overrides)


def best_device(report: HardwareReport) -> Device | None:
    """The device fit decisions use: the GPU with the most FREE memory, else CPU RAM; None when no device's
    memory is known."""
    gpus = [d for d in report.gpus if d.usable]
    if gpus:
        return max(gpus, key=lambda d: d.free_bytes or 0)
    cpus = [d for d in report.devices if d.backend == "cpu" and d.usable]
    return cpus[0] if cpus else None
