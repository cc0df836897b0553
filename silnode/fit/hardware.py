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

import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from silnode.errors import ConfigError
from silnode.fit import backend as llama_build

# the report's shapes and the probes, re-exported: callers import everything about hardware from here
from silnode.fit.devices import (  # noqa: F401
    _ID_PREFIXES,
    BACKENDS,
    FAILED,
    GPU_BACKENDS,
    NOT_APPLICABLE,
    NOT_FOUND,
    OK,
    PROBE_STATUSES,
    Device,
    GiB,
    HardwareReport,
    Probe,
    ProbeLike,
    ProbeResult,
    ProbeSkip,
    _as_probe,
    _fmt_bytes,
    best_device,
)
from silnode.fit.probes import (  # noqa: F401
    DEFAULT_DRM_ROOT,
    GGML_SCRIPT,
    amd_sysfs_probe,
    apple_probe,
    cpu_probe,
    ggml_probe,
    nvml_probe,
    parse_ggml_devices,
)

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


def fit_device(report: HardwareReport, *, gpu_offload: bool | None = None) -> Device | None:
    """The device fit decisions use: the one the worker will really run on. A GPU only when this llama.cpp
    build can offload to it (a CPU-only build on a GPU machine runs in RAM, so it is judged against RAM);
    ``gpu_offload`` None asks the installed build."""
    if gpu_offload is None:
        gpu_offload = llama_build.gpu_offload() if report.gpus else False
    if gpu_offload:
        return best_device(report)
    return next((d for d in report.devices if d.backend == "cpu" and d.usable), None)
