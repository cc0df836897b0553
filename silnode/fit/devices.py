"""The hardware report's shapes: devices, probe results, the report, and the Probe wrapper every probe uses.

See :mod:`silnode.fit.hardware` for how probes run and decide."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

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
    bandwidth: float | None = None  # memory bandwidth, bytes/s (NVML: bus width x memory clock); None unknown

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


def best_device(report: HardwareReport) -> Device | None:
    """The device fit decisions use: the GPU with the most FREE memory, else CPU RAM; None when no device's
    memory is known."""
    gpus = [d for d in report.gpus if d.usable]
    if gpus:
        return max(gpus, key=lambda d: d.free_bytes or 0)
    cpus = [d for d in report.devices if d.backend == "cpu" and d.usable]
    return cpus[0] if cpus else None
